// optim.cpp — Optimizer (one flat state buffer, one kernel call per segment) and the CPU
// optimizer kernels (CUDA twin: cuda/optim.cu). The update formulas are optim.h's; here they are
// instantiated with every flag resolved at compile time, so each loop body is straight-line code
// that vectorises (one pass: read w, g, state; write w, state).
#include "mlpcore/optim.h"

#include <cmath>

#define MC_RESTRICT __restrict__

namespace mc {
namespace {

template <class T, bool WD, bool MOM, bool FIRST, bool NESTEROV>
void sgd_loop(T* MC_RESTRICT w, const T* MC_RESTRICT g, T* MC_RESTRICT buf, int64_t n, T lr, T wd, T mom) {
  for (int64_t i = 0; i < n; ++i) sgd_update<WD, MOM, FIRST, NESTEROV>(w[i], buf[i], g[i], lr, wd, mom);
}

template <class T, bool WD>
void sgd_dispatch(const OptimParams& p, T* w, const T* g, T* buf, int64_t n) {
  const T lr = T(p.lr), wd = T(p.weight_decay), mom = T(p.momentum);
  const bool first = p.step <= 1;
  if (mom == T(0)) return sgd_loop<T, WD, false, false, false>(w, g, buf, n, lr, wd, mom);
  if (first)
    return p.nesterov ? sgd_loop<T, WD, true, true, true>(w, g, buf, n, lr, wd, mom)
                      : sgd_loop<T, WD, true, true, false>(w, g, buf, n, lr, wd, mom);
  return p.nesterov ? sgd_loop<T, WD, true, false, true>(w, g, buf, n, lr, wd, mom)
                    : sgd_loop<T, WD, true, false, false>(w, g, buf, n, lr, wd, mom);
}

template <class T, bool WD, bool DECOUPLED>
void adam_loop(const OptimParams& p, T* MC_RESTRICT w, const T* MC_RESTRICT g, T* MC_RESTRICT m,
               T* MC_RESTRICT v, int64_t n) {
  const AdamScalars<T> s = adam_scalars<T>(p);
  const T wd = s.wd, decay = s.decay, b1 = s.b1, b2 = s.b2, eps = s.eps, step_size = s.step_size,
          bc2_sqrt = s.bc2_sqrt;
  for (int64_t i = 0; i < n; ++i)
    adam_update<WD, DECOUPLED>(w[i], m[i], v[i], g[i], wd, decay, b1, b2, eps, step_size, bc2_sqrt);
}

template <class T, bool CENTERED, bool MOM>
void rmsprop_loop(const OptimParams& p, T* MC_RESTRICT w, const T* MC_RESTRICT g, T* MC_RESTRICT sq,
                  T* MC_RESTRICT buf, T* MC_RESTRICT mean, int64_t n) {
  const T lr = T(p.lr), wd = T(p.weight_decay), alpha = T(p.alpha), eps = T(p.eps), mom = T(p.momentum);
  for (int64_t i = 0; i < n; ++i)
    rmsprop_update<CENTERED, MOM>(w[i], sq[i], buf[i], mean[i], g[i], lr, wd, alpha, eps, mom);
}

template <class T>
void optim_step_cpu_t(const OptimParams& p, T* w, const T* g, T* state, int64_t n) {
  const bool wd = p.weight_decay != 0.0;
  switch (p.kind) {
    case OptimKind::sgd:
      return wd ? sgd_dispatch<T, true>(p, w, g, state, n) : sgd_dispatch<T, false>(p, w, g, state, n);
    case OptimKind::adam:
      return wd ? adam_loop<T, true, false>(p, w, g, state, state + n, n)
                : adam_loop<T, false, false>(p, w, g, state, state + n, n);
    case OptimKind::adamw:
      return wd ? adam_loop<T, true, true>(p, w, g, state, state + n, n)
                : adam_loop<T, false, true>(p, w, g, state, state + n, n);
    case OptimKind::rmsprop: {
      const bool mom = p.momentum > 0.0;
      T* sq = state;
      T* buf = state + n;
      T* mean = state + 2 * n;
      if (p.centered)
        return mom ? rmsprop_loop<T, true, true>(p, w, g, sq, buf, mean, n)
                   : rmsprop_loop<T, true, false>(p, w, g, sq, buf, mean, n);
      return mom ? rmsprop_loop<T, false, true>(p, w, g, sq, buf, mean, n)
                 : rmsprop_loop<T, false, false>(p, w, g, sq, buf, mean, n);
    }
  }
}

void optim_step_cpu(DType dt, const OptimParams& p, void* param, const void* grad, void* state, int64_t n) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    optim_step_cpu_t<T>(p, static_cast<T*>(param), static_cast<const T*>(grad), static_cast<T*>(state), n);
  });
}

// *sum += Σ x² over n values: eight double accumulators (they vectorise), then in order.
void add_sum_squares_cpu(DType dt, double* sum, const void* x, int64_t n) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* xs = static_cast<const T*>(x);
    constexpr int kLanes = 8;
    double acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] += double(xs[i + j]) * double(xs[i + j]);
    double s = 0;
    for (; i < n; ++i) s += double(xs[i]) * double(xs[i]);
    for (int j = 0; j < kLanes; ++j) s += acc[j];
    *sum += s;
  });
}

void scale_cpu(DType dt, void* x, int64_t n, double s) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    T* xs = static_cast<T*>(x);
    const T f = T(s);
    for (int64_t i = 0; i < n; ++i) xs[i] *= f;
  });
}

const OptimKernels kOptimCpu{&optim_step_cpu, &add_sum_squares_cpu, &scale_cpu};

}  // namespace

const void* optim_kernels_cpu() { return &kOptimCpu; }

Optimizer::Optimizer(Device device, DType dtype, OptimParams params, std::vector<OptimSegment> segments)
    : device_(device), dtype_(dtype), params_(params), segments_(std::move(segments)) {
  const int slots = optim_state_slots(params_);
  for (const auto& s : segments_) {
    offsets_.push_back(state_numel_);
    state_numel_ += slots * s.n;
  }
  state_ = Buffer(device_, size_t(state_numel_) * dtype_size(dtype_));
  norm_dev_ = Buffer(device_, sizeof(double));
  reset_state();
}

void Optimizer::reset_state() {
  backend_for(device_).fill(dtype_, state_.data(), state_numel_, 0.0);
  params_.step = 0;
}

void Optimizer::step() {
  Backend& be = backend_for(device_);
  const OptimKernels& k = kernels_of<OptimKernels>(be);
  params_.step += 1;
  const size_t es = dtype_size(dtype_);
  for (size_t i = 0; i < segments_.size(); ++i) {
    const auto& s = segments_[i];
    if (s.active) k.step(dtype_, params_, s.param, s.grad, static_cast<char*>(state_.data()) + offsets_[i] * es, s.n);
  }
}

double Optimizer::clip_grad_norm(double max_norm) {
  return mc::clip_grad_norm(backend_for(device_), dtype_, segments_, max_norm, static_cast<double*>(norm_dev_.data()));
}

double clip_grad_norm(Backend& be, DType dt, const std::vector<OptimSegment>& segments, double max_norm,
                      double* sum_dev, bool error_if_nonfinite) {
  const OptimKernels& k = kernels_of<OptimKernels>(be);
  be.fill(DType::f64, sum_dev, 1, 0.0);
  for (const auto& s : segments)
    if (s.active) k.add_sum_squares(dt, sum_dev, s.grad, s.n);
  double sum = 0;
  be.download(&sum, sum_dev, sizeof(double));
  const double norm = std::sqrt(sum);
  MC_CHECK(!error_if_nonfinite || std::isfinite(norm), "clip_grad_norm_: the total norm of the gradients is ", norm,
           "; the gradients were left as they were (error_if_nonfinite=True)");
  // PyTorch: clip_coef = max_norm / (norm + 1e-6), clamped to 1 (a multiplication by 1 changes
  // nothing, so only a coefficient below 1, or NaN, scales).
  const double coef = max_norm / (norm + 1e-6);
  if (max_norm >= 0 && !(coef >= 1.0))
    for (const auto& s : segments)
      if (s.active) k.scale(dt, s.grad, s.n, coef);
  return norm;
}

}  // namespace mc
