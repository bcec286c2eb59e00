// network_run.cpp — the Network's entry points: forward / backward (the module path through the
// compiled network), train_step, train_epoch, predict and evaluate. Each takes the network's lock
// for the whole call (the workspace is shared) and, unless it is forward(), leaves backward()
// unable to run until the next forward(), naming why.
#include <algorithm>
#include <cmath>

#include "mlpcore/network.h"
#include "mlpcore/rng.h"

namespace mc {

Tensor Network::forward(const void* x, int64_t B) {
  std::lock_guard<std::mutex> lock(mutex_);
  reserve(B);
  invalidate("the last forward() failed");
  forward_ops(x, B, training_);
  stale_ = nullptr;
  return Tensor{values_.back(), B, width_.back(), dt_, device()};
}

void Network::forward_to_host(void* host_out, const void* x, int64_t B) {
  std::lock_guard<std::mutex> lock(mutex_);
  reserve(B);
  invalidate("the last forward() failed");
  forward_ops(x, B, training_);
  be_->download(host_out, values_.back(), size_t(B * width_.back()) * dtype_size(dt_));
  stale_ = nullptr;
}

void Network::backward_to_host(void* host_dx, const void* host_dy, int64_t B) {
  std::lock_guard<std::mutex> lock(mutex_);
  MC_CHECK(!stale_, "Network.backward: ", stale_, "; call forward() again first");
  MC_CHECK_VALUE(B == fwd_rows_, "Network.backward: grad_output has ", B, " rows but the last forward() had ",
                 fwd_rows_);
  const size_t es = dtype_size(dt_);
  be_->upload(grads_.back(), host_dy, size_t(B * width_.back()) * es);
  backward_ops(B, true, true);
  be_->download(host_dx, grads_[0], size_t(B * in_features_) * es);
}

LossSpec Network::loss_on_device(const LossSpec& loss) {
  if (device() == Device::cpu) return loss;
  LossSpec d = loss;
  const size_t nb = size_t(width_.back()) * dtype_size(dt_);
  char* at = static_cast<char*>(loss_vecs_.data());
  if (loss.class_weight) be_->upload(at, loss.class_weight, nb), d.class_weight = at;
  at += (nb + 63) & ~size_t(63);
  if (loss.pos_weight) be_->upload(at, loss.pos_weight, nb), d.pos_weight = at;
  return d;
}

double Network::step_on(Optimizer& opt, const LossSpec& loss, const void* x, const void* target, const void* w,
                        int64_t B, bool check_finite, int64_t epoch, int64_t batch, int64_t* correct,
                        double max_grad_norm, void* output) {
  forward_ops(x, B, training_);
  if (output) be_->copy(output, values_.back(), size_t(B * width_.back()) * dtype_size(dt_));
  LossSums* sums_dev = static_cast<LossSums*>(loss_dev_.data());
  be_->fill(DType::f64, sums_dev, 2, 0.0);
  loss_forward_backward(*be_, dt_, loss, sums_dev, grads_.back(), values_.back(), target, w, B, width_.back());
  LossSums sums;
  be_->download(&sums, sums_dev, sizeof(sums));
  const double value = loss_mean(sums);
  if (check_finite) check_loss_finite(value, epoch, batch);
  if (correct)
    *correct += count_correct(*be_, dt_, values_.back(), static_cast<const int32_t*>(target), B, width_.back());
  backward_ops(B, false, false);
  // Between backward and the optimizer step: gradient clipping (the norm, then the scale).
  if (max_grad_norm >= 0) opt.clip_grad_norm(max_grad_norm);
  opt.step();
  return value;
}

void Network::check_optimizer(const Optimizer& opt) const {
  MC_CHECK_VALUE(opt.device() == device() && opt.dtype() == dt_, "optimizer lives on ", device_name(opt.device()), "/",
                 dtype_name(opt.dtype()), " but the network on ", device_name(device()), "/", dtype_name(dt_));
  // Every segment must lie in one of this network's arenas: an optimizer built over other (or
  // stale, since moved) parameters would otherwise update memory this network never writes
  // gradients to.
  for (const auto& s : opt.segments()) {
    const bool ours = std::any_of(arenas_.begin(), arenas_.end(),
                                  [&](const std::shared_ptr<ParamArena>& a) { return a->holds(s.param, s.n); });
    MC_CHECK(ours,
             "optimizer: its parameters are not this network's (the model's parameters moved, e.g. into a new "
             "Sequential, after the optimizer was created); create the optimizer from model.parameters()");
  }
}

double Network::train_step(Optimizer& opt, const LossSpec& loss, const void* x, const void* target, int64_t B,
                           bool check_finite, const void* sample_weight, double max_grad_norm, Communicator* comm) {
  std::lock_guard<std::mutex> lock(mutex_);
  invalidate("train_step() reused the workspace after the last forward()");
  check_optimizer(opt);
  if (comm && comm->size() == 1) comm = nullptr;  // one rank: the single-process path, the same bits
  if (comm)
    check_same_call(*comm, "train_step", loss, B, B, false, 0, -1, check_finite, 0, 1, sample_weight != nullptr,
                    max_grad_norm);
  reserve(B);
  if (!comm)
    return step_on(opt, loss_on_device(loss), x, target, sample_weight, B, check_finite, -1, 0, nullptr,
                   max_grad_norm, nullptr);
  // This rank's rows of the batch (contiguous: x, target and sample_weight are the whole batch on
  // every rank).
  const int64_t p = comm->size(), r = comm->rank();
  const int64_t lo = B * r / p, rows = B * (r + 1) / p - lo;
  const size_t es = dtype_size(dt_);
  const bool labels = loss_def(loss.kind).labels;
  const void* xb = static_cast<const char*>(x) + size_t(lo * in_features_) * es;
  const void* yb =
      labels ? static_cast<const void*>(static_cast<const int32_t*>(target) + lo)
             : static_cast<const void*>(static_cast<const char*>(target) + size_t(lo * width_.back()) * es);
  const void* wb = sample_weight ? static_cast<const char*>(sample_weight) + size_t(lo) * es : nullptr;
  double seconds = 0;
  bool stopped = false;
  return step_shard(opt, loss_on_device(loss), xb, yb, wb, rows, lo, B, check_finite, -1, 0, nullptr, max_grad_norm,
                    nullptr, *comm, &seconds, nullptr, &stopped);
}

EpochResult Network::train_epoch(Optimizer& opt, const LossSpec& host_loss, const void* X, const void* Y, int64_t n,
                                 int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch_index,
                                 bool check_finite, int64_t batch_begin, int64_t batch_end, const void* W,
                                 double max_grad_norm, void* outputs, const std::atomic<bool>* stop,
                                 Communicator* comm) {
  std::lock_guard<std::mutex> lock(mutex_);
  invalidate("train_epoch() reused the workspace after the last forward()");
  check_optimizer(opt);
  if (comm && comm->size() == 1) comm = nullptr;  // one rank: the single-process path, the same bits
  // Before any check that could fail on some ranks only: the same arguments everywhere.
  if (comm)
    check_same_call(*comm, "train_epoch", host_loss, n, batch_size, shuffle, seed, epoch_index, check_finite,
                    batch_begin, batch_end, W != nullptr, max_grad_norm);
  MC_CHECK_VALUE(n > 0 && batch_size > 0, "train_epoch: need n > 0 and batch_size > 0");
  const int64_t bs = std::min(batch_size, n);
  const int64_t num_batches = (n + bs - 1) / bs;
  if (batch_end < 0 || batch_end > num_batches) batch_end = num_batches;
  MC_CHECK_VALUE(batch_begin >= 0 && batch_begin < batch_end, "train_epoch: empty batch range [", batch_begin, ", ",
                 batch_end, ") of ", num_batches, " batches");
  reserve(bs);
  const LossSpec loss = loss_on_device(host_loss);
  const size_t es = dtype_size(dt_);
  const bool labels = loss_def(loss.kind).labels;
  const bool count = loss.kind == LossKind::cross_entropy;
  const int64_t ycols = width_.back();
  const int64_t* perm = nullptr;
  if (shuffle) {
    // A split epoch (several calls with batch ranges) draws its permutation once.
    if (perm_n_ != n || perm_seed_ != seed) {
      if (int64_t(perm_host_.size()) < n) perm_host_.resize(n);  // grows once per data-set size
      permutation_fill(perm_host_.data(), n, seed);
      perm_.reserve(size_t(n) * sizeof(int64_t));
      be_->upload(perm_.data(), perm_host_.data(), size_t(n) * sizeof(int64_t));
      perm_n_ = n;
      perm_seed_ = seed;
    }
    perm = static_cast<const int64_t*>(perm_.data());
  }
  double total = 0;
  EpochResult r;
  const int64_t ranks = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  for (int64_t batch = batch_begin, start = batch_begin * bs; batch < batch_end; start += bs, ++batch) {
    const int64_t rows = std::min(bs, n - start);
    // This rank's rows [lo, lo + mine) of the batch (all of them in one process; a rank may have
    // none when the batch has fewer rows than there are ranks: it still joins the step).
    const int64_t lo = rows * rank / ranks, mine = rows * (rank + 1) / ranks - lo, at = start + lo;
    const void* xb;
    const void* yb;
    const void* wb = nullptr;
    if (shuffle) {
      be_->gather_rows(dt_, batch_x_, X, perm + at, mine, in_features_);
      if (labels)
        be_->gather_labels(static_cast<int32_t*>(batch_y_), static_cast<const int32_t*>(Y), perm + at, mine);
      else
        be_->gather_rows(dt_, batch_y_, Y, perm + at, mine, ycols);
      if (W) be_->gather_rows(dt_, batch_w_, W, perm + at, mine, 1), wb = batch_w_;
      xb = batch_x_;
      yb = batch_y_;
    } else {
      xb = static_cast<const char*>(X) + size_t(at * in_features_) * es;
      yb = labels ? static_cast<const void*>(static_cast<const int32_t*>(Y) + at)
                  : static_cast<const void*>(static_cast<const char*>(Y) + size_t(at * ycols) * es);
      if (W) wb = static_cast<const char*>(W) + size_t(at) * es;
    }
    void* out = outputs ? static_cast<char*>(outputs) + size_t(start * ycols) * es : nullptr;
    int64_t* hits = count ? &r.correct : nullptr;
    bool stopped = false;
    const double value =
        comm ? step_shard(opt, loss, xb, yb, wb, mine, lo, rows, check_finite, epoch_index, batch, hits, max_grad_norm,
                          out, *comm, &r.comm_seconds, stop, &stopped)
             : step_on(opt, loss, xb, yb, wb, rows, check_finite, epoch_index, batch, hits, max_grad_norm, out);
    total += value * double(rows);
    r.rows += rows;
    // The one place the loop polls for a stop request (Ctrl-C): between two whole steps, one
    // relaxed load per batch; data parallel, the flag every rank agreed on in the step's all-reduce
    // (one rank stopping alone would leave the others waiting in the next step's collectives),
    // reported after the last batch too, so that the caller's agreement on who raises runs on
    // every rank (one process: a signal during the last batch is simply Python's after the call).
    if (comm ? stopped : batch + 1 < batch_end && stop && stop->load(std::memory_order_relaxed)) {
      r.interrupted = true;
      break;
    }
  }
  r.loss = total / double(r.rows);
  return r;
}

double Network::loss_and_grad(double* grad_out, const double* theta, const std::vector<FlatSegment>& layout,
                              const LossSpec& host_loss, const void* X, const void* Y, int64_t n,
                              const void* sample_weight, double l2_alpha, double value_scale, double grad_scale,
                              int64_t chunk_rows) {
  std::lock_guard<std::mutex> lock(mutex_);
  invalidate("loss_and_grad() reused the workspace after the last forward()");
  MC_CHECK_VALUE(n > 0, "loss_and_grad: need n > 0 rows");
  for (size_t k = 0; k < layout.size(); ++k) {
    const FlatSegment& s = layout[k];
    MC_CHECK_VALUE(s.arena >= 0 && s.arena < int64_t(arenas_.size()), "loss_and_grad: segment ", k, " names arena ",
                   s.arena, " but the network has ", arenas_.size());
    MC_CHECK_VALUE(s.offset >= 0 && s.numel >= 0 && s.offset + s.numel <= arenas_[size_t(s.arena)]->numel(),
                   "loss_and_grad: segment ", k, " lies outside its arena");
  }
  const size_t es = dtype_size(dt_);
  auto host = [&](size_t nbytes) {  // the host staging buffer, grown once per size
    if (flat_host_.size() < nbytes) flat_host_.resize(nbytes);
    return flat_host_.data();
  };
  // s: the L2 divisor, n or the sum of the sample weights (summed in double on the host).
  double s_rows = double(n);
  if (sample_weight) {
    be_->download(host(size_t(n) * es), sample_weight, size_t(n) * es);
    s_rows = 0;
    dtype_dispatch(dt_, [&](auto tag) {
      using T = decltype(tag);
      const T* w = reinterpret_cast<const T*>(flat_host_.data());
      for (int64_t i = 0; i < n; ++i) s_rows += double(w[i]);
    });
  }
  // theta -> the arenas, segment by segment, through the host buffer in the network's dtype.
  double sq = 0;  // sum of squares of the penalised values, in double as the caller holds them
  int64_t at = 0;
  for (const FlatSegment& s : layout) {
    const double* src = theta + at;
    char* h = host(size_t(s.numel) * es);
    dtype_dispatch(dt_, [&](auto tag) {
      using T = decltype(tag);
      for (int64_t i = 0; i < s.numel; ++i) reinterpret_cast<T*>(h)[i] = T(src[i]);
    });
    if (s.penalised)
      for (int64_t i = 0; i < s.numel; ++i) sq += src[i] * src[i];
    be_->upload(arenas_[size_t(s.arena)]->param_at(s.offset), h, size_t(s.numel) * es);
    at += s.numel;
  }
  // Rows per pass: the workspace already reserved, or what fits in kChunkBytes (>= 256 rows).
  constexpr size_t kChunkBytes = size_t(64) << 20;
  const int64_t chunk = std::min(
      n, chunk_rows > 0 ? chunk_rows : std::max({capacity_, int64_t(kChunkBytes / row_bytes()), int64_t(256)}));
  reserve(chunk);
  const LossSpec loss = loss_on_device(host_loss);
  const int64_t oc = width_.back();
  const bool labels = loss_def(loss.kind).labels;
  LossSums* sums_dev = static_cast<LossSums*>(loss_dev_.data());
  be_->fill(DType::f64, sums_dev, 2, 0.0);
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t rows = std::min(chunk, n - start);
    forward_ops(static_cast<const char*>(X) + size_t(start * in_features_) * es, rows, training_);
    const void* yb = labels ? static_cast<const void*>(static_cast<const int32_t*>(Y) + start)
                            : static_cast<const void*>(static_cast<const char*>(Y) + size_t(start * oc) * es);
    const void* wb = sample_weight ? static_cast<const char*>(sample_weight) + size_t(start) * es : nullptr;
    // divisor 1: the gradient of the sum Σ w v; the mean's divisor Σ w n is known after the last
    // chunk and scales the parameter gradients below (backward is linear in its output gradient)
    loss_forward_backward(*be_, dt_, loss, sums_dev, grads_.back(), values_.back(), yb, wb, rows, oc, 1.0);
    backward_ops(rows, false, start > 0);  // the first chunk overwrites the gradients, later ones add
  }
  LossSums sums;
  be_->download(&sums, sums_dev, sizeof(sums));
  // The gradients -> grad_out (scaled, plus the L2 term), segment by segment.
  const double gscale = sums.weight != 0 ? grad_scale / sums.weight : 0.0;
  const double l2 = l2_alpha / s_rows;
  at = 0;
  for (const FlatSegment& s : layout) {
    char* h = host(size_t(s.numel) * es);
    be_->download(h, arenas_[size_t(s.arena)]->grad_at(s.offset), size_t(s.numel) * es);
    double* g = grad_out + at;
    const double* th = theta + at;
    const double decay = s.penalised ? l2 : 0.0;
    dtype_dispatch(dt_, [&](auto tag) {
      using T = decltype(tag);
      for (int64_t i = 0; i < s.numel; ++i) g[i] = gscale * double(reinterpret_cast<const T*>(h)[i]) + decay * th[i];
    });
    at += s.numel;
  }
  return value_scale * loss_mean(sums) + 0.5 * l2 * sq;
}

void Network::predict(void* out, const void* X, int64_t n, int64_t batch_size) {
  std::lock_guard<std::mutex> lock(mutex_);
  invalidate("predict() reused the workspace after the last forward()");
  const int64_t bs = std::max<int64_t>(1, std::min(batch_size, n));
  reserve(bs);
  const size_t es = dtype_size(dt_);
  const int64_t oc = width_.back();
  for (int64_t start = 0; start < n; start += bs) {
    const int64_t rows = std::min(bs, n - start);
    forward_ops(static_cast<const char*>(X) + size_t(start * in_features_) * es, rows, false);
    be_->copy(static_cast<char*>(out) + size_t(start * oc) * es, values_.back(), size_t(rows * oc) * es);
  }
}

double Network::evaluate(const LossSpec& host_loss, const void* X, const void* Y, int64_t n, int64_t batch_size,
                         int64_t* correct, const void* W) {
  std::lock_guard<std::mutex> lock(mutex_);
  invalidate("evaluate() reused the workspace after the last forward()");
  const int64_t bs = std::max<int64_t>(1, std::min(batch_size, n));
  reserve(bs);
  const LossSpec loss = loss_on_device(host_loss);
  const size_t es = dtype_size(dt_);
  const int64_t oc = width_.back();
  const bool labels = loss_def(loss.kind).labels;
  const bool count = loss.kind == LossKind::cross_entropy;
  LossSums* sums_dev = static_cast<LossSums*>(loss_dev_.data());
  be_->fill(DType::f64, sums_dev, 2, 0.0);
  *correct = 0;
  for (int64_t start = 0; start < n; start += bs) {
    const int64_t rows = std::min(bs, n - start);
    forward_ops(static_cast<const char*>(X) + size_t(start * in_features_) * es, rows, false);
    const void* yb = labels ? static_cast<const void*>(static_cast<const int32_t*>(Y) + start)
                            : static_cast<const void*>(static_cast<const char*>(Y) + size_t(start * oc) * es);
    const void* wb = W ? static_cast<const char*>(W) + size_t(start) * es : nullptr;
    // The gradient of each batch is computed (one pass) and not used; the sums carry over.
    loss_forward_backward(*be_, dt_, loss, sums_dev, grads_.back(), values_.back(), yb, wb, rows, oc);
    if (count) *correct += count_correct(*be_, dt_, values_.back(), static_cast<const int32_t*>(yb), rows, oc);
  }
  LossSums sums;
  be_->download(&sums, sums_dev, sizeof(sums));
  return loss_mean(sums);
}

}  // namespace mc
