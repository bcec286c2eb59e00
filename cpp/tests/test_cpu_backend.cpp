// CPU backend kernels against naive loops.
#include <gtest/gtest.h>

#include <vector>

#include "mlpcore/backend.h"

using namespace mc;

TEST(CpuBackend, GemmRowMajorMatchesNaiveLoop) {
  Backend& be = backend_for(Device::cpu);
  const int M = 3, N = 4, K = 5;
  std::vector<double> A(M * K), B(K * N), C(M * N, 0.0);
  for (int i = 0; i < M * K; ++i) A[i] = 0.1 * i - 0.7;
  for (int i = 0; i < K * N; ++i) B[i] = 0.05 * i + 0.3;
  be.gemm(DType::f64, false, false, M, N, K, 1.0, A.data(), K, B.data(), N, 0.0, C.data(), N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += A[i * K + k] * B[k * N + j];
      EXPECT_NEAR(C[i * N + j], ref, 1e-12);
    }
}
