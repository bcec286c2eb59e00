// cpu/cpu_backend.h — the CPU backend: OpenBLAS GEMM, the fixed-order GEMM of batch-invariant
// inference, and plain loops the compiler vectorises. With the ops' CPU kernels (ops/*.cpp) it is
// also the numerical reference every other backend is tested against.
#pragma once
#include "mlpcore/backend.h"

namespace mc {

Backend& cpu_backend();
// OpenBLAS threads (our own loops are single-threaded: they are memory-bound next to GEMM).
// n >= 1 pins that count for every GEMM; n == 0 restores the automatic policy (the default): one
// thread for GEMMs too small to split, OpenBLAS's default count for the others (cpu_backend.cpp).
// get: the pinned count, else the count large GEMMs use.
void cpu_set_num_threads(int n);
int cpu_get_num_threads();
bool cpu_num_threads_pinned();
std::string cpu_blas_info();

// C[M,N] = A[M,K] · op(B) with a summation order fixed by K alone (cpu/gemm_fixed.cpp), on the
// widest vector unit the CPU has; _baseline forces the x86-64 baseline (SSE2) code, so that tests
// can check both give the same bits.
void gemm_fixed_order_cpu(DType dt, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                          const void* B, int64_t ldb, void* C, int64_t ldc);
void gemm_fixed_order_cpu_baseline(DType dt, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A,
                                   int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc);

}  // namespace mc
