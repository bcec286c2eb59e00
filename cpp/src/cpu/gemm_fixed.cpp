// cpu/gemm_fixed.cpp — the fixed-order GEMM of batch-invariant inference: C[M,N] = A[M,K]·op(B).
//
// Why not BLAS: OpenBLAS picks its kernel by shape (GEMV for one row, edge kernels for the last
// rows of a block) and splits work across threads, so an output row's bits depend on the batch it
// was computed in. Here every output element is computed by the same sequence of float operations
// whatever M, the row's position, the blocking, the thread count and the instruction set:
//  - op(B) = Bᵀ (B stored (N, K): the usual (out, in) weight): a dot product over k split into L
//    interleaved partial sums (lane j sums k ≡ j mod L, in k order; L = 32 bytes of T: 8 floats,
//    4 doubles), the lanes combined by a fixed tree, then the K mod L tail (in k order) added last;
//  - op(B) = B (stored (K, N): a tied, transposed weight): one running sum over k in order,
//    vectorised across output columns (a lane per column; the last N mod L columns run the same
//    sum in scalar code).
// Rows and output columns are blocked (several independent sums in flight hide the add latency),
// which changes the order in which elements are computed, never how each one is. Vectors are GCC
// vector extensions: lane-wise IEEE multiplies and adds, the same on SSE2 (the x86-64 baseline:
// two 16-byte halves), AVX2 (one 32-byte register, picked at run time when the CPU has it; "avx2"
// does not enable FMA) and other ISAs. The core is built with -ffp-contract=off, so no multiply
// and add are ever fused into one rounding in one code path and not in another.
// Single-threaded: thread count cannot change anything. Inference only (training uses BLAS).
#include <algorithm>
#include <cstring>

#include "cpu/cpu_backend.h"

#define MC_INLINE inline __attribute__((always_inline))
// The 32-byte vectors are always-inlined values inside this file: how they would be passed across
// a call without AVX (GCC's ABI note) never matters.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace mc {
namespace {

// L lanes of T as two native 16-byte vectors (lanes 0..L/2-1 in lo): SSE2 keeps them in registers.
template <class T>
struct Halves {
  typedef T half __attribute__((vector_size(16)));
  half lo, hi;
  static MC_INLINE Halves zero() { return {half{}, half{}}; }
  static MC_INLINE Halves load(const T* p) {
    Halves v;
    std::memcpy(&v.lo, p, 16);
    std::memcpy(&v.hi, p + 16 / sizeof(T), 16);
    return v;
  }
  MC_INLINE void store(T* p) const {
    std::memcpy(p, &lo, 16);
    std::memcpy(p + 16 / sizeof(T), &hi, 16);
  }
  MC_INLINE T lane(int j) const { return j < int(16 / sizeof(T)) ? lo[j] : hi[j - int(16 / sizeof(T))]; }
  friend MC_INLINE Halves operator+(Halves a, Halves b) { return {a.lo + b.lo, a.hi + b.hi}; }
  friend MC_INLINE Halves operator*(Halves a, Halves b) { return {a.lo * b.lo, a.hi * b.hi}; }
  friend MC_INLINE Halves operator*(T a, Halves b) { return {a * b.lo, a * b.hi}; }
};

// L lanes of T in one 32-byte vector (the AVX2 build).
template <class T>
struct Whole {
  typedef T vec __attribute__((vector_size(32)));
  vec v;
  static MC_INLINE Whole zero() { return {vec{}}; }
  static MC_INLINE Whole load(const T* p) {
    Whole w;
    std::memcpy(&w.v, p, 32);
    return w;
  }
  MC_INLINE void store(T* p) const { std::memcpy(p, &v, 32); }
  MC_INLINE T lane(int j) const { return v[j]; }
  friend MC_INLINE Whole operator+(Whole a, Whole b) { return {a.v + b.v}; }
  friend MC_INLINE Whole operator*(Whole a, Whole b) { return {a.v * b.v}; }
  friend MC_INLINE Whole operator*(T a, Whole b) { return {a * b.v}; }
};

// The fixed combination of the L lanes: pairwise, ((0+1)+(2+3)) + ((4+5)+(6+7)) for 8.
template <class T, class P>
MC_INLINE T lane_sum(const P& v) {
  if (sizeof(T) == 4)
    return ((v.lane(0) + v.lane(1)) + (v.lane(2) + v.lane(3))) + ((v.lane(4) + v.lane(5)) + (v.lane(6) + v.lane(7)));
  return (v.lane(0) + v.lane(1)) + (v.lane(2) + v.lane(3));
}

// C[r, o] = dot(A row r, B row o) for R rows and O output columns (B stored (N, K)).
template <class T, class P, int R, int O>
MC_INLINE void dot_block(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t K) {
  constexpr int64_t L = 32 / sizeof(T);
  P acc[R][O];
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) acc[r][o] = P::zero();
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    P b[O];
    for (int o = 0; o < O; ++o) b[o] = P::load(B + o * ldb + k);
    for (int r = 0; r < R; ++r) {
      const P a = P::load(A + r * lda + k);
      for (int o = 0; o < O; ++o) acc[r][o] = acc[r][o] + a * b[o];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) {
      T tail = 0;
      for (int64_t kk = k; kk < K; ++kk) tail += A[r * lda + kk] * B[o * ldb + kk];
      C[r * ldc + o] = lane_sum<T>(acc[r][o]) + tail;
    }
}

// Blocks of RB rows x OB outputs, then the edges with the same per-element arithmetic.
template <class T, class P, int RB, int OB>
MC_INLINE void gemm_bt(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                       int64_t ldc) {
  // Output columns in blocks whose rows of B stay in L2 while every row of A passes over them.
  const int64_t nb = std::max<int64_t>(8, (128 << 10) / int64_t(sizeof(T) * std::max<int64_t>(K, 1)));
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t n1 = std::min(N, n0 + nb);
    int64_t m = 0;
    for (; m + RB <= M; m += RB) {
      int64_t n = n0;
      for (; n + OB <= n1; n += OB)
        dot_block<T, P, RB, OB>(A + m * lda, lda, B + n * ldb, ldb, C + m * ldc + n, ldc, K);
      for (; n < n1; ++n) dot_block<T, P, RB, 1>(A + m * lda, lda, B + n * ldb, ldb, C + m * ldc + n, ldc, K);
    }
    for (; m < M; ++m) {  // single rows: more outputs at once instead
      int64_t n = n0;
      for (; n + RB * OB <= n1; n += RB * OB)
        dot_block<T, P, 1, RB * OB>(A + m * lda, lda, B + n * ldb, ldb, C + m * ldc + n, ldc, K);
      for (; n < n1; ++n) dot_block<T, P, 1, 1>(A + m * lda, lda, B + n * ldb, ldb, C + m * ldc + n, ldc, K);
    }
  }
}

// C[m, n:n+W*L] = sum over k in order of A[m,k] * B[k, n:...] (B stored (K, N)), W vectors at once.
template <class T, class P, int W>
MC_INLINE void axpy_block(const T* a, const T* B, int64_t ldb, T* c, int64_t K) {
  constexpr int64_t L = 32 / sizeof(T);
  P acc[W];
  for (int w = 0; w < W; ++w) acc[w] = P::zero();
  for (int64_t k = 0; k < K; ++k) {
    const T ak = a[k];
    for (int w = 0; w < W; ++w) acc[w] = acc[w] + ak * P::load(B + k * ldb + w * L);
  }
  for (int w = 0; w < W; ++w) acc[w].store(c + w * L);
}

template <class T, class P>
MC_INLINE void gemm_b(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                      int64_t ldc) {
  constexpr int64_t L = 32 / sizeof(T);
  for (int64_t m = 0; m < M; ++m) {
    const T* a = A + m * lda;
    T* c = C + m * ldc;
    int64_t n = 0;
    for (; n + 4 * L <= N; n += 4 * L) axpy_block<T, P, 4>(a, B + n, ldb, c + n, K);
    for (; n + L <= N; n += L) axpy_block<T, P, 1>(a, B + n, ldb, c + n, K);
    for (; n < N; ++n) {
      T s = 0;
      for (int64_t k = 0; k < K; ++k) s += a[k] * B[k * ldb + n];
      c[n] = s;
    }
  }
}

template <class T, class P, int RB, int OB>
MC_INLINE void gemm_any(bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                        int64_t ldb, T* C, int64_t ldc) {
  if (trans_b)
    gemm_bt<T, P, RB, OB>(M, N, K, A, lda, B, ldb, C, ldc);
  else
    gemm_b<T, P>(M, N, K, A, lda, B, ldb, C, ldc);
}

// Baseline: 2 x 2 blocks of two-register accumulators (8 registers); 16 xmm registers in all.
template <class T>
void gemm_baseline(bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                   int64_t ldc) {
  gemm_any<T, Halves<T>, 2, 2>(tb, M, N, K, A, lda, B, ldb, C, ldc);
}

#if defined(__x86_64__) || defined(__i386__)
#define MC_HAVE_AVX2_PATH 1
// AVX2: 2 x 4 blocks of one-register accumulators (8 of the 16 ymm registers).
template <class T>
__attribute__((target("avx2"))) void gemm_avx2(bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                                               const T* B, int64_t ldb, T* C, int64_t ldc) {
  gemm_any<T, Whole<T>, 2, 4>(tb, M, N, K, A, lda, B, ldb, C, ldc);
}
bool cpu_has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

}  // namespace

void gemm_fixed_order_cpu(DType dt, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                          const void* B, int64_t ldb, void* C, int64_t ldc) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* a = static_cast<const T*>(A);
    const T* b = static_cast<const T*>(B);
    T* c = static_cast<T*>(C);
#ifdef MC_HAVE_AVX2_PATH
    if (cpu_has_avx2()) return gemm_avx2<T>(trans_b, M, N, K, a, lda, b, ldb, c, ldc);
#endif
    gemm_baseline<T>(trans_b, M, N, K, a, lda, b, ldb, c, ldc);
  });
}

void gemm_fixed_order_cpu_baseline(DType dt, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A,
                                   int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    gemm_baseline<T>(trans_b, M, N, K, static_cast<const T*>(A), lda, static_cast<const T*>(B), ldb,
                     static_cast<T*>(C), ldc);
  });
}

}  // namespace mc
