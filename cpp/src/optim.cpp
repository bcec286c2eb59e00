// optim.cpp — Optimizer (one flat state buffer, one kernel call per segment) and the CPU
// optimizer kernels (CUDA twin: cuda/optim.cu). The update formulas are optim.h's; here they are
// instantiated with every flag resolved at compile time, so each loop body is straight-line code
// that vectorises (one pass: read w, g, state; write w, state).
#include "mlpcore/optim.h"

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

const OptimKernels kOptimCpu{&optim_step_cpu};

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
    k.step(dtype_, params_, s.param, s.grad, static_cast<char*>(state_.data()) + offsets_[i] * es, s.n);
  }
}

}  // namespace mc
