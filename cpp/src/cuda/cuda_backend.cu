// cuda/cuda_backend.cu — the CUDA implementation of the Backend's generic primitives (memory,
// cuBLAS GEMM, gathers, element-wise add / multiply, the finiteness scan) and the CUDA kernel
// table; the op kernels live beside their CPU twins' names (cuda/<op>.cu, cuda/optim.cu).
//
// GEMM convention: cuBLAS is column-major and a row-major (M, N) matrix with leading dimension
// ld is the column-major (N, M) matrix of its transpose. So the row-major C = op(A)·op(B) is
// computed as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cublas<t>gemm(op_b, op_a, N, M, K, B, ldb, A,
// lda, C, ldc) — operands swapped, transpose flags and leading dimensions unchanged.
// gemm_fixed_order is the Backend default (plain cuBLAS): batch-invariant inference is CPU-only.
//
// Memory: cudaMalloc per Buffer (the network allocates a handful, once). One stream
// (non-blocking); host<->device copies synchronise it.
//
// Not done yet:
//  - CUDA graphs of the steady-state step. Network::step_on downloads the loss between the loss
//    and the backward pass (a synchronising copy, not capturable), and several kernel arguments
//    change every step: the gather's `perm + start` (or, without shuffle, the batch pointer that
//    the first GEMM reads), each dropout's counter offset, and the optimizer's step count (SGD's
//    first-step flag, Adam's bias corrections) and learning rate. Capturing needs those in device
//    memory (or patched with cudaGraphExecKernelNodeSetParams), the loss kept on the device and
//    downloaded after the replay (the finite check then gating the optimizer on the device),
//    begin/end-capture hooks on Backend (no-ops on the CPU), a cuBLAS workspace set with
//    cublasSetWorkspace, and the scratch buffer sized before capture. The last, smaller batch of
//    an epoch runs eagerly.
//  - cuBLASLt epilogues (RELU_BIAS forward, DRELU_BGRAD backward): plain cuBLAS plus the fused
//    kernels of cuda/activation.cu until a GPU measurement shows the epilogues faster.
#include "cuda/cuda_backend.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "cuda/common.cuh"

namespace mc {

#define MC_X(name) const void* name##_kernels_cuda();
MC_FOR_KERNEL_SETS(MC_X)
#undef MC_X

namespace {

using namespace gpu;

// p[n] = value. CPU twin: CpuBackend::fill.
template <class T>
__global__ void fill_kernel(T* p, int64_t n, T value) {
  for (int64_t i = grid_index(); i < n; i += grid_stride()) p[i] = value;
}

// C[M, ldc] (first N columns) *= beta, the K == 0 case of gemm. CPU twin: OpenBLAS gemm with K = 0.
template <class T>
__global__ void scale_matrix_kernel(T* C, int64_t M, int64_t N, int64_t ldc, T beta) {
  for (int64_t i = grid_index(); i < M * N; i += grid_stride()) {
    T* c = C + (i / N) * ldc + i % N;
    *c = beta == T(0) ? T(0) : *c * beta;
  }
}

// out[rows, cols] = src[idx[i], :]. CPU twin: CpuBackend::gather_rows.
template <class T>
__global__ void gather_rows_kernel(T* out, const T* src, const int64_t* idx, int64_t rows, int64_t cols) {
  for (int64_t i = grid_index(); i < rows * cols; i += grid_stride()) out[i] = src[idx[i / cols] * cols + i % cols];
}

// out[rows] = src[idx[i]] (int32 labels). CPU twin: CpuBackend::gather_labels.
__global__ void gather_labels_kernel(int32_t* out, const int32_t* src, const int64_t* idx, int64_t rows) {
  for (int64_t i = grid_index(); i < rows; i += grid_stride()) out[i] = src[idx[i]];
}

// y[n] = a * b. CPU twin: CpuBackend::mul.
template <class T>
__global__ void mul_kernel(T* y, const T* a, const T* b, int64_t n) {
  for (int64_t i = grid_index(); i < n; i += grid_stride()) y[i] = a[i] * b[i];
}

// y[n] += x. CPU twin: CpuBackend::add_inplace.
template <class T>
__global__ void add_inplace_kernel(T* y, const T* x, int64_t n) {
  for (int64_t i = grid_index(); i < n; i += grid_stride()) y[i] += x[i];
}

// *flag = 1 if any of x[n] is NaN or Inf. CPU twin: CpuBackend::all_finite.
template <class T>
__global__ void nonfinite_kernel(int* flag, const T* x, int64_t n) {
  for (int64_t i = grid_index(); i < n; i += grid_stride())
    if (!isfinite(x[i])) *flag = 1;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() : s_(ctx().stream) {
#define MC_X(name) kernels_[int(KernelSet::name)] = name##_kernels_cuda();
    MC_FOR_KERNEL_SETS(MC_X)
#undef MC_X
  }
  Device device() const override { return Device::cuda; }

  void* alloc(size_t nbytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(nbytes, 256));
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      detail::raise_at<std::runtime_error>(__FILE__, __LINE__, "CUDA out of memory: cannot allocate ", nbytes,
                                           " bytes (", free_b >> 20, " MiB free of ", total_b >> 20, " MiB): ",
                                           cudaGetErrorString(e));
    }
    return p;
  }
  // Errors are ignored: this runs from destructors, possibly while the process exits.
  void free(void* p) override {
    if (p && cudaFree(p) != cudaSuccess) cudaGetLastError();
  }
  void copy(void* dst, const void* src, size_t n) override {
    if (n && dst != src) MC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s_));
  }
  // Host memory is pageable (numpy, std::vector): synchronise so the caller may reuse it at once.
  void upload(void* dst, const void* host, size_t n) override {
    if (!n) return;
    MC_CUDA_CHECK(cudaMemcpyAsync(dst, host, n, cudaMemcpyHostToDevice, s_));
    MC_CUDA_CHECK(cudaStreamSynchronize(s_));
  }
  void download(void* host, const void* src, size_t n) override {
    if (!n) return;
    MC_CUDA_CHECK(cudaMemcpyAsync(host, src, n, cudaMemcpyDeviceToHost, s_));
    MC_CUDA_CHECK(cudaStreamSynchronize(s_));
  }
  void fill(DType dt, void* p, int64_t n, double value) override {
    if (n <= 0) return;
    if (value == 0.0 && !std::signbit(value)) {
      MC_CUDA_CHECK(cudaMemsetAsync(p, 0, size_t(n) * dtype_size(dt), s_));
      return;
    }
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      fill_kernel<T><<<blocks_for(n), kThreads, 0, s_>>>(static_cast<T*>(p), n, T(value));
    });
    MC_CUDA_LAUNCH_CHECK();
  }
  void gemm(DType dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, double beta, void* C, int64_t ldc) override {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // C = beta * C (BLAS semantics); cuBLAS would refuse lda = 0
      dtype_dispatch(dt, [&](auto t) {
        using T = decltype(t);
        scale_matrix_kernel<T><<<blocks_for(M * N), kThreads, 0, s_>>>(static_cast<T*>(C), M, N, ldc, T(beta));
      });
      MC_CUDA_LAUNCH_CHECK();
      return;
    }
    MC_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX,
             "gemm: dimensions beyond 2^31 are not supported by this backend");
    CudaContext& c = ctx();
    const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    // Row-major C = op(A) op(B)  <=>  column-major Cᵀ = op(B)ᵀ op(A)ᵀ (see the file comment).
    switch (dt) {
      case DType::f32: {
        const float a = float(alpha), b = float(beta);
        MC_CUBLAS_CHECK(c.api.sgemm(c.blas, opb, opa, int(N), int(M), int(K), &a, static_cast<const float*>(B),
                                    int(ldb), static_cast<const float*>(A), int(lda), &b, static_cast<float*>(C),
                                    int(ldc)));
        return;
      }
      case DType::f64:
        MC_CUBLAS_CHECK(c.api.dgemm(c.blas, opb, opa, int(N), int(M), int(K), &alpha, static_cast<const double*>(B),
                                    int(ldb), static_cast<const double*>(A), int(lda), &beta, static_cast<double*>(C),
                                    int(ldc)));
        return;
    }
  }

  void gather_rows(DType dt, void* out, const void* src, const int64_t* idx, int64_t rows, int64_t cols) override {
    if (rows <= 0 || cols <= 0) return;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      gather_rows_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s_>>>(static_cast<T*>(out),
                                                                         static_cast<const T*>(src), idx, rows, cols);
    });
    MC_CUDA_LAUNCH_CHECK();
  }
  void gather_labels(int32_t* out, const int32_t* src, const int64_t* idx, int64_t rows) override {
    if (rows <= 0) return;
    gather_labels_kernel<<<blocks_for(rows), kThreads, 0, s_>>>(out, src, idx, rows);
    MC_CUDA_LAUNCH_CHECK();
  }
  void mul(DType dt, void* y, const void* a, const void* b, int64_t n) override {
    if (n <= 0) return;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      mul_kernel<T><<<blocks_for(n), kThreads, 0, s_>>>(static_cast<T*>(y), static_cast<const T*>(a),
                                                         static_cast<const T*>(b), n);
    });
    MC_CUDA_LAUNCH_CHECK();
  }
  void add_inplace(DType dt, void* y, const void* x, int64_t n) override {
    if (n <= 0) return;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      add_inplace_kernel<T><<<blocks_for(n), kThreads, 0, s_>>>(static_cast<T*>(y), static_cast<const T*>(x), n);
    });
    MC_CUDA_LAUNCH_CHECK();
  }
  bool all_finite(DType dt, const void* x, int64_t n) override {
    if (n <= 0) return true;
    std::lock_guard<std::mutex> lock(scratch_mutex());
    int* flag = static_cast<int*>(small_buffer());
    MC_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), s_));
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      nonfinite_kernel<T><<<blocks_for(n), kThreads, 0, s_>>>(flag, static_cast<const T*>(x), n);
    });
    MC_CUDA_LAUNCH_CHECK();
    int bad = 0;
    download(&bad, flag, sizeof(int));
    return bad == 0;
  }

 private:
  cudaStream_t s_;
};

}  // namespace

bool cuda_backend_available() { return gpu::ctx().ok; }

std::string cuda_backend_unavailable_reason() { return gpu::ctx().ok ? std::string() : gpu::ctx().reason; }

Backend& cuda_backend() {
  MC_CHECK(gpu::ctx().ok, "mlpcore: device 'cuda' requested but ", gpu::ctx().reason);
  static CudaBackend* be = new CudaBackend();  // never destroyed, like the context
  return *be;
}

}  // namespace mc
