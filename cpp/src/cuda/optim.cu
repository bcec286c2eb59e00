// cuda/optim.cu — the CUDA optimizer kernels (CPU twin: src/optim.cpp). Both evaluate optim.h's
// update formulas with the same compile-time flags; each launch picks the instantiation the CPU
// loop would.
#include <algorithm>

#include "cuda/common.cuh"
#include "mlpcore/optim.h"

namespace mc {
namespace {

using namespace gpu;

// SGD with momentum / Nesterov / L2 weight decay over n parameters. CPU twin: sgd_loop.
template <class T, bool WD, bool MOM, bool FIRST, bool NESTEROV>
__global__ void sgd_kernel(T* w, const T* g, T* buf, int64_t n, T lr, T wd, T mom) {
  for (int64_t i = grid_index(); i < n; i += grid_stride())
    sgd_update<WD, MOM, FIRST, NESTEROV>(w[i], buf[i], g[i], lr, wd, mom);
}

// Adam / AdamW over n parameters; m, v the moments. CPU twin: adam_loop.
template <class T, bool WD, bool DECOUPLED>
__global__ void adam_kernel(T* w, const T* g, T* m, T* v, int64_t n, AdamScalars<T> s) {
  for (int64_t i = grid_index(); i < n; i += grid_stride())
    adam_update<WD, DECOUPLED>(w[i], m[i], v[i], g[i], s.wd, s.decay, s.b1, s.b2, s.eps, s.step_size, s.bc2_sqrt);
}

// RMSprop (optionally centered, with momentum) over n parameters. CPU twin: rmsprop_loop.
template <class T, bool CENTERED, bool MOM>
__global__ void rmsprop_kernel(T* w, const T* g, T* sq, T* buf, T* mean, int64_t n, T lr, T wd, T alpha, T eps, T mom) {
  for (int64_t i = grid_index(); i < n; i += grid_stride())
    rmsprop_update<CENTERED, MOM>(w[i], sq[i], buf[i], mean[i], g[i], lr, wd, alpha, eps, mom);
}

template <class T, bool WD>
void sgd_launch(const OptimParams& p, T* w, const T* g, T* buf, int64_t n) {
  const T lr = T(p.lr), wd = T(p.weight_decay), mom = T(p.momentum);
  const unsigned b = blocks_for(n);
  cudaStream_t s = stream();
  if (mom == T(0))
    sgd_kernel<T, WD, false, false, false><<<b, kThreads, 0, s>>>(w, g, buf, n, lr, wd, mom);
  else if (p.step <= 1 && p.nesterov)
    sgd_kernel<T, WD, true, true, true><<<b, kThreads, 0, s>>>(w, g, buf, n, lr, wd, mom);
  else if (p.step <= 1)
    sgd_kernel<T, WD, true, true, false><<<b, kThreads, 0, s>>>(w, g, buf, n, lr, wd, mom);
  else if (p.nesterov)
    sgd_kernel<T, WD, true, false, true><<<b, kThreads, 0, s>>>(w, g, buf, n, lr, wd, mom);
  else
    sgd_kernel<T, WD, true, false, false><<<b, kThreads, 0, s>>>(w, g, buf, n, lr, wd, mom);
}

template <class T, bool WD, bool DECOUPLED>
void adam_launch(const OptimParams& p, T* w, const T* g, T* state, int64_t n) {
  adam_kernel<T, WD, DECOUPLED><<<blocks_for(n), kThreads, 0, stream()>>>(w, g, state, state + n, n, adam_scalars<T>(p));
}

template <class T, bool CENTERED, bool MOM>
void rmsprop_launch(const OptimParams& p, T* w, const T* g, T* state, int64_t n) {
  rmsprop_kernel<T, CENTERED, MOM><<<blocks_for(n), kThreads, 0, stream()>>>(
      w, g, state, state + n, state + 2 * n, n, T(p.lr), T(p.weight_decay), T(p.alpha), T(p.eps), T(p.momentum));
}

template <class T>
void step_t(const OptimParams& p, T* w, const T* g, T* state, int64_t n) {
  const bool wd = p.weight_decay != 0.0;
  switch (p.kind) {
    case OptimKind::sgd: return wd ? sgd_launch<T, true>(p, w, g, state, n) : sgd_launch<T, false>(p, w, g, state, n);
    case OptimKind::adam:
      return wd ? adam_launch<T, true, false>(p, w, g, state, n) : adam_launch<T, false, false>(p, w, g, state, n);
    case OptimKind::adamw:
      return wd ? adam_launch<T, true, true>(p, w, g, state, n) : adam_launch<T, false, true>(p, w, g, state, n);
    case OptimKind::rmsprop: {
      const bool mom = p.momentum > 0.0;
      if (p.centered)
        return mom ? rmsprop_launch<T, true, true>(p, w, g, state, n) : rmsprop_launch<T, true, false>(p, w, g, state, n);
      return mom ? rmsprop_launch<T, false, true>(p, w, g, state, n) : rmsprop_launch<T, false, false>(p, w, g, state, n);
    }
  }
}

void step_cuda(DType dt, const OptimParams& p, void* param, const void* grad, void* state, int64_t n) {
  if (n <= 0) return;
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    step_t<T>(p, static_cast<T*>(param), static_cast<const T*>(grad), static_cast<T*>(state), n);
  });
  MC_CUDA_LAUNCH_CHECK();
}

// Gradient clipping, first pass: partial[blockIdx.x] = Σ x² over the block's grid-stride share,
// in double. CPU twin: add_sum_squares_cpu.
template <class T>
__global__ void sum_squares_kernel(double* partial, const T* x, int64_t n) {
  __shared__ double warp_part[kWarps];
  double v = 0;
  for (int64_t i = grid_index(); i < n; i += grid_stride()) v += double(x[i]) * double(x[i]);
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) warp_part[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0;
    for (int w = 0; w < kWarps; ++w) s += warp_part[w];
    partial[blockIdx.x] = s;
  }
}

// Second pass: *sum += Σ partial[0..n), one thread, fixed order (n <= 1024).
__global__ void add_partials_serial_kernel(double* sum, const double* partial, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += partial[i];
  *sum += s;
}

// x[n] *= s. CPU twin: scale_cpu.
template <class T>
__global__ void scale_kernel(T* x, int64_t n, T s) {
  for (int64_t i = grid_index(); i < n; i += grid_stride()) x[i] *= s;
}

void add_sum_squares_cuda(DType dt, double* sum, const void* x, int64_t n) {
  if (n <= 0) return;
  std::lock_guard<std::mutex> lock(scratch_mutex());
  const unsigned blocks = std::min(blocks_for(n), 1024u);
  auto* partial = static_cast<double*>(scratch(blocks * sizeof(double)));
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    sum_squares_kernel<T><<<blocks, kThreads, 0, stream()>>>(partial, static_cast<const T*>(x), n);
  });
  MC_CUDA_LAUNCH_CHECK();
  add_partials_serial_kernel<<<1, 1, 0, stream()>>>(sum, partial, int(blocks));
  MC_CUDA_LAUNCH_CHECK();
}

void scale_cuda(DType dt, void* x, int64_t n, double s) {
  if (n <= 0) return;
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    scale_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<T*>(x), n, T(s));
  });
  MC_CUDA_LAUNCH_CHECK();
}

const OptimKernels kOptimCuda{&step_cuda, &add_sum_squares_cuda, &scale_cuda};

}  // namespace

const void* optim_kernels_cuda() { return &kOptimCuda; }

}  // namespace mc
