// cpu/gemm_fixed.cpp — the fixed-order GEMM of batch-invariant inference: C[M,N] = A[M,K]·op(B).
//
// Why not BLAS: OpenBLAS picks its kernel by shape (GEMV for one row, edge kernels for the last
// rows of a block) and splits work across threads, so an output row's bits depend on the batch it
// was computed in. Here every output element is computed by the same sequence of float operations
// whatever M, the row's position, the blocking and the thread count:
//  - op(B) = Bᵀ (B stored (N, K): the usual (out, in) weight): a dot product over k split into L
//    interleaved partial sums (lane j sums k ≡ j mod L, in k order; L = 32 bytes of T), the
//    lanes combined by a fixed tree, then the K mod L tail (in k order) added last;
//  - op(B) = B (stored (K, N): a tied, transposed weight): one running sum over k in order, vectorised
//    across output columns (a lane per column; the last N mod L columns run the same sum in scalar
//    code).
// Rows and output columns are blocked (several independent sums in flight hide the add latency),
// which changes the order in which elements are computed, never how each one is. Vectors are GCC
// vector extensions (element-wise IEEE operations on every ISA); the core is built with
// -ffp-contract=off, so no multiply-add is fused in one code path and not in another.
// Single-threaded: thread count cannot change anything.
#include <algorithm>
#include <cstring>

#include "cpu/cpu_backend.h"

// The 32-byte vectors live in registers inside this file; how they would be passed across an ABI
// boundary without AVX does not matter here.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace mc {
namespace {

template <class T>
struct Vec;
template <>
struct Vec<float> {
  typedef float type __attribute__((vector_size(32)));
  static float sum(type v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }
};
template <>
struct Vec<double> {
  typedef double type __attribute__((vector_size(32)));
  static double sum(type v) { return (v[0] + v[1]) + (v[2] + v[3]); }
};

template <class T>
inline typename Vec<T>::type load(const T* p) {
  typename Vec<T>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// C[r, o] = dot(A row r, B row o) for R rows and O output columns (B stored (N, K)).
template <class T, int R, int O>
inline void dot_block(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t K) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = sizeof(V) / sizeof(T);
  V acc[R][O];
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) acc[r][o] = V{};
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    V b[O];
    for (int o = 0; o < O; ++o) b[o] = load(B + o * ldb + k);
    for (int r = 0; r < R; ++r) {
      const V a = load(A + r * lda + k);
      for (int o = 0; o < O; ++o) acc[r][o] += a * b[o];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) {
      T tail = 0;
      for (int64_t kk = k; kk < K; ++kk) tail += A[r * lda + kk] * B[o * ldb + kk];
      C[r * ldc + o] = Vec<T>::sum(acc[r][o]) + tail;
    }
}

template <class T>
void gemm_bt(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc) {
  // Output columns in blocks whose rows of B stay in L2 while every row of A passes over them.
  const int64_t nb = std::max<int64_t>(8, (128 << 10) / int64_t(sizeof(T) * std::max<int64_t>(K, 1)));
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t n1 = std::min(N, n0 + nb);
    int64_t m = 0;
    for (; m + 2 <= M; m += 2) {
      int64_t n = n0;
      for (; n + 2 <= n1; n += 2) dot_block<T, 2, 2>(A + m * lda, lda, B + n * ldb, ldb, C + m * ldc + n, ldc, K);
      for (; n < n1; ++n) dot_block<T, 2, 1>(A + m * lda, lda, B + n * ldb, ldb, C + m * ldc + n, ldc, K);
    }
    if (m < M) {
      int64_t n = n0;
      for (; n + 4 <= n1; n += 4) dot_block<T, 1, 4>(A + m * lda, lda, B + n * ldb, ldb, C + m * ldc + n, ldc, K);
      for (; n < n1; ++n) dot_block<T, 1, 1>(A + m * lda, lda, B + n * ldb, ldb, C + m * ldc + n, ldc, K);
    }
  }
}

// C[m, n:n+W*L] = sum over k in order of A[m,k] * B[k, n:...] (B stored (K, N)), W vectors at once.
template <class T, int W>
inline void axpy_block(const T* a, const T* B, int64_t ldb, T* c, int64_t K) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = sizeof(V) / sizeof(T);
  V acc[W];
  for (int w = 0; w < W; ++w) acc[w] = V{};
  for (int64_t k = 0; k < K; ++k) {
    const T ak = a[k];
    for (int w = 0; w < W; ++w) acc[w] += ak * load(B + k * ldb + w * L);
  }
  std::memcpy(c, acc, sizeof(acc));
}

template <class T>
void gemm_b(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc) {
  constexpr int64_t L = sizeof(typename Vec<T>::type) / sizeof(T);
  for (int64_t m = 0; m < M; ++m) {
    const T* a = A + m * lda;
    T* c = C + m * ldc;
    int64_t n = 0;
    for (; n + 4 * L <= N; n += 4 * L) axpy_block<T, 4>(a, B + n, ldb, c + n, K);
    for (; n + L <= N; n += L) axpy_block<T, 1>(a, B + n, ldb, c + n, K);
    for (; n < N; ++n) {
      T s = 0;
      for (int64_t k = 0; k < K; ++k) s += a[k] * B[k * ldb + n];
      c[n] = s;
    }
  }
}

}  // namespace

void gemm_fixed_order_cpu(DType dt, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                          const void* B, int64_t ldb, void* C, int64_t ldc) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* a = static_cast<const T*>(A);
    const T* b = static_cast<const T*>(B);
    T* c = static_cast<T*>(C);
    if (trans_b)
      gemm_bt<T>(M, N, K, a, lda, b, ldb, c, ldc);
    else
      gemm_b<T>(M, N, K, a, lda, b, ldb, c, ldc);
  });
}

}  // namespace mc
