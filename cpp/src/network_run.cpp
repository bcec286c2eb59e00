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

double Network::step_on(Optimizer& opt, LossKind loss, const void* x, const void* target, int64_t B,
                        bool check_finite, int64_t epoch, int64_t batch, int64_t* correct) {
  forward_ops(x, B, training_);
  double* sum_dev = static_cast<double*>(loss_dev_.data());
  be_->fill(DType::f64, sum_dev, 1, 0.0);
  loss_forward_backward(*be_, dt_, loss, sum_dev, grads_.back(), values_.back(), target, nullptr, B, width_.back(), B);
  double sum = 0;
  be_->download(&sum, sum_dev, sizeof(double));
  const double value = sum / loss_divisor(loss, B, width_.back());
  if (check_finite && !std::isfinite(value))  // epoch < 0: a single train_step, not part of an epoch
    // Epochs and batches counted from 1, as the progress display counts them.
    throw std::runtime_error("non-finite loss (" + std::string(std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf") +
                             ")" +
                             (epoch < 0 ? std::string(" in train_step")
                                        : " at epoch " + std::to_string(epoch + 1) + ", batch " +
                                              std::to_string(batch + 1)) +
                             "; training stopped before this batch updated the weights (lower the learning "
                             "rate or check the data)");
  if (correct)
    *correct += count_correct(*be_, dt_, values_.back(), static_cast<const int32_t*>(target), B, width_.back());
  backward_ops(B, false, false);
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

double Network::train_step(Optimizer& opt, LossKind loss, const void* x, const void* target, int64_t B,
                           bool check_finite) {
  std::lock_guard<std::mutex> lock(mutex_);
  invalidate("train_step() reused the workspace after the last forward()");
  check_optimizer(opt);
  reserve(B);
  return step_on(opt, loss, x, target, B, check_finite, -1, 0, nullptr);
}

EpochResult Network::train_epoch(Optimizer& opt, LossKind loss, const void* X, const void* Y, int64_t n,
                                 int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch_index,
                                 bool check_finite, int64_t batch_begin, int64_t batch_end,
                                 const std::atomic<bool>* stop) {
  std::lock_guard<std::mutex> lock(mutex_);
  invalidate("train_epoch() reused the workspace after the last forward()");
  check_optimizer(opt);
  MC_CHECK_VALUE(n > 0 && batch_size > 0, "train_epoch: need n > 0 and batch_size > 0");
  const int64_t bs = std::min(batch_size, n);
  const int64_t num_batches = (n + bs - 1) / bs;
  if (batch_end < 0 || batch_end > num_batches) batch_end = num_batches;
  MC_CHECK_VALUE(batch_begin >= 0 && batch_begin < batch_end, "train_epoch: empty batch range [", batch_begin, ", ",
                 batch_end, ") of ", num_batches, " batches");
  reserve(bs);
  const size_t es = dtype_size(dt_);
  const bool labels = loss_def(loss).labels;
  const bool count = loss == LossKind::cross_entropy;
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
  for (int64_t batch = batch_begin, start = batch_begin * bs; batch < batch_end; start += bs, ++batch) {
    const int64_t rows = std::min(bs, n - start);
    const void* xb;
    const void* yb;
    if (shuffle) {
      be_->gather_rows(dt_, batch_x_, X, perm + start, rows, in_features_);
      if (labels)
        be_->gather_labels(static_cast<int32_t*>(batch_y_), static_cast<const int32_t*>(Y), perm + start, rows);
      else
        be_->gather_rows(dt_, batch_y_, Y, perm + start, rows, ycols);
      xb = batch_x_;
      yb = batch_y_;
    } else {
      xb = static_cast<const char*>(X) + size_t(start * in_features_) * es;
      yb = labels ? static_cast<const void*>(static_cast<const int32_t*>(Y) + start)
                  : static_cast<const void*>(static_cast<const char*>(Y) + size_t(start * ycols) * es);
    }
    total += step_on(opt, loss, xb, yb, rows, check_finite, epoch_index, batch, count ? &r.correct : nullptr) *
             double(rows);
    r.rows += rows;
    // The one place the loop polls for a stop request (Ctrl-C): between two whole steps, one
    // relaxed load per batch.
    if (stop && batch + 1 < batch_end && stop->load(std::memory_order_relaxed)) {
      r.interrupted = true;
      break;
    }
  }
  r.loss = total / double(r.rows);
  return r;
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

double Network::evaluate(LossKind loss, const void* X, const void* Y, int64_t n, int64_t batch_size,
                         int64_t* correct) {
  std::lock_guard<std::mutex> lock(mutex_);
  invalidate("evaluate() reused the workspace after the last forward()");
  const int64_t bs = std::max<int64_t>(1, std::min(batch_size, n));
  reserve(bs);
  const size_t es = dtype_size(dt_);
  const int64_t oc = width_.back();
  const bool labels = loss_def(loss).labels;
  const bool count = loss == LossKind::cross_entropy;
  double* sum_dev = static_cast<double*>(loss_dev_.data());
  be_->fill(DType::f64, sum_dev, 1, 0.0);
  *correct = 0;
  for (int64_t start = 0; start < n; start += bs) {
    const int64_t rows = std::min(bs, n - start);
    forward_ops(static_cast<const char*>(X) + size_t(start * in_features_) * es, rows, false);
    const void* yb = labels ? static_cast<const void*>(static_cast<const int32_t*>(Y) + start)
                            : static_cast<const void*>(static_cast<const char*>(Y) + size_t(start * oc) * es);
    // The gradient of each batch is computed (one pass) and not used; the sum carries over.
    loss_forward_backward(*be_, dt_, loss, sum_dev, grads_.back(), values_.back(), yb, nullptr, rows, oc, rows);
    if (count) *correct += count_correct(*be_, dt_, values_.back(), static_cast<const int32_t*>(yb), rows, oc);
  }
  double sum = 0;
  be_->download(&sum, sum_dev, sizeof(double));
  return sum / loss_divisor(loss, n, oc);
}

}  // namespace mc
