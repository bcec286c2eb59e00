// network.cpp — the compiled path (see network.h for the graph and memory model).
#include "mlpcore/network.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace mc {

ParamArena::ParamArena(Device device, DType dtype, int64_t numel)
    : device_(device),
      dtype_(dtype),
      numel_(numel),
      params_(device, size_t(std::max<int64_t>(numel, 1)) * dtype_size(dtype)),
      grads_(device, size_t(std::max<int64_t>(numel, 1)) * dtype_size(dtype)) {
  Backend& be = backend_for(device);
  be.fill(dtype, params_.data(), numel, 0.0);
  be.fill(dtype, grads_.data(), numel, 0.0);
}

void ParamArena::zero_grad() { backend_for(device_).fill(dtype_, grads_.data(), numel_, 0.0); }

Network::Network(std::shared_ptr<ParamArena> arena, std::vector<OpSpec> specs, int64_t in_features)
    : arena_(std::move(arena)), be_(&backend_for(arena_->device())), dt_(arena_->dtype()), in_features_(in_features) {
  MC_CHECK_VALUE(!specs.empty(), "Network: needs at least one layer");
  MC_CHECK_VALUE(in_features >= 1, "Network: in_features must be >= 1, got ", in_features);
  // Values consumed twice (residual skips) must stay materialised: no fusion across them.
  std::vector<char> is_skip(specs.size() + 1, 0);
  for (size_t i = 0; i < specs.size(); ++i) {
    const OpSpec& s = specs[i];
    if (s.kind == OpKind::residual_add) {
      // a skip names an earlier value (<= i: the op's own input at the latest)
      MC_CHECK_VALUE(s.skip >= 0 && s.skip <= int64_t(i), "Network: op ", i, " residual skip ", s.skip,
                     " must name an earlier value in [0, ", i, "]");
      is_skip[s.skip] = 1;
    }
    if (s.kind == OpKind::linear)
      MC_CHECK_VALUE(s.in_features >= 1 && s.out_features >= 1, "Network: op ", i, " linear needs positive sizes");
    if (s.kind == OpKind::dropout)
      MC_CHECK_VALUE(s.dropout && s.p >= 0.0 && s.p < 1.0, "Network: op ", i,
                     " dropout needs its RNG state and p in [0, 1), got p=", s.p);
  }
  // Fuse linear + activation; remap value indices (old value v -> new value map[v]).
  std::vector<int64_t> map(specs.size() + 1, 0);
  for (size_t i = 0; i < specs.size(); ++i) {
    OpSpec s = specs[i];
    const bool fuse = s.kind == OpKind::linear && s.act.kind == ActKind::identity && i + 1 < specs.size() &&
                      specs[i + 1].kind == OpKind::activation && !is_skip[i + 1];
    if (fuse) s.act = specs[i + 1].act;
    if (s.kind == OpKind::residual_add) s.skip = map[s.skip];
    ops_.push_back(s);
    map[i + 1] = int64_t(ops_.size());
    if (fuse) map[i + 2] = int64_t(ops_.size()), ++i;
  }
  // Widths and chaining checks.
  width_.push_back(in_features);
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpSpec& s = ops_[i];
    const int64_t w = width_.back();
    switch (s.kind) {
      case OpKind::linear:
        MC_CHECK_VALUE(s.in_features == w, "Network: layer ", i, " (linear) expects ", s.in_features,
                       " input features but receives ", w);
        MC_CHECK_VALUE(s.weight_off >= 0 && s.weight_off + s.in_features * s.out_features <= arena_->numel(),
                       "Network: layer ", i, " weight lies outside the parameter arena");
        MC_CHECK_VALUE(!s.has_bias || (s.bias_off >= 0 && s.bias_off + s.out_features <= arena_->numel()),
                       "Network: layer ", i, " bias lies outside the parameter arena");
        width_.push_back(s.out_features);
        break;
      case OpKind::maxout:
        MC_CHECK_VALUE(s.pieces >= 1 && w % s.pieces == 0, "Network: maxout width ", w,
                       " is not a multiple of pieces=", s.pieces);
        width_.push_back(w / s.pieces);
        break;
      case OpKind::residual_add:
        MC_CHECK_VALUE(width_[s.skip] == w, "Network: residual block maps ", width_[s.skip], " features to ", w,
                       "; y = x + block(x) needs equal widths");
        width_.push_back(w);
        break;
      default: width_.push_back(w);
    }
  }
  values_.assign(ops_.size() + 1, nullptr);
  preact_.assign(ops_.size(), nullptr);
  grads_.assign(ops_.size() + 1, nullptr);
  masks_.assign(ops_.size(), nullptr);
  loss_dev_ = Buffer(arena_->device(), sizeof(double));
}

void Network::reserve(int64_t B) {
  if (B <= capacity_) return;
  const size_t es = dtype_size(dt_);
  auto round = [](size_t n) { return (n + 63) & ~size_t(63); };
  // First pass computes offsets, second assigns pointers into one allocation.
  std::vector<size_t> off_val(values_.size(), 0), off_grad(values_.size(), 0), off_pre(ops_.size(), 0),
      off_mask(ops_.size(), 0);
  size_t total = 0;
  auto take = [&](size_t nbytes) {
    size_t at = total;
    total += round(nbytes);
    return at;
  };
  for (size_t v = 1; v < values_.size(); ++v) {
    off_val[v] = take(B * width_[v] * es);
    off_grad[v] = take(B * width_[v] * es);
  }
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpSpec& s = ops_[i];
    if (s.kind == OpKind::linear && s.act.needs_input()) off_pre[i] = take(B * width_[i + 1] * es);
    if (s.kind == OpKind::dropout) off_mask[i] = take(B * width_[i + 1] * es);
    if (s.kind == OpKind::maxout) off_mask[i] = take(B * width_[i + 1] * sizeof(int32_t));
  }
  const size_t off_bx = take(B * in_features_ * es);
  const size_t off_by = take(B * std::max<int64_t>(width_.back(), 1) * es + B * sizeof(int32_t));
  work_ = Buffer();  // free the old workspace first: peak memory is the new one only
  work_ = Buffer(arena_->device(), total);
  char* base = static_cast<char*>(work_.data());
  for (size_t v = 1; v < values_.size(); ++v) {
    values_[v] = base + off_val[v];
    grads_[v] = base + off_grad[v];
  }
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpSpec& s = ops_[i];
    preact_[i] = (s.kind == OpKind::linear && s.act.needs_input()) ? base + off_pre[i] : nullptr;
    masks_[i] = (s.kind == OpKind::dropout || s.kind == OpKind::maxout) ? base + off_mask[i] : nullptr;
  }
  batch_x_ = base + off_bx;
  batch_y_ = base + off_by;
  capacity_ = B;
}

void Network::forward_ops(const void* x, int64_t B) {
  values_[0] = const_cast<void*>(x);  // read only: no op writes its input
  const size_t es = dtype_size(dt_);
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpSpec& s = ops_[i];
    void* in = values_[i];
    void* out = values_[i + 1];
    const int64_t w = width_[i + 1];
    switch (s.kind) {
      case OpKind::linear: {
        void* z = preact_[i] ? preact_[i] : out;
        linear_forward(*be_, dt_, z, in, arena_->param_at(s.weight_off), B, s.in_features, s.out_features,
                       s.transposed);
        be_->bias_act_forward(dt_, s.act, z, out, s.has_bias ? arena_->param_at(s.bias_off) : nullptr, B, w);
        break;
      }
      case OpKind::activation: be_->bias_act_forward(dt_, s.act, in, out, nullptr, B, w); break;
      case OpKind::dropout:
        if (training_ && s.p > 0) {
          be_->dropout_forward(dt_, out, masks_[i], in, B * w, s.p, s.dropout->seed, s.dropout->counter);
          s.dropout->counter += uint64_t(B * w);
        } else {
          be_->copy(out, in, B * w * es);
        }
        break;
      case OpKind::maxout:
        be_->maxout_forward(dt_, out, static_cast<int32_t*>(masks_[i]), in, B, w, s.pieces);
        break;
      case OpKind::residual_add:
        be_->copy(out, in, B * w * es);
        be_->add_inplace(dt_, out, values_[s.skip], B * w);
        break;
    }
  }
}

void Network::backward_ops(int64_t B) {
  const size_t es = dtype_size(dt_);
  // Tied weights: the first use in the backward pass overwrites the gradient, later ones add.
  std::vector<int64_t>& seen = written_offsets_;
  seen.clear();
  auto first_write = [&](int64_t off) {
    if (std::find(seen.begin(), seen.end(), off) != seen.end()) return false;
    seen.push_back(off);
    return true;
  };
  for (size_t ii = ops_.size(); ii-- > 0;) {
    const OpSpec& s = ops_[ii];
    void* gout = grads_[ii + 1];
    void* gin = ii == 0 ? nullptr : grads_[ii];  // d loss / d input is never needed for the data
    const int64_t w = width_[ii + 1];
    switch (s.kind) {
      case OpKind::linear: {
        void* db = nullptr;
        bool acc_b = false;
        if (s.has_bias) {
          db = arena_->grad_at(s.bias_off);
          acc_b = !first_write(s.bias_off);
        }
        be_->act_backward_bias_grad(dt_, s.act, gout, gout, preact_[ii], values_[ii + 1], db, acc_b, B, w);
        const bool acc_w = !first_write(s.weight_off);
        linear_backward(*be_, dt_, gin, arena_->grad_at(s.weight_off), gout, values_[ii],
                        arena_->param_at(s.weight_off), B, s.in_features, s.out_features, s.transposed, acc_w);
        break;
      }
      case OpKind::activation:
        if (gin) be_->act_backward_bias_grad(dt_, s.act, gin, gout, values_[ii], values_[ii + 1], nullptr, false, B, w);
        break;
      case OpKind::dropout:
        if (gin) {
          if (training_ && s.p > 0)
            be_->mul(dt_, gin, gout, masks_[ii], B * w);
          else
            be_->copy(gin, gout, B * w * es);
        }
        break;
      case OpKind::maxout:
        if (gin) be_->maxout_backward(dt_, gin, gout, static_cast<const int32_t*>(masks_[ii]), B, w, s.pieces);
        break;
      case OpKind::residual_add:
        if (gin) be_->copy(gin, gout, B * w * es);
        break;
    }
    // The add gate also sends its gradient down the skip path: once grads_[ii] is complete from
    // op ii, add the gradient of every residual output that used value ii as its skip.
    if (gin)
      for (size_t j = ii; j < ops_.size(); ++j)
        if (ops_[j].kind == OpKind::residual_add && ops_[j].skip == int64_t(ii))
          be_->add_inplace(dt_, gin, grads_[j + 1], B * width_[ii]);
  }
}

Tensor Network::forward(const void* x, int64_t B) {
  std::lock_guard<std::mutex> lock(mutex_);
  reserve(B);
  forward_ops(x, B);
  return Tensor{values_.back(), B, width_.back(), dt_, arena_->device()};
}

void Network::forward_to_host(void* host_out, const void* x, int64_t B) {
  std::lock_guard<std::mutex> lock(mutex_);
  reserve(B);
  forward_ops(x, B);
  be_->download(host_out, values_.back(), size_t(B * width_.back()) * dtype_size(dt_));
}

namespace {
// Restores the network's train/eval flag however the scope is left (a backend error included).
struct TrainingFlagGuard {
  bool& flag;
  bool saved;
  TrainingFlagGuard(bool& f, bool value) : flag(f), saved(f) { flag = value; }
  ~TrainingFlagGuard() { flag = saved; }
};
}  // namespace

double Network::step_on(Optimizer& opt, LossKind loss, const void* x, const void* target, int64_t B,
                        bool check_finite, int64_t epoch, int64_t batch, int64_t* correct) {
  forward_ops(x, B);
  be_->loss_forward_backward(dt_, loss, static_cast<double*>(loss_dev_.data()), grads_.back(), values_.back(),
                             target, B, width_.back(), B);
  double value = 0;
  be_->download(&value, loss_dev_.data(), sizeof(double));
  if (check_finite && !std::isfinite(value))  // epoch < 0: a single train_step, not part of an epoch
    throw std::runtime_error("mlpcore: non-finite loss (" + std::to_string(value) + ")" +
                             (epoch < 0 ? std::string(" in train_step")
                                        : " at epoch " + std::to_string(epoch) + ", batch " + std::to_string(batch)) +
                             "; training stopped before this batch updated the weights (lower the learning "
                             "rate or check the data)");
  if (correct) *correct += be_->count_correct(dt_, values_.back(), static_cast<const int32_t*>(target), B, width_.back());
  backward_ops(B);
  opt.step();
  return value;
}

void Network::check_optimizer(const Optimizer& opt) const {
  MC_CHECK_VALUE(opt.device() == arena_->device() && opt.dtype() == dt_, "optimizer lives on ",
                 device_name(opt.device()), "/", dtype_name(opt.dtype()), " but the network on ",
                 device_name(arena_->device()), "/", dtype_name(dt_));
  // Every segment must lie in this network's arena: an optimizer built over other (or stale,
  // since moved) parameters would otherwise update memory this network never writes gradients to.
  const uintptr_t lo = reinterpret_cast<uintptr_t>(arena_->params());
  const uintptr_t hi = lo + size_t(arena_->numel()) * dtype_size(dt_);
  for (const auto& s : opt.segments()) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(s.param);
    MC_CHECK(p >= lo && p + size_t(s.n) * dtype_size(dt_) <= hi,
             "optimizer: its parameters are not this network's (the model's parameters moved, e.g. into a new "
             "Sequential, after the optimizer was created); create the optimizer from model.parameters()");
  }
}

double Network::train_step(Optimizer& opt, LossKind loss, const void* x, const void* target, int64_t B,
                           bool check_finite) {
  std::lock_guard<std::mutex> lock(mutex_);
  check_optimizer(opt);
  reserve(B);
  return step_on(opt, loss, x, target, B, check_finite, -1, 0);
}

// Fisher-Yates with our splitmix64 stream: the same permutation on every platform.
void permutation_fill(int64_t* perm, int64_t n, uint64_t seed) {
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  uint64_t state = splitmix64(seed ^ 0x5DEECE66Dull);
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = int64_t(splitmix64(state++) % uint64_t(i + 1));
    std::swap(perm[i], perm[j]);
  }
}

double Network::train_epoch(Optimizer& opt, LossKind loss, const void* X, const void* Y, int64_t n,
                            int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch_index,
                            bool check_finite, int64_t batch_begin, int64_t batch_end) {
  std::lock_guard<std::mutex> lock(mutex_);
  check_optimizer(opt);
  MC_CHECK_VALUE(n > 0 && batch_size > 0, "train_epoch: need n > 0 and batch_size > 0");
  const int64_t bs = std::min(batch_size, n);
  const int64_t num_batches = (n + bs - 1) / bs;
  if (batch_end < 0 || batch_end > num_batches) batch_end = num_batches;
  MC_CHECK_VALUE(batch_begin >= 0 && batch_begin < batch_end, "train_epoch: empty batch range [", batch_begin, ", ",
                 batch_end, ") of ", num_batches, " batches");
  reserve(bs);
  const size_t es = dtype_size(dt_);
  const bool labels = loss == LossKind::cross_entropy;
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
  int64_t rows_done = 0;
  last_correct_ = 0;
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
    total += step_on(opt, loss, xb, yb, rows, check_finite, epoch_index, batch, labels ? &last_correct_ : nullptr) *
             double(rows);
    rows_done += rows;
  }
  return total / double(rows_done);
}

void Network::predict(void* out, const void* X, int64_t n, int64_t batch_size) {
  std::lock_guard<std::mutex> lock(mutex_);
  TrainingFlagGuard eval_mode(training_, false);
  const int64_t bs = std::max<int64_t>(1, std::min(batch_size, n));
  reserve(bs);
  const size_t es = dtype_size(dt_);
  const int64_t oc = width_.back();
  for (int64_t start = 0; start < n; start += bs) {
    const int64_t rows = std::min(bs, n - start);
    forward_ops(static_cast<const char*>(X) + size_t(start * in_features_) * es, rows);
    be_->copy(static_cast<char*>(out) + size_t(start * oc) * es, values_.back(), size_t(rows * oc) * es);
  }
}

double Network::evaluate(LossKind loss, const void* X, const void* Y, int64_t n, int64_t batch_size,
                         int64_t* correct) {
  std::lock_guard<std::mutex> lock(mutex_);
  TrainingFlagGuard eval_mode(training_, false);
  const int64_t bs = std::max<int64_t>(1, std::min(batch_size, n));
  reserve(bs);
  const size_t es = dtype_size(dt_);
  const int64_t oc = width_.back();
  const bool labels = loss == LossKind::cross_entropy;
  double total = 0;
  *correct = 0;
  for (int64_t start = 0; start < n; start += bs) {
    const int64_t rows = std::min(bs, n - start);
    forward_ops(static_cast<const char*>(X) + size_t(start * in_features_) * es, rows);
    const void* yb = labels ? static_cast<const void*>(static_cast<const int32_t*>(Y) + start)
                            : static_cast<const void*>(static_cast<const char*>(Y) + size_t(start * oc) * es);
    be_->loss_forward_backward(dt_, loss, static_cast<double*>(loss_dev_.data()), grads_.back(), values_.back(),
                               yb, rows, oc, rows);
    double value = 0;
    be_->download(&value, loss_dev_.data(), sizeof(double));
    total += value * double(rows);
    if (labels) *correct += be_->count_correct(dt_, values_.back(), static_cast<const int32_t*>(yb), rows, oc);
  }
  return total / double(n);
}

}  // namespace mc
