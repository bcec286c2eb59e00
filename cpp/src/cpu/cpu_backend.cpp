// cpu/cpu_backend.cpp — CPU implementation of the Backend's generic primitives, and the CPU
// kernel table (the ops' CPU kernels live in ops/*.cpp, the optimizer's in optim.cpp).
// Row-major GEMM convention: cblas is called with CblasRowMajor directly, so C = op(A)·op(B)
// with the shapes of backend.h and no transposition tricks.
#include "cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "cpu/blas.h"

namespace mc {

#define MC_X(name) const void* name##_kernels_cpu();
MC_FOR_KERNEL_SETS(MC_X)
#undef MC_X

namespace {

// ---- thread policy ---------------------------------------------------------------------------
// OpenBLAS's thread count is process-wide: this build exports set/get_num_threads and a thread-
// server callback, no per-call count. A split GEMM hands half its work to a worker thread and
// waits for it. On an idle machine that pays from a few million multiply-adds on; on a busy one
// the worker waits for a core (another process holds it) and the join waits a scheduler time
// slice, tens of milliseconds on a loaded 2-core machine: a 0.1 ms GEMM then takes 30 ms, a 13 ms
// one 60 ms (bench/threads.py). So unless the user pinned a count, a GEMM of fewer than
// kSplitMinWork multiply-adds (M·N·K; 2^30 is ~15 ms on one core) runs on one thread and a
// larger one on the default count, where a lost time slice costs a fraction of the GEMM instead
// of multiples. The price: on an idle machine mid-size models (GEMMs of 4M..1G multiply-adds)
// leave the second core unused unless the count is pinned (set_num_threads(2), --threads 2).
// The choice depends on the shape alone, so results stay a function of (shape, thread count).
// The count is switched only when it changes; a switch stores OpenBLAS's count (~80 ns, no
// system call).
constexpr int64_t kSplitMinWork = int64_t(1) << 30;

struct ThreadPolicy {
  std::atomic<int> pinned{0};   // the user's count; 0: automatic
  int full = 1;                 // automatic: the count for large GEMMs (OpenBLAS's default)
  std::atomic<int> applied{0};  // the count last given to OpenBLAS by this policy (0: unknown)
  ThreadPolicy() {
    full = std::max(1, MC_OPENBLAS(get_num_threads)());
    // OPENBLAS_NUM_THREADS / GOTO_NUM_THREADS name a count for OpenBLAS itself: a pin, as
    // set_num_threads. (OMP_NUM_THREADS, often set for a whole machine, only sets the default.)
    for (const char* var : {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS"}) {
      const char* v = std::getenv(var);
      if (v && std::atoi(v) > 0) pinned = full;
    }
    applied = full;
  }
};

ThreadPolicy& thread_policy() {
  static ThreadPolicy p;
  return p;
}

// Before a BLAS call of `work` multiply-adds: one thread for a small one unless the count is pinned.
void threads_for(int64_t work) {
  ThreadPolicy& p = thread_policy();
  if (p.pinned.load(std::memory_order_relaxed)) return;
  const int want = work < kSplitMinWork ? 1 : p.full;
  if (p.applied.load(std::memory_order_relaxed) != want) {
    MC_OPENBLAS(set_num_threads)(want);
    p.applied.store(want, std::memory_order_relaxed);
  }
}

class CpuBackend final : public Backend {
 public:
  CpuBackend() {
#define MC_X(name) kernels_[int(KernelSet::name)] = name##_kernels_cpu();
    MC_FOR_KERNEL_SETS(MC_X)
#undef MC_X
  }
  Device device() const override { return Device::cpu; }

  void* alloc(size_t nbytes) override {
    // 64-byte aligned so vector loads and BLAS packing see aligned rows.
    void* p = nullptr;
    if (posix_memalign(&p, 64, std::max<size_t>(nbytes, 64)) != 0) throw std::bad_alloc();
    return p;
  }
  void free(void* p) override { std::free(p); }
  void copy(void* dst, const void* src, size_t n) override {
    if (n) std::memmove(dst, src, n);
  }
  void upload(void* dst, const void* host, size_t n) override { copy(dst, host, n); }
  void download(void* host, const void* src, size_t n) override { copy(host, src, n); }
  void fill(DType dt, void* p, int64_t n, double value) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      std::fill(static_cast<T*>(p), static_cast<T*>(p) + n, T(value));
    });
  }

  void gemm(DType dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const void* A,
            int64_t lda, const void* B, int64_t ldb, double beta, void* C, int64_t ldc) override {
    // One-row or one-column products (batch-1 inference, a single output unit) go to GEMV: GEMM
    // would pack the whole weight matrix for one row (90% of a batch-1 forward was packing);
    // GEMV streams it once. The output is zeroed first when beta == 0 so that NaN in C is never
    // read, whatever the BLAS's scal does with a zero factor.
    threads_for(M * N * K);
    if (M == 1 || N == 1) {
      if (beta == 0.0) {
        const size_t es = dtype_size(dt);
        if (M == 1)
          std::memset(C, 0, size_t(N) * es);
        else
          for (int64_t i = 0; i < M; ++i) std::memset(static_cast<char*>(C) + size_t(i * ldc) * es, 0, es);
      }
      // M == 1: c (N) = op(B)ᵀ a, a = A's row (stride lda when A is stored (K, 1)).
      // N == 1: c (M, stride ldc) = op(A) b, b = B's column (stride ldb when B is stored (K, 1)).
      const bool row = M == 1;
      const void* mat = row ? B : A;
      const void* vec = row ? A : B;
      const int64_t ld = row ? ldb : lda;
      const bool mat_t = row ? !tb : ta;  // gemv op on the stored matrix
      const int64_t rows = row ? (tb ? N : K) : (ta ? K : M), cols = row ? (tb ? K : N) : (ta ? M : K);
      const int64_t incv = row ? (ta ? lda : 1) : (tb ? 1 : ldb), incc = row ? 1 : ldc;
      const auto op = mat_t ? CblasTrans : CblasNoTrans;
      const double b = beta == 0.0 ? 1.0 : beta;  // C was zeroed for beta == 0
      switch (dt) {
        case DType::f32:
          MC_CBLAS(sgemv)(CblasRowMajor, op, blasint(rows), blasint(cols), float(alpha), static_cast<const float*>(mat),
                          blasint(ld), static_cast<const float*>(vec), blasint(incv), float(b),
                          static_cast<float*>(C), blasint(incc));
          return;
        case DType::f64:
          MC_CBLAS(dgemv)(CblasRowMajor, op, blasint(rows), blasint(cols), alpha, static_cast<const double*>(mat),
                          blasint(ld), static_cast<const double*>(vec), blasint(incv), b, static_cast<double*>(C),
                          blasint(incc));
          return;
      }
    }
    const auto opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    switch (dt) {
      case DType::f32:
        MC_CBLAS(sgemm)(CblasRowMajor, opa, opb, blasint(M), blasint(N), blasint(K), float(alpha),
                        static_cast<const float*>(A), blasint(lda), static_cast<const float*>(B), blasint(ldb),
                        float(beta), static_cast<float*>(C), blasint(ldc));
        return;
      case DType::f64:
        MC_CBLAS(dgemm)(CblasRowMajor, opa, opb, blasint(M), blasint(N), blasint(K), alpha,
                        static_cast<const double*>(A), blasint(lda), static_cast<const double*>(B), blasint(ldb),
                        beta, static_cast<double*>(C), blasint(ldc));
        return;
    }
  }
  void gemm_fixed_order(DType dt, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda, const void* B,
                        int64_t ldb, void* C, int64_t ldc) override {
    gemm_fixed_order_cpu(dt, tb, M, N, K, A, lda, B, ldb, C, ldc);
  }

  void gather_rows(DType dt, void* out, const void* src, const int64_t* idx, int64_t rows, int64_t cols) override {
    const size_t row_bytes = size_t(cols) * dtype_size(dt);
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(static_cast<char*>(out) + i * row_bytes, static_cast<const char*>(src) + idx[i] * row_bytes,
                  row_bytes);
  }
  void gather_labels(int32_t* out, const int32_t* src, const int64_t* idx, int64_t rows) override {
    for (int64_t i = 0; i < rows; ++i) out[i] = src[idx[i]];
  }
  void mul(DType dt, void* y, const void* a, const void* b, int64_t n) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      for (int64_t i = 0; i < n; ++i) static_cast<T*>(y)[i] = static_cast<const T*>(a)[i] * static_cast<const T*>(b)[i];
    });
  }
  void add_inplace(DType dt, void* y, const void* x, int64_t n) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      for (int64_t i = 0; i < n; ++i) static_cast<T*>(y)[i] += static_cast<const T*>(x)[i];
    });
  }
  bool all_finite(DType dt, const void* x, int64_t n) override {
    bool ok = true;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      const T* xs = static_cast<const T*>(x);
      // |x| <= max is false exactly for NaN and +-inf. An integer OR reduction vectorises; a
      // floating-point sum would not (strict FP order makes it one serial chain of adds).
      const T big = std::numeric_limits<T>::max();
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) bad |= !(std::fabs(xs[i]) <= big);
      ok = bad == 0;
    });
    return ok;
  }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend be;
  return be;
}

void cpu_set_num_threads(int n) {
  ThreadPolicy& p = thread_policy();
  const int count = n > 0 ? n : p.full;
  p.pinned.store(n > 0 ? n : 0, std::memory_order_relaxed);
  MC_OPENBLAS(set_num_threads)(count);
  p.applied.store(count, std::memory_order_relaxed);
}
int cpu_get_num_threads() {
  const ThreadPolicy& p = thread_policy();
  const int pinned = p.pinned.load(std::memory_order_relaxed);
  return pinned ? pinned : p.full;
}
bool cpu_num_threads_pinned() { return thread_policy().pinned.load(std::memory_order_relaxed) != 0; }
std::string cpu_blas_info() {
  return std::string(MC_OPENBLAS(get_config)()) + " core=" + MC_OPENBLAS(get_corename)();
}

}  // namespace mc
