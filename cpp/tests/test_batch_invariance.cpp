// test_batch_invariance.cpp — batch-invariant inference: the fixed-order GEMM (accuracy, every row
// bitwise independent of the others and of M, the AVX2 and baseline code giving the same bits),
// the element-wise kernels giving an element the same bits wherever it sits, and whole networks
// whose predict / evaluate rows do not depend on batch composition, batch size or thread count.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cpu/cpu_backend.h"
#include "test_nets.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

template <class T>
class BatchInvariance : public ::testing::Test {};
TYPED_TEST_SUITE(BatchInvariance, FloatTypes);

// RAII: batch-invariant mode on for one test.
struct InvariantMode {
  InvariantMode() { set_batch_invariant(true); }
  ~InvariantMode() {
    set_batch_invariant(false);
    cpu_set_num_threads(1);
  }
};

}  // namespace

// C = A · op(B) against double loops; each row alone (M = 1) and inside batches of every size
// gives the same bits; the baseline (SSE2) code gives the AVX2 code's bits.
TYPED_TEST(BatchInvariance, FixedOrderGemmRowsAreIndependent) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  for (bool tb : {true, false})
    for (int64_t K : {1, 7, 8, 33, 300})
      for (int64_t N : {1, 5, 17, 40}) {
        SCOPED_TRACE(::testing::Message() << "trans_b=" << tb << " K=" << K << " N=" << N);
        const int64_t M = 13;
        const std::vector<T> A = uniform<T>(M * K, K + 1), B = uniform<T>(N * K, N + 2);
        const int64_t ldb = tb ? K : N;
        std::vector<T> C(M * N), ref(M * N), base(M * N);
        gemm_fixed_order_cpu(dt, tb, M, N, K, A.data(), K, B.data(), ldb, C.data(), N);
        gemm_fixed_order_cpu_baseline(dt, tb, M, N, K, A.data(), K, B.data(), ldb, base.data(), N);
        EXPECT_EQ(C, base);
        std::vector<double> naive(M * N, 0.0);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n)
            for (int64_t k = 0; k < K; ++k)
              naive[m * N + n] += double(A[m * K + k]) * double(tb ? B[n * K + k] : B[k * N + n]);
        EXPECT_LE(max_rel_err(C, naive), tol<T>() * 4);
        for (int64_t rows : {1, 2, 3, 5}) {
          for (int64_t m0 = 0; m0 + rows <= M; m0 += rows) {
            std::vector<T> part(rows * N);
            gemm_fixed_order_cpu(dt, tb, rows, N, K, A.data() + m0 * K, K, B.data(), ldb, part.data(), N);
            EXPECT_EQ(0, std::memcmp(part.data(), C.data() + m0 * N, sizeof(T) * rows * N)) << rows << " rows at " << m0;
          }
        }
      }
}

// Every activation on a row of values, and on the same values shifted by 1..7 positions inside
// a longer row: each element gets the same bits whether it falls in a vectorised body or in a
// scalar tail. Softmax, row-wise, gets the same bits for a row alone or among others.
TYPED_TEST(BatchInvariance, ElementwiseKernelsDoNotDependOnPosition) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  Backend& be = backend_for(Device::cpu);
  const int64_t n = 37;
  const std::vector<T> v = uniform<T>(n, 3, -6.0, 6.0);
  for (ActKind k : {ActKind::identity, ActKind::relu, ActKind::leaky_relu, ActKind::sigmoid, ActKind::tanh,
                    ActKind::elu, ActKind::gelu, ActKind::silu}) {
    SCOPED_TRACE(act_name(k));
    const Activation act{k, k == ActKind::leaky_relu ? 0.1 : 1.0};
    std::vector<T> z = v, a(n);
    activation_forward(be, dt, act, a.data(), z.data(), nullptr, 1, n);
    for (int64_t shift = 1; shift < 8; ++shift) {
      std::vector<T> zs(n + shift + 5, T(0.5)), as(zs.size());
      std::copy(v.begin(), v.end(), zs.begin() + shift);
      activation_forward(be, dt, act, as.data(), zs.data(), nullptr, 1, int64_t(zs.size()));
      EXPECT_EQ(0, std::memcmp(as.data() + shift, a.data(), sizeof(T) * n)) << "shift " << shift;
    }
  }
  const int64_t rows = 5, cols = 11;
  const std::vector<T> logits = uniform<T>(rows * cols, 4, -5.0, 5.0);
  std::vector<T> z = logits, all(rows * cols);
  activation_forward(be, dt, {ActKind::softmax, 0}, all.data(), z.data(), nullptr, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<T> zr(logits.begin() + r * cols, logits.begin() + (r + 1) * cols), one(cols);
    activation_forward(be, dt, {ActKind::softmax, 0}, one.data(), zr.data(), nullptr, 1, cols);
    EXPECT_EQ(0, std::memcmp(one.data(), all.data() + r * cols, sizeof(T) * cols)) << "softmax row " << r;
  }
}

// predict of every row alone is the reference; predict in batches of several sizes, of shuffled
// rows, with 1 and 2 OpenBLAS threads gives it bitwise; evaluate's loss and count do not depend on
// the batch size. Every activation, both dtypes.
TYPED_TEST(BatchInvariance, NetworkPredictAndEvaluate) {
  using T = TypeParam;
  InvariantMode on;
  const int64_t n = 45, fin = 19, fout = 4;
  const std::vector<T> X = uniform<T>(n * fin, 5, -2.0, 2.0);
  const std::vector<int32_t> y = labels(n, fout, 6);
  for (ActKind k : {ActKind::identity, ActKind::relu, ActKind::leaky_relu, ActKind::sigmoid, ActKind::tanh,
                    ActKind::elu, ActKind::gelu, ActKind::silu, ActKind::softmax}) {
    SCOPED_TRACE(act_name(k));
    Mlp m = make_mlp(dtype_of<T>(), {fin, 24, 9, fout}, Activation{k, k == ActKind::elu ? 1.0 : 0.05}, 7);
    Network net(m.arena, m.ops, fin);
    std::vector<T> ref(n * fout);
    for (int64_t r = 0; r < n; ++r) net.predict(ref.data() + r * fout, X.data() + r * fin, 1, 1);
    int64_t c0 = 0;
    const double v0 = net.evaluate(LossKind::cross_entropy, X.data(), y.data(), n, 1, &c0);
    for (int threads : {1, 2}) {
      cpu_set_num_threads(threads);
      for (int64_t bs : {2, 7, 16, 45}) {
        std::vector<T> out(n * fout);
        net.predict(out.data(), X.data(), n, bs);
        EXPECT_EQ(out, ref) << bs << " rows per batch, " << threads << " threads";
        int64_t c = 0;
        EXPECT_EQ(net.evaluate(LossKind::cross_entropy, X.data(), y.data(), n, bs, &c), v0);
        EXPECT_EQ(c, c0);
      }
      // Rows in another order, in batches mixing them differently.
      std::vector<T> Xr(X.size()), out(n * fout);
      for (int64_t r = 0; r < n; ++r)
        std::copy(X.begin() + (n - 1 - r) * fin, X.begin() + (n - r) * fin, Xr.begin() + r * fin);
      net.predict(out.data(), Xr.data(), n, 8);
      for (int64_t r = 0; r < n; ++r)
        EXPECT_EQ(0, std::memcmp(out.data() + r * fout, ref.data() + (n - 1 - r) * fout, sizeof(T) * fout));
    }
  }
}

// Training is unaffected: a train_step gives the same weights with the mode on and off.
TEST(BatchInvariance, TrainingIsUnaffected) {
  const int64_t B = 16;
  const std::vector<float> X = uniform<float>(B * 5, 8);
  const std::vector<int32_t> y = labels(B, 3, 9);
  std::vector<std::vector<float>> weights;
  for (bool inv : {false, true}) {
    set_batch_invariant(inv);
    Mlp m = make_mlp(DType::f32, {5, 12, 3}, Activation{ActKind::relu, 0}, 10);
    Network net(m.arena, m.ops, 5);
    Optimizer opt = make_optimizer(m, sgd(0.1, 0.9));
    for (int s = 0; s < 3; ++s) net.train_step(opt, LossKind::cross_entropy, X.data(), y.data(), B);
    weights.push_back(arena_params<float>(*m.arena));
  }
  set_batch_invariant(false);
  EXPECT_EQ(weights[0], weights[1]);
}
