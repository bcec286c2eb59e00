// cuda/cuda_backend.cu — CUDA implementation of the Backend interface (float32 and float64).
//
// GEMM convention: cuBLAS is column-major and a row-major (M, N) matrix with leading dimension
// ld is the column-major (N, M) matrix of its transpose. So the row-major C = op(A)·op(B) is
// computed as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cublas<t>gemm(op_b, op_a, N, M, K, B, ldb, A,
// lda, C, ldc) — operands swapped, transpose flags and leading dimensions unchanged.
//
// Kernels: each names its CPU twin (cpu/cpu_backend.cpp) and evaluates the same expressions in
// the same type T, using the shared scalar formulas of activations.h and rng.h (MC_HD). Results
// differ from the CPU by summation order, by nvcc's fused multiply-adds (≈ 1 ulp per operation)
// and, in float32, by the transcendental functions: CUDA's expf/tanhf/erff (<= 2 ulp) here, the
// CPU's vectorisable vmath.h approximations there (exp ~2 ulp, tanh ~3 ulp, erf ~5e-7 absolute;
// exp clamped so that it saturates) — all far inside the 1e-5 parity tolerance. Reductions (bias gradient, loss value) are two-pass with a fixed order — per-block
// partial sums, then one fixed-order pass — so results are deterministic run to run: no float
// atomics.
//
// Memory: cudaMalloc per Buffer (the network allocates a handful, once). A scratch buffer for the
// reduction partials grows on demand and is then reused, so a steady-state step allocates
// nothing. One stream (non-blocking); host<->device copies synchronise it.
//
// cuBLAS is dlopen()ed on first use (see cmake/cuda.cmake for why and where it is searched).
// cudart is linked statically; with no driver, cudaGetDeviceCount fails and the backend reports
// itself unavailable. MLPCORE_CUDA_TF32=1 (read once, at first use) lets cuBLAS use TF32.
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
//    kernels below until a GPU measurement shows the epilogues faster.
#include "cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <mutex>

#include "mlpcore/rng.h"

#ifndef MLPCORE_CUBLAS_SONAME
#define MLPCORE_CUBLAS_SONAME "libcublas.so"
#endif
#ifndef MLPCORE_CUBLAS_PATH
#define MLPCORE_CUBLAS_PATH ""
#endif
#ifndef MLPCORE_CUDA_ARCHS
#define MLPCORE_CUDA_ARCHS "?"
#endif

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
                                                 ctx().api.status_string(st_));                        \
  } while (0)

namespace mc {
namespace {

// ---------------------------------------------------------------------------------------------
// Context: driver probe, stream, cuBLAS (dlopen), created once and never destroyed (CUDA tears
// its own state down at exit; destroying ours from a static destructor would race it).
// ---------------------------------------------------------------------------------------------

struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasDgemm_v2) dgemm = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

struct CudaContext {
  bool ok = false;
  std::string reason;
  int device = 0;
  int num_sms = 1;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  CublasApi api;
};

__global__ void probe_kernel(int* out) { *out = 42; }

template <class F>
bool load_symbol(void* lib, const char* name, F& fn, std::string& reason) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) reason = std::string("cuBLAS library lacks the symbol ") + name;
  return fn != nullptr;
}

// Loads cuBLAS and its entry points; returns "" or what went wrong. Host-only (no GPU needed).
std::string cublas_load(CublasApi& a) {
  // The module's RUNPATH (the wheel next to an installed mlpcore) and the system's library path
  // by soname, then the full path found when configuring (a development build in a source tree).
  void* lib = dlopen(MLPCORE_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
  const std::string err = lib ? "" : dlerror();
  if (!lib && MLPCORE_CUBLAS_PATH[0]) lib = dlopen(MLPCORE_CUBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return "cannot load cuBLAS (" MLPCORE_CUBLAS_SONAME "): " + err +
           "; install the runtime libraries with pip install 'mlpcore[cuda]' (the nvidia-cublas wheel)";
  std::string reason;
  if (!load_symbol(lib, "cublasCreate_v2", a.create, reason) ||
      !load_symbol(lib, "cublasSetStream_v2", a.set_stream, reason) ||
      !load_symbol(lib, "cublasSetMathMode", a.set_math_mode, reason) ||
      !load_symbol(lib, "cublasSgemm_v2", a.sgemm, reason) || !load_symbol(lib, "cublasDgemm_v2", a.dgemm, reason) ||
      !load_symbol(lib, "cublasGetStatusString", a.status_string, reason))
    return reason;
  return "";
}

void context_init(CudaContext& c) {
  // The driver library first: its absence is the usual case on a machine without a GPU (cheap to
  // detect, and cudart's own message for it, "driver version is insufficient", would mislead).
  if (!dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
    c.reason = std::string("no NVIDIA driver on this machine (") + dlerror() + ")";
    return;
  }
  // cuBLAS next (~0.2-0.5 s: libcublasLt is large), so that a missing library is reported even
  // where the GPU checks below fail too; its error is reported after theirs.
  const std::string blas_error = cublas_load(c.api);
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    c.reason = std::string("no usable CUDA driver or GPU (cudaGetDeviceCount: ") + cudaGetErrorString(e) + ")";
    cudaGetLastError();  // clear the sticky error of the failed call
    return;
  }
  if (n < 1) {
    c.reason = "no CUDA GPU was found";
    return;
  }
  if ((e = cudaSetDevice(c.device)) != cudaSuccess) {
    c.reason = std::string("cannot use CUDA device 0: ") + cudaGetErrorString(e);
    return;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, c.device) == cudaSuccess) c.num_sms = std::max(1, prop.multiProcessorCount);
  if ((e = cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking)) != cudaSuccess) {
    c.reason = std::string("cannot create a CUDA stream: ") + cudaGetErrorString(e);
    return;
  }
  // A kernel launch fails with "no kernel image" when the build lacks this GPU's architecture.
  int* probe = nullptr;
  int got = 0;
  if ((e = cudaMalloc(&probe, sizeof(int))) == cudaSuccess) {
    probe_kernel<<<1, 1, 0, c.stream>>>(probe);
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(&got, probe, sizeof(int), cudaMemcpyDeviceToHost, c.stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c.stream);
    cudaFree(probe);
  }
  if (e != cudaSuccess || got != 42) {
    c.reason = std::string("cannot run kernels on ") + prop.name + " (sm_" + std::to_string(prop.major) +
               std::to_string(prop.minor) + "): " + (e != cudaSuccess ? cudaGetErrorString(e) : "wrong result") +
               "; this build has kernels for CUDA architectures " MLPCORE_CUDA_ARCHS
               " (rebuild with CUDAARCHS=<arch> to add it)";
    cudaGetLastError();
    return;
  }
  if (!blas_error.empty()) {
    c.reason = blas_error;
    return;
  }
  CublasApi& a = c.api;
  cublasStatus_t st = a.create(&c.blas);
  if (st != CUBLAS_STATUS_SUCCESS) {
    c.reason = std::string("cublasCreate failed: ") + a.status_string(st);
    return;
  }
  a.set_stream(c.blas, c.stream);
  // fp32 by default; TF32 tensor cores (10-bit mantissa products) only when asked for.
  const char* tf32 = std::getenv("MLPCORE_CUDA_TF32");
  const bool use_tf32 = tf32 && tf32[0] && std::string(tf32) != "0";
  a.set_math_mode(c.blas, use_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  c.ok = true;
}

CudaContext& ctx() {
  static CudaContext* c = [] {
    auto* p = new CudaContext;
    try {
      context_init(*p);
    } catch (const std::exception& e) {
      p->ok = false;
      p->reason = std::string("CUDA initialisation failed: ") + e.what();
    }
    return p;
  }();
  return *c;
}

// ---------------------------------------------------------------------------------------------
// Launch helpers and reductions
// ---------------------------------------------------------------------------------------------

constexpr int kThreads = 256;  // threads per block of the 1-D kernels
constexpr int kWarps = kThreads / 32;

// Blocks for a grid-stride loop over n items: enough to fill the GPU, not one per item.
unsigned blocks_for(int64_t n, int per_block = kThreads) {
  const int64_t want = (n + per_block - 1) / per_block;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(ctx().num_sms) * 32)));
}

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

// Sum of one value per thread over a block of kThreads threads, in a fixed order; the result is
// valid in thread 0.
__device__ double block_sum(double v) {
  __shared__ double warp_part[kWarps];
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  double s = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kWarps; ++w) s += warp_part[w];
  return s;
}

// out[0] = scale * sum(partial[0..n)) — one block, fixed order (second pass of the loss value).
__global__ void sum_partials_kernel(double* out, const double* partial, int n, double scale) {
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = s * scale;
}

// ---------------------------------------------------------------------------------------------
// Kernels. Shapes on the first line; "CPU twin:" names the reference they must agree with.
// ---------------------------------------------------------------------------------------------

// p[n] = value. CPU twin: CpuBackend::fill.
template <class T>
__global__ void fill_kernel(T* p, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = value;
}

// C[M, ldc] (first N columns) *= beta, the K == 0 case of gemm. CPU twin: OpenBLAS gemm with K = 0.
template <class T>
__global__ void scale_matrix_kernel(T* C, int64_t M, int64_t N, int64_t ldc, T beta) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * N; i += int64_t(gridDim.x) * blockDim.x) {
    T* c = C + (i / N) * ldc + i % N;
    *c = beta == T(0) ? T(0) : *c * beta;
  }
}

// z[rows, cols] += bias[cols]; a = act(z) for the element-wise activations (a may alias z).
// CPU twin: bias_act_forward_cpu (all cases except softmax).
template <class T>
__global__ void bias_act_kernel(T* z, T* a, const T* bias, int64_t rows, int64_t cols, ActKind kind, T param) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T v = z[i];
    if (bias) {
      v += bias[i % cols];
      z[i] = v;
    }
    a[i] = act_apply<T>(kind, param, v);
  }
}

// Row-wise softmax of z[rows, cols] (+ bias) into a, one warp per row. CPU twin:
// bias_act_forward_cpu, case softmax (max subtracted, then normalised by the sum).
template <class T>
__global__ void softmax_rows_kernel(T* z, T* a, const T* bias, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    T* zr = z + r * cols;
    T* ar = a + r * cols;
    T m = -INFINITY;
    for (int64_t c = lane; c < cols; c += 32) {  // each lane touches only its own columns
      if (bias) zr[c] += bias[c];
      m = max(m, zr[c]);
    }
    m = warp_max(m);
    T s = 0;
    for (int64_t c = lane; c < cols; c += 32) {
      ar[c] = std::exp(zr[c] - m);
      s += ar[c];
    }
    const T inv = T(1) / warp_sum(s);
    for (int64_t c = lane; c < cols; c += 32) ar[c] *= inv;
  }
}

// d act / d z times da for one element (z, a may be null when the activation does not need
// them). CPU twin: the switch in act_backward_bias_grad_cpu.
template <class T>
__device__ __forceinline__ T act_backward_elem(ActKind k, T param, T da, const T* z, const T* a, int64_t i) {
  switch (k) {
    case ActKind::identity: return da;
    case ActKind::relu: return a[i] > T(0) ? da : T(0);
    case ActKind::sigmoid: return da * (a[i] * (T(1) - a[i]));
    case ActKind::tanh: return da * (T(1) - a[i] * a[i]);
    default: return da * act_derivative<T>(k, param, z[i], a ? a[i] : T(0));
  }
}

// dz[rows, cols] = da * act'(z, a), element-wise, no bias gradient (dz may alias da).
// CPU twin: act_backward_bias_grad_cpu with dbias == nullptr.
template <class T>
__global__ void act_backward_kernel(T* dz, const T* da, const T* z, const T* a, int64_t n, ActKind kind, T param) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dz[i] = act_backward_elem<T>(kind, param, da[i], z, a, i);
}

// Fused activation backward + first pass of the bias gradient. Block (32, 8): threadIdx.x picks a
// column of a 32-column tile (coalesced rows), threadIdx.y strides over the rows of chunk
// blockIdx.y. Writes dz[rows, cols] and partial[blockIdx.y, cols] = column sums of dz over the
// chunk. CPU twin: act_backward_bias_grad_cpu (dz, and the dbias accumulation loop).
constexpr int kTileCols = 32, kTileRows = 8;
template <class T>
__global__ void act_backward_colsum_kernel(T* dz, T* partial, const T* da, const T* z, const T* a, int64_t rows,
                                           int64_t cols, int64_t rows_per_chunk, ActKind kind, T param) {
  __shared__ T part[kTileRows][kTileCols + 1];
  const int64_t c = int64_t(blockIdx.x) * kTileCols + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = min(rows, r0 + rows_per_chunk);
  T sum = 0;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const int64_t i = r * cols + c;
      const T v = act_backward_elem<T>(kind, param, da[i], z, a, i);
      dz[i] = v;
      sum += v;
    }
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    T s = 0;
    for (int k = 0; k < kTileRows; ++k) s += part[k][threadIdx.x];
    partial[int64_t(blockIdx.y) * cols + c] = s;
  }
}

// Second pass: dbias[cols] (+)= sum over chunks of partial[chunks, cols], fixed order.
// CPU twin: the dbias accumulation of act_backward_bias_grad_cpu.
template <class T>
__global__ void colsum_finalize_kernel(T* dbias, const T* partial, int64_t chunks, int64_t cols, bool accumulate) {
  __shared__ T part[kTileRows][kTileCols + 1];
  const int64_t c = int64_t(blockIdx.x) * kTileCols + threadIdx.x;
  T sum = 0;
  if (c < cols)
    for (int64_t k = threadIdx.y; k < chunks; k += kTileRows) sum += partial[k * cols + c];
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    T s = 0;
    for (int k = 0; k < kTileRows; ++k) s += part[k][threadIdx.x];
    dbias[c] = accumulate ? dbias[c] + s : s;
  }
}

// Softmax backward, one warp per row: dz = a * (da - <da, a>). CPU twin:
// act_backward_bias_grad_cpu, case softmax.
template <class T>
__global__ void softmax_backward_rows_kernel(T* dz, const T* da, const T* a, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* dar = da + r * cols;
    const T* ar = a + r * cols;
    T* dzr = dz + r * cols;
    T dot = 0;
    for (int64_t c = lane; c < cols; c += 32) dot += dar[c] * ar[c];
    dot = warp_sum(dot);
    for (int64_t c = lane; c < cols; c += 32) dzr[c] = ar[c] * (dar[c] - dot);
  }
}

// Softmax cross-entropy value and gradient, one warp per row of pred[rows, cols]; labels int32.
// grad = (softmax(pred) - onehot) / rows_total; partial[blockIdx.x] = sum of the block's row
// losses (double). CPU twin: loss_cpu, case cross_entropy.
template <class T>
__global__ void cross_entropy_kernel(double* partial, T* grad, const T* pred, const int32_t* labels, int64_t rows,
                                     int64_t cols, T inv_b) {
  const int lane = threadIdx.x & 31;
  double total = 0;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* pr = pred + r * cols;
    T* gr = grad + r * cols;
    T m = -INFINITY;
    for (int64_t c = lane; c < cols; c += 32) m = max(m, pr[c]);
    m = warp_max(m);
    T s = 0;
    for (int64_t c = lane; c < cols; c += 32) {
      gr[c] = std::exp(pr[c] - m);
      s += gr[c];
    }
    s = warp_sum(s);
    // log(s) - (x_y - m), as the CPU twin: (m + log s) - x_y loses log s next to a huge m.
    const int32_t y = labels[r];
    if (lane == 0) total += double(std::log(s) - (pr[y] - m));
    const T scale = inv_b / s;
    for (int64_t c = lane; c < cols; c += 32) gr[c] = c == y ? gr[c] * scale - inv_b : gr[c] * scale;
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// MSE or BCE-with-logits, element-wise over n = rows*cols values: grad and per-block partial
// sums of the loss terms (double). CPU twin: loss_cpu, cases mse and bce_with_logits.
template <class T>
__global__ void elementwise_loss_kernel(double* partial, T* grad, const T* pred, const T* t, int64_t n, T inv_n,
                                        bool mse) {
  double total = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (mse) {
      const T d = pred[i] - t[i];
      total += double(d * d);
      grad[i] = T(2) * d * inv_n;
    } else {
      const T x = pred[i];
      total += double(max(x, T(0)) - x * t[i] + std::log1p(std::exp(-std::abs(x))));
      grad[i] = (sigmoid_stable(x) - t[i]) * inv_n;
    }
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// count += number of rows of pred[rows, cols] whose first arg-max equals the label, one warp per
// row. CPU twin: CpuBackend::count_correct (std::max_element: the first maximum wins).
template <class T>
__global__ void count_correct_kernel(unsigned long long* count, const T* pred, const int32_t* labels, int64_t rows,
                                     int64_t cols) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* pr = pred + r * cols;
    T best = 0;
    int64_t arg = LLONG_MAX;  // none yet
    for (int64_t c = lane; c < cols; c += 32)
      if (arg == LLONG_MAX || pr[c] > best) best = pr[c], arg = c;
    for (int o = 16; o > 0; o >>= 1) {
      const T ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int64_t oa = __shfl_xor_sync(0xffffffffu, arg, o);
      if (oa != LLONG_MAX && (arg == LLONG_MAX || ob > best || (ob == best && oa < arg))) best = ob, arg = oa;
    }
    if (lane == 0 && arg == labels[r]) atomicAdd(count, 1ull);
  }
}

// SGD with momentum / Nesterov / L2 weight decay over n parameters. CPU twin: sgd_loop (the
// compile-time branches there are run-time, warp-uniform ones here).
template <class T>
__global__ void sgd_kernel(T* w, const T* g, T* buf, int64_t n, T lr, T wd, T mom, bool nesterov, bool first) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T d = g[i];
    if (wd != T(0)) d += wd * w[i];
    if (mom != T(0)) {
      buf[i] = first ? d : mom * buf[i] + d;
      d = nesterov ? d + mom * buf[i] : buf[i];
    }
    w[i] -= lr * d;
  }
}

// Adam / AdamW over n parameters; m, v the moments. CPU twin: adam_loop (PyTorch's update order:
// m = lerp(m, g, 1-b1), v = b2 v + (1-b2) g^2, p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)).
template <class T>
__global__ void adam_kernel(T* w, const T* g, T* m, T* v, int64_t n, T wd, T decay, T b1, T b2, T eps, T step_size,
                            T bc2_sqrt, bool decoupled) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T d = g[i];
    T wi = w[i];
    if (decoupled && wd != T(0)) wi *= decay;
    if (!decoupled && wd != T(0)) d += wd * wi;
    const T mi = m[i] + (d - m[i]) * (T(1) - b1);
    const T vi = v[i] * b2 + (T(1) - b2) * d * d;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
  }
}

// RMSprop (optionally centered, with momentum) over n parameters. CPU twin: rmsprop_loop.
template <class T>
__global__ void rmsprop_kernel(T* w, const T* g, T* sq, T* buf, T* mean, int64_t n, T lr, T wd, T alpha, T eps,
                               T mom, bool centered) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T d = g[i];
    if (wd != T(0)) d += wd * w[i];
    sq[i] = sq[i] * alpha + (T(1) - alpha) * d * d;
    T avg;
    if (centered) {
      mean[i] += (d - mean[i]) * (T(1) - alpha);
      avg = std::sqrt(sq[i] - mean[i] * mean[i]) + eps;
    } else {
      avg = std::sqrt(sq[i]) + eps;
    }
    if (mom > T(0)) {
      buf[i] = buf[i] * mom + d / avg;
      w[i] -= lr * buf[i];
    } else {
      w[i] -= lr * (d / avg);
    }
  }
}

// out[rows, cols] = src[idx[i], :]. CPU twin: CpuBackend::gather_rows.
template <class T>
__global__ void gather_rows_kernel(T* out, const T* src, const int64_t* idx, int64_t rows, int64_t cols) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * cols;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = src[idx[i / cols] * cols + i % cols];
}

// out[rows] = src[idx[i]] (int32 labels). CPU twin: CpuBackend::gather_labels.
__global__ void gather_labels_kernel(int32_t* out, const int32_t* src, const int64_t* idx, int64_t rows) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = src[idx[i]];
}

// Inverted dropout over n values: mask = u01(splitmix64(key ^ (offset + i))) >= p ? scale : 0,
// y = x * mask — the same counter-based stream as the CPU, hence identical masks.
// CPU twin: CpuBackend::dropout_forward.
template <class T>
__global__ void dropout_kernel(T* y, T* mask, const T* x, int64_t n, double p, T scale, uint64_t key, uint64_t offset) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T m = u01(splitmix64(key ^ (offset + uint64_t(i)))) >= p ? scale : T(0);
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

// y[n] = a * b. CPU twin: CpuBackend::mul.
template <class T>
__global__ void mul_kernel(T* y, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = a[i] * b[i];
}

// y[n] += x. CPU twin: CpuBackend::add_inplace.
template <class T>
__global__ void add_inplace_kernel(T* y, const T* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

// y[groups], idx[groups] = max / first arg-max of x[groups, pieces]. CPU twin: CpuBackend::maxout_forward.
template <class T>
__global__ void maxout_forward_kernel(T* y, int32_t* idx, const T* x, int64_t groups, int64_t pieces) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < groups; i += int64_t(gridDim.x) * blockDim.x) {
    const T* g = x + i * pieces;
    int32_t best = 0;
    for (int32_t k = 1; k < pieces; ++k)
      if (g[k] > g[best]) best = k;
    y[i] = g[best];
    idx[i] = best;
  }
}

// dx[groups, pieces] = dy at the winning piece, 0 elsewhere (each thread writes a whole group, so
// no separate zero fill). CPU twin: CpuBackend::maxout_backward.
template <class T>
__global__ void maxout_backward_kernel(T* dx, const T* dy, const int32_t* idx, int64_t groups, int64_t pieces) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < groups; i += int64_t(gridDim.x) * blockDim.x)
    for (int64_t k = 0; k < pieces; ++k) dx[i * pieces + k] = k == idx[i] ? dy[i] : T(0);
}

// *flag = 1 if any of x[n] is NaN or Inf. CPU twin: CpuBackend::all_finite.
template <class T>
__global__ void nonfinite_kernel(int* flag, const T* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (!isfinite(x[i])) *flag = 1;
}

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------


class CudaBackend final : public Backend {
 public:
  CudaBackend() : s_(ctx().stream) {
    MC_CUDA_CHECK(cudaMalloc(&small_, 64));  // counters and flags of the synchronising queries
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
  void synchronize() override { MC_CUDA_CHECK(cudaStreamSynchronize(s_)); }

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
    if (dt == DType::f32) {
      const float a = float(alpha), b = float(beta);
      MC_CUBLAS_CHECK(c.api.sgemm(c.blas, opb, opa, int(N), int(M), int(K), &a, static_cast<const float*>(B), int(ldb),
                                  static_cast<const float*>(A), int(lda), &b, static_cast<float*>(C), int(ldc)));
    } else {
      MC_CUBLAS_CHECK(c.api.dgemm(c.blas, opb, opa, int(N), int(M), int(K), &alpha, static_cast<const double*>(B),
                                  int(ldb), static_cast<const double*>(A), int(lda), &beta, static_cast<double*>(C),
                                  int(ldc)));
    }
  }

  void bias_act_forward(DType dt, const Activation& act, void* z, void* a, const void* bias, int64_t rows,
                        int64_t cols) override {
    if (rows <= 0 || cols <= 0) return;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      T* zp = static_cast<T*>(z);
      T* ap = static_cast<T*>(a);
      const T* bp = static_cast<const T*>(bias);
      if (act.kind == ActKind::softmax)
        softmax_rows_kernel<T><<<blocks_for(rows, kWarps), kThreads, 0, s_>>>(zp, ap, bp, rows, cols);
      else
        bias_act_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s_>>>(zp, ap, bp, rows, cols, act.kind,
                                                                         T(act.param));
    });
    MC_CUDA_LAUNCH_CHECK();
  }

  void act_backward_bias_grad(DType dt, const Activation& act, void* dz, const void* da, const void* z,
                              const void* a, void* dbias, bool accumulate, int64_t rows, int64_t cols) override {
    if (cols <= 0) return;
    if (rows <= 0) {  // an empty batch: the bias gradient of nothing is zero
      if (dbias && !accumulate) fill(dt, dbias, cols, 0.0);
      return;
    }
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      T* dzp = static_cast<T*>(dz);
      const T* dap = static_cast<const T*>(da);
      const T* zp = static_cast<const T*>(z);
      const T* ap = static_cast<const T*>(a);
      const T param = T(act.param);
      ActKind kind = act.kind;
      if (kind == ActKind::softmax) {  // row-wise part first; then the bias sums of dz (identity)
        softmax_backward_rows_kernel<T><<<blocks_for(rows, kWarps), kThreads, 0, s_>>>(dzp, dap, ap, rows, cols);
        MC_CUDA_LAUNCH_CHECK();
        if (!dbias) return;
        kind = ActKind::identity;
        dap = dzp;
      }
      if (!dbias) {
        if (kind == ActKind::identity) {
          if (dzp != dap) copy(dzp, dap, size_t(rows * cols) * sizeof(T));
          return;
        }
        act_backward_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s_>>>(dzp, dap, zp, ap, rows * cols, kind, param);
        MC_CUDA_LAUNCH_CHECK();
        return;
      }
      // Two passes: chunks of rows -> partial column sums -> dbias. Chunks are sized so that the
      // grid has a few blocks per SM, each thread summing >= 8 rows.
      std::lock_guard<std::mutex> lock(scratch_mutex_);
      const int64_t tiles = (cols + kTileCols - 1) / kTileCols;
      const int64_t want_blocks = int64_t(ctx().num_sms) * 8;
      int64_t chunks = std::max<int64_t>(1, std::min<int64_t>((rows + 63) / 64, (want_blocks + tiles - 1) / tiles));
      chunks = std::min<int64_t>(chunks, 65535);
      const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
      chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
      T* partial = static_cast<T*>(scratch(size_t(chunks * cols) * sizeof(T)));
      const dim3 block(kTileCols, kTileRows);
      act_backward_colsum_kernel<T><<<dim3(unsigned(tiles), unsigned(chunks)), block, 0, s_>>>(
          dzp, partial, dap, zp, ap, rows, cols, rows_per_chunk, kind, param);
      MC_CUDA_LAUNCH_CHECK();
      colsum_finalize_kernel<T><<<unsigned(tiles), block, 0, s_>>>(static_cast<T*>(dbias), partial, chunks, cols,
                                                                  accumulate);
      MC_CUDA_LAUNCH_CHECK();
    });
  }

  void loss_forward_backward(DType dt, LossKind kind, double* loss_out, void* grad, const void* pred,
                             const void* target, int64_t rows, int64_t cols, int64_t rows_total) override {
    std::lock_guard<std::mutex> lock(scratch_mutex_);
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      T* g = static_cast<T*>(grad);
      const T* p = static_cast<const T*>(pred);
      unsigned blocks;
      double* partial;
      double scale;
      if (kind == LossKind::cross_entropy) {
        blocks = std::min(blocks_for(rows, kWarps), 1024u);
        partial = static_cast<double*>(scratch(blocks * sizeof(double)));
        cross_entropy_kernel<T><<<blocks, kThreads, 0, s_>>>(partial, g, p, static_cast<const int32_t*>(target), rows,
                                                              cols, T(1) / T(rows_total));
        scale = 1.0 / double(rows_total);
      } else {
        const int64_t n = rows * cols;
        blocks = std::min(blocks_for(n), 1024u);
        partial = static_cast<double*>(scratch(blocks * sizeof(double)));
        elementwise_loss_kernel<T><<<blocks, kThreads, 0, s_>>>(partial, g, p, static_cast<const T*>(target), n,
                                                                 T(1) / T(rows_total * cols), kind == LossKind::mse);
        scale = 1.0 / double(rows_total * cols);
      }
      MC_CUDA_LAUNCH_CHECK();
      sum_partials_kernel<<<1, kThreads, 0, s_>>>(loss_out, partial, int(blocks), scale);
      MC_CUDA_LAUNCH_CHECK();
    });
  }

  int64_t count_correct(DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols) override {
    if (rows <= 0 || cols <= 0) return 0;
    std::lock_guard<std::mutex> lock(scratch_mutex_);
    auto* count = static_cast<unsigned long long*>(small_);
    MC_CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof(*count), s_));
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      count_correct_kernel<T><<<blocks_for(rows, kWarps), kThreads, 0, s_>>>(count, static_cast<const T*>(pred), labels,
                                                                             rows, cols);
    });
    MC_CUDA_LAUNCH_CHECK();
    unsigned long long k = 0;
    download(&k, count, sizeof(k));
    return int64_t(k);
  }

  void optim_step(DType dt, const OptimParams& p, void* param, const void* grad, void* state, int64_t n) override {
    if (n <= 0) return;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      T* w = static_cast<T*>(param);
      const T* g = static_cast<const T*>(grad);
      T* st = static_cast<T*>(state);
      const T lr = T(p.lr), wd = T(p.weight_decay);
      const unsigned blocks = blocks_for(n);
      switch (p.kind) {
        case OptimKind::sgd:
          sgd_kernel<T><<<blocks, kThreads, 0, s_>>>(w, g, st, n, lr, wd, T(p.momentum), p.nesterov, p.step <= 1);
          break;
        case OptimKind::adam:
        case OptimKind::adamw: {
          // Host scalars computed exactly as adam_loop does.
          const T bc1 = T(1) - T(std::pow(p.beta1, double(p.step)));
          const T bc2_sqrt = T(std::sqrt(1.0 - std::pow(p.beta2, double(p.step))));
          const T step_size = lr / bc1, decay = T(1) - lr * wd;
          adam_kernel<T><<<blocks, kThreads, 0, s_>>>(w, g, st, st + n, n, wd, decay, T(p.beta1), T(p.beta2),
                                                      T(p.eps), step_size, bc2_sqrt, p.kind == OptimKind::adamw);
          break;
        }
        case OptimKind::rmsprop:
          rmsprop_kernel<T><<<blocks, kThreads, 0, s_>>>(w, g, st, st + n, st + 2 * n, n, lr, wd, T(p.alpha), T(p.eps),
                                                         T(p.momentum), p.centered);
          break;
      }
    });
    MC_CUDA_LAUNCH_CHECK();
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

  void dropout_forward(DType dt, void* y, void* mask, const void* x, int64_t n, double p, uint64_t seed,
                       uint64_t offset) override {
    if (n <= 0) return;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      const T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
      dropout_kernel<T><<<blocks_for(n), kThreads, 0, s_>>>(static_cast<T*>(y), static_cast<T*>(mask),
                                                             static_cast<const T*>(x), n, p, scale, splitmix64(seed),
                                                             offset);
    });
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
  void maxout_forward(DType dt, void* y, int32_t* idx, const void* x, int64_t rows, int64_t cols,
                      int64_t pieces) override {
    if (rows * cols <= 0) return;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      maxout_forward_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s_>>>(static_cast<T*>(y), idx,
                                                                             static_cast<const T*>(x), rows * cols, pieces);
    });
    MC_CUDA_LAUNCH_CHECK();
  }
  void maxout_backward(DType dt, void* dx, const void* dy, const int32_t* idx, int64_t rows, int64_t cols,
                       int64_t pieces) override {
    if (rows * cols <= 0) return;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      maxout_backward_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s_>>>(
          static_cast<T*>(dx), static_cast<const T*>(dy), idx, rows * cols, pieces);
    });
    MC_CUDA_LAUNCH_CHECK();
  }
  bool all_finite(DType dt, const void* x, int64_t n) override {
    if (n <= 0) return true;
    std::lock_guard<std::mutex> lock(scratch_mutex_);
    int* flag = static_cast<int*>(small_);
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
  // Scratch for reduction partials; grows (cudaFree synchronises, so queued users are done).
  // Callers hold scratch_mutex_ from first use to last enqueue, so the passes of one reduction
  // are adjacent in the stream even when several threads share the backend.
  void* scratch(size_t nbytes) {
    if (nbytes > scratch_bytes_) {
      free(scratch_);
      scratch_ = nullptr;
      scratch_bytes_ = 0;
      scratch_ = alloc(nbytes);
      scratch_bytes_ = nbytes;
    }
    return scratch_;
  }

  cudaStream_t s_;
  void* small_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  std::mutex scratch_mutex_;
};

}  // namespace

bool cuda_backend_available() { return ctx().ok; }

std::string cuda_backend_unavailable_reason() { return ctx().ok ? std::string() : ctx().reason; }

Backend& cuda_backend() {
  MC_CHECK(ctx().ok, "mlpcore: device 'cuda' requested but ", ctx().reason);
  static CudaBackend* be = new CudaBackend();  // never destroyed, like the context
  return *be;
}

}  // namespace mc
