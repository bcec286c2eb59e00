// cuda/common.cuh — what the CUDA files of the backend share: the context (driver probe, stream,
// cuBLAS), the error macros, launch helpers and warp reductions, and the scratch memory of the
// reductions. Defined in cuda/context.cu.
//
// Kernels: each names its CPU twin (ops/<name>.cpp, optim.cpp, cpu/cpu_backend.cpp) and
// evaluates the same expressions in the same type T, using the shared scalar formulas of
// activations.h, loss.h, optim.h and rng.h (MC_HD). Results differ from the CPU by summation
// order, by nvcc's fused multiply-adds (≈ 1 ulp per operation) and, in float32, by the
// transcendental functions: CUDA's expf/tanhf/erff (<= 2 ulp) here, the CPU's vectorisable
// vmath.h approximations there — all far inside the 1e-5 parity tolerance. Reductions (bias
// gradient, loss value) are two-pass with a fixed order — per-block partial sums, then one
// fixed-order pass — so results are deterministic run to run: no float atomics.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "mlpcore/check.h"

// CUDA runtime / cuBLAS errors -> RuntimeError carrying file:line and the call.
#define MC_CUDA_CHECK(call)                                                                            \
  do {                                                                                                 \
    const cudaError_t err_ = (call);                                                                   \
    if (err_ != cudaSuccess)                                                                           \
      ::mc::detail::raise_at<std::runtime_error>(__FILE__, __LINE__, "CUDA error: ", #call, ": ",      \
                                                 cudaGetErrorString(err_));                            \
  } while (0)
#define MC_CUDA_LAUNCH_CHECK() MC_CUDA_CHECK(cudaGetLastError())
#define MC_CUBLAS_CHECK(call)                                                                          \
  do {                                                                                                 \
    const cublasStatus_t st_ = (call);                                                                 \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                  \
      ::mc::detail::raise_at<std::runtime_error>(__FILE__, __LINE__, "cuBLAS error: ", #call, ": ",    \
                                                 ::mc::gpu::ctx().api.status_string(st_));             \
  } while (0)

namespace mc {
namespace gpu {

// cuBLAS entry points, dlopen()ed on first use (see cmake/cuda.cmake for why and where).
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasDgemm_v2) dgemm = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

// Driver probe, stream and cuBLAS handle, created once and never destroyed (CUDA tears its own
// state down at exit; destroying ours from a static destructor would race it).
struct CudaContext {
  bool ok = false;
  std::string reason;
  int device = 0;
  int num_sms = 1;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  CublasApi api;
};
CudaContext& ctx();
inline cudaStream_t stream() { return ctx().stream; }

constexpr int kThreads = 256;  // threads per block of the 1-D kernels
constexpr int kWarps = kThreads / 32;

// Blocks for a grid-stride loop over n items: enough to fill the GPU, not one per item.
unsigned blocks_for(int64_t n, int per_block = kThreads);

// Scratch device memory for reduction partials and the flags / counters of synchronising
// queries. Callers hold scratch_mutex() from first use to last enqueue, so the passes of one
// reduction are adjacent in the stream even when several threads share the backend. scratch()
// grows on demand (cudaFree synchronises, so queued users are done) and is then reused, so a
// steady-state step allocates nothing; small_buffer() is 64 bytes, allocated once.
std::mutex& scratch_mutex();
void* scratch(size_t nbytes);
void* small_buffer();

#ifdef __CUDACC__
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// The index of the grid-stride loops: for (int64_t i = grid_index(); i < n; i += grid_stride()).
__device__ __forceinline__ int64_t grid_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }
#endif

}  // namespace gpu
}  // namespace mc
