// cuda/context.cu — the CUDA context (driver probe, stream, cuBLAS loaded with dlopen), launch
// sizing and the scratch memory shared by the kernels (see common.cuh).
//
// cuBLAS is dlopen()ed on first use (see cmake/cuda.cmake for why and where it is searched).
// cudart is linked statically; with no driver, cudaGetDeviceCount fails and the backend reports
// itself unavailable. MLPCORE_CUDA_TF32=1 (read once, at first use) lets cuBLAS use TF32.
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>

#include "cuda/common.cuh"

#ifndef MLPCORE_CUBLAS_SONAME
#define MLPCORE_CUBLAS_SONAME "libcublas.so"
#endif
#ifndef MLPCORE_CUBLAS_PATH
#define MLPCORE_CUBLAS_PATH ""
#endif
#ifndef MLPCORE_CUDA_ARCHS
#define MLPCORE_CUDA_ARCHS "?"
#endif

namespace mc {
namespace gpu {
namespace {

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

}  // namespace

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

unsigned blocks_for(int64_t n, int per_block) {
  const int64_t want = (n + per_block - 1) / per_block;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(ctx().num_sms) * 32)));
}

namespace {
struct Scratch {
  std::mutex mutex;
  void* data = nullptr;
  size_t bytes = 0;
  void* small = nullptr;
};
Scratch& scratch_state() {
  static Scratch* s = new Scratch;  // never destroyed, like the context
  return *s;
}
}  // namespace

std::mutex& scratch_mutex() { return scratch_state().mutex; }

void* scratch(size_t nbytes) {
  Scratch& s = scratch_state();
  if (nbytes > s.bytes) {
    if (s.data && cudaFree(s.data) != cudaSuccess) cudaGetLastError();
    s.data = nullptr;
    s.bytes = 0;
    MC_CUDA_CHECK(cudaMalloc(&s.data, std::max<size_t>(nbytes, 256)));
    s.bytes = nbytes;
  }
  return s.data;
}

void* small_buffer() {
  Scratch& s = scratch_state();
  if (!s.small) MC_CUDA_CHECK(cudaMalloc(&s.small, 64));
  return s.small;
}

}  // namespace gpu
}  // namespace mc
