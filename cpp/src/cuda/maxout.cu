// cuda/maxout.cu — the CUDA kernels of the maxout op (CPU twin: ops/maxout.cpp).
#include "cuda/common.cuh"
#include "ops/maxout.h"

namespace mc {
namespace {

using namespace gpu;

// y[groups], idx[groups] = max / first arg-max of x[groups, pieces]. CPU twin: ops/maxout.cpp forward_cpu.
template <class T>
__global__ void maxout_forward_kernel(T* y, int32_t* idx, const T* x, int64_t groups, int64_t pieces) {
  for (int64_t i = grid_index(); i < groups; i += grid_stride()) {
    const T* g = x + i * pieces;
    int32_t best = 0;
    for (int32_t k = 1; k < pieces; ++k)
      if (g[k] > g[best]) best = k;
    y[i] = g[best];
    idx[i] = best;
  }
}

// dx[groups, pieces] = dy at the winning piece, 0 elsewhere (each thread writes a whole group, so
// no separate zero fill). CPU twin: ops/maxout.cpp backward_cpu.
template <class T>
__global__ void maxout_backward_kernel(T* dx, const T* dy, const int32_t* idx, int64_t groups, int64_t pieces) {
  for (int64_t i = grid_index(); i < groups; i += grid_stride())
    for (int64_t k = 0; k < pieces; ++k) dx[i * pieces + k] = k == idx[i] ? dy[i] : T(0);
}

void forward_cuda(DType dt, void* y, int32_t* idx, const void* x, int64_t rows, int64_t cols, int64_t pieces) {
  if (rows * cols <= 0) return;
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    maxout_forward_kernel<T><<<blocks_for(rows * cols), kThreads, 0, stream()>>>(
        static_cast<T*>(y), idx, static_cast<const T*>(x), rows * cols, pieces);
  });
  MC_CUDA_LAUNCH_CHECK();
}

void backward_cuda(DType dt, void* dx, const void* dy, const int32_t* idx, int64_t rows, int64_t cols,
                   int64_t pieces) {
  if (rows * cols <= 0) return;
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    maxout_backward_kernel<T><<<blocks_for(rows * cols), kThreads, 0, stream()>>>(
        static_cast<T*>(dx), static_cast<const T*>(dy), idx, rows * cols, pieces);
  });
  MC_CUDA_LAUNCH_CHECK();
}

const MaxoutKernels kMaxoutCuda{&forward_cuda, &backward_cuda};

}  // namespace

const void* maxout_kernels_cuda() { return &kMaxoutCuda; }

}  // namespace mc
