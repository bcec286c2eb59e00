// cuda/dropout.cu — the CUDA kernel of the dropout op (CPU twin: ops/dropout.cpp). The same
// counter-based stream as the CPU (rng.h), hence identical masks.
#include "cuda/common.cuh"
#include "mlpcore/rng.h"
#include "ops/dropout.h"

namespace mc {
namespace {

using namespace gpu;

// Inverted dropout over n values: mask = u01(splitmix64(key ^ (offset + i))) >= p ? scale : 0,
// y = x * mask — the same counter-based stream as the CPU, hence identical masks.
// CPU twin: ops/dropout.cpp forward_cpu.
template <class T>
__global__ void dropout_kernel(T* y, T* mask, const T* x, int64_t n, double p, T scale, uint64_t key, uint64_t offset) {
  for (int64_t i = grid_index(); i < n; i += grid_stride()) {
    const T m = u01(splitmix64(key ^ (offset + uint64_t(i)))) >= p ? scale : T(0);
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

void forward_cuda(DType dt, void* y, void* mask, const void* x, int64_t n, double p, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
    dropout_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<T*>(y), static_cast<T*>(mask),
                                                                  static_cast<const T*>(x), n, p, scale,
                                                                  splitmix64(seed), offset);
  });
  MC_CUDA_LAUNCH_CHECK();
}

const DropoutKernels kDropoutCuda{&forward_cuda};

}  // namespace

const void* dropout_kernels_cuda() { return &kDropoutCuda; }

}  // namespace mc
