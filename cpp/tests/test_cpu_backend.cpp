// test_cpu_backend.cpp — every CPU Backend kernel (except optim_step: test_optim.cpp) against
// naive reference loops written here, in float32 and float64. References run in double;
// derivatives are checked against central differences of the scalar formulas in double.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "mlpcore/backend.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

template <class T>
class CpuKernels : public ::testing::Test {
 protected:
  Backend& be = backend_for(Device::cpu);
  static constexpr DType dt = dtype_of<T>();
  static constexpr T nan = std::numeric_limits<T>::quiet_NaN();
};
TYPED_TEST_SUITE(CpuKernels, FloatTypes);

std::vector<Activation> all_activations() {
  return {{ActKind::identity, 0.0}, {ActKind::relu, 0.0},  {ActKind::leaky_relu, 0.1},
          {ActKind::sigmoid, 0.0},  {ActKind::tanh, 0.0},  {ActKind::elu, 0.7},
          {ActKind::gelu, 0.0},     {ActKind::silu, 0.0},  {ActKind::softmax, 0.0}};
}

std::vector<double> act_naive(const Activation& act, const std::vector<double>& z, int64_t rows, int64_t cols) {
  if (act.kind == ActKind::softmax) return softmax_naive(z, rows, cols);
  std::vector<double> a(z.size());
  for (size_t i = 0; i < z.size(); ++i) a[i] = act_apply<double>(act.kind, act.param, z[i]);
  return a;
}

}  // namespace

// ---- gemm -------------------------------------------------------------------------------------

// C[M,N] = alpha op(A) op(B) + beta C in row-major storage with padded leading dimensions, for all
// four transpose combinations and beta 0 / 1. With beta = 0, C holds NaN on entry and must not be
// read (the network's workspace is never cleared before a GEMM writes it). The padding columns
// of C must be left alone.
TYPED_TEST(CpuKernels, GemmAllTransposesBetasAndLeadingDims) {
  using T = TypeParam;
  struct Shape {
    int64_t M, N, K;
  };
  uint64_t seed = 1;
  // M == 1 and N == 1 take the GEMV route (batch-1 inference, one output unit).
  for (Shape s : {Shape{1, 1, 1}, Shape{1, 37, 19}, Shape{23, 1, 41}, Shape{1, 256, 784}, Shape{7, 5, 9},
                  Shape{33, 17, 65}, Shape{64, 96, 128}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (double beta : {0.0, 1.0}) {
          SCOPED_TRACE(::testing::Message() << "M=" << s.M << " N=" << s.N << " K=" << s.K << " ta=" << ta
                                            << " tb=" << tb << " beta=" << beta);
          const int64_t M = s.M, N = s.N, K = s.K;
          const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, lda = a_cols + 3;
          const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N, ldb = b_cols + 2;
          const int64_t ldc = N + 1;
          const double alpha = 0.75;
          std::vector<T> A = uniform<T>(a_rows * lda, seed++), B = uniform<T>(b_rows * ldb, seed++);
          std::vector<T> C0 = uniform<T>(M * ldc, seed++);
          if (beta == 0.0)
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < N; ++j) C0[i * ldc + j] = TestFixture::nan;
          std::vector<T> C = C0;
          this->be.gemm(this->dt, ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          std::vector<double> got, ref;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double acc = 0;
              for (int64_t k = 0; k < K; ++k) {
                const double a = ta ? A[k * lda + i] : A[i * lda + k];
                const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += a * b;
              }
              ref.push_back(alpha * acc + (beta != 0.0 ? beta * double(C0[i * ldc + j]) : 0.0));
              got.push_back(C[i * ldc + j]);
            }
          EXPECT_LE(max_rel_err(got, ref), tol<T>());
          for (int64_t i = 0; i < M; ++i) EXPECT_EQ(C[i * ldc + N], C0[i * ldc + N]) << "padding of row " << i;
        }
}

// ---- bias + activation forward ------------------------------------------------------------------

// z += bias; a = act(z) for every activation, with and without bias, with a separate output and
// in place (a aliasing z), against act_apply<double> / a naive softmax.
TYPED_TEST(CpuKernels, BiasActForwardEveryActivation) {
  using T = TypeParam;
  const int64_t rows = 9, cols = 13;
  for (const Activation& act : all_activations())
    for (bool with_bias : {false, true})
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(::testing::Message() << act_name(act.kind) << " bias=" << with_bias << " in_place=" << in_place);
        std::vector<T> z = uniform<T>(rows * cols, 11, -4.0, 4.0), bias = uniform<T>(cols, 12);
        const std::vector<T> z0 = z;
        std::vector<T> a(z.size(), TestFixture::nan);
        T* out = in_place ? z.data() : a.data();
        activation_forward(this->be, this->dt, act, out, z.data(), with_bias ? bias.data() : nullptr, rows, cols);
        std::vector<double> zref(z.size());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c)
            zref[r * cols + c] = double(z0[r * cols + c]) + (with_bias ? double(bias[c]) : 0.0);
        const std::vector<double> aref = act_naive(act, zref, rows, cols);
        std::vector<T> got(out, out + rows * cols);
        EXPECT_LE(max_rel_err(got, aref), tol<T>() * 4);
        if (!in_place) EXPECT_LE(max_rel_err(z, zref), tol<T>()) << "z must hold the pre-activation";
      }
}

TYPED_TEST(CpuKernels, SoftmaxRowsSumToOneAndIsStableForLargeLogits) {
  using T = TypeParam;
  const int64_t rows = 16, cols = 10;
  std::vector<T> z = uniform<T>(rows * cols, 21, -20.0, 20.0);
  z[0] = T(1000), z[1] = T(999);  // exp would overflow without the max subtraction
  z[cols] = T(-1000);             // row 1: one very negative logit
  std::vector<T> a(z.size());
  activation_forward(this->be, this->dt, Activation{ActKind::softmax, 0.0}, a.data(), z.data(), nullptr, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const T v = a[r * cols + c];
      EXPECT_TRUE(std::isfinite(double(v)) && v >= T(0) && v <= T(1)) << "row " << r << " col " << c << " = " << v;
      s += double(v);
    }
    EXPECT_NEAR(s, 1.0, tol<T>()) << "row " << r;
  }
  // Row 0 is dominated by the two large logits: softmax(1000, 999) = (1/(1+e^-1), e^-1/(1+e^-1)).
  EXPECT_NEAR(double(a[0]), 1.0 / (1.0 + std::exp(-1.0)), tol<T>());
  EXPECT_NEAR(double(a[1]), std::exp(-1.0) / (1.0 + std::exp(-1.0)), tol<T>());
}

// ---- activation derivatives ---------------------------------------------------------------------

// The scalar derivative formulas every backend uses, against central differences of act_apply.
TEST(ActivationFormulas, DerivativeMatchesCentralDifferencesInDouble) {
  const std::vector<double> xs = away_from_zero<double>(400, 31, 0.01, 6.0);
  for (const Activation& act : all_activations()) {
    if (act.kind == ActKind::softmax) continue;  // row-wise: tested through the backend below
    SCOPED_TRACE(act_name(act.kind));
    double worst = 0;
    for (double x : xs) {
      const double h = 1e-5;
      const double fd = (act_apply<double>(act.kind, act.param, x + h) - act_apply<double>(act.kind, act.param, x - h)) / (2 * h);
      const double d = act_derivative<double>(act.kind, act.param, x, act_apply<double>(act.kind, act.param, x));
      worst = std::max(worst, std::abs(d - fd) / std::max(1.0, std::abs(fd)));
    }
    EXPECT_LE(worst, 1e-8);
  }
}

// dz = da * act'(z); dbias = column sums of dz (overwritten, or added to with accumulate), with dz
// separate from da or in place, and z = nullptr for activations whose backward needs only a.
// Reference: central differences of act_apply<double> (a naive softmax for softmax).
TYPED_TEST(CpuKernels, ActBackwardBiasGradEveryActivation) {
  using T = TypeParam;
  const int64_t rows = 6, cols = 11;
  const double fd_tol = std::max(tol<T>() * 4, 1e-8);
  for (const Activation& act : all_activations())
    for (int mode = 0; mode < 4; ++mode) {
      const bool accumulate = mode & 1, in_place = mode & 2;
      SCOPED_TRACE(::testing::Message() << act_name(act.kind) << " accumulate=" << accumulate << " in_place=" << in_place);
      std::vector<T> z = away_from_zero<T>(rows * cols, 41, 0.05, 3.0), a(z.size());
      activation_forward(this->be, this->dt, act, a.data(), z.data(), nullptr, rows, cols);
      std::vector<T> da = uniform<T>(rows * cols, 42), dz(z.size(), TestFixture::nan);
      std::vector<T> dbias = accumulate ? uniform<T>(cols, 43) : std::vector<T>(cols, TestFixture::nan);
      const std::vector<T> dbias0 = dbias, da0 = da;
      T* dz_ptr = in_place ? da.data() : dz.data();
      const T* z_ptr = act.needs_input() ? z.data() : nullptr;
      activation_backward(this->be, this->dt, act, dz_ptr, dbias.data(), da.data(), z_ptr, a.data(), accumulate, rows, cols);
      // Reference in double from the (rounded) z.
      std::vector<double> zd = to_double(z), dzref(z.size());
      const double h = 1e-6;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const int64_t i = r * cols + c;
          if (act.kind == ActKind::softmax) {
            // d/dz_c of sum_j da_j softmax(z)_j
            std::vector<double> zp(zd.begin() + r * cols, zd.begin() + (r + 1) * cols), zm = zp;
            zp[c] += h, zm[c] -= h;
            const auto ap = softmax_naive(zp, 1, cols), am = softmax_naive(zm, 1, cols);
            double g = 0;
            for (int64_t j = 0; j < cols; ++j) g += double(da0[r * cols + j]) * (ap[j] - am[j]) / (2 * h);
            dzref[i] = g;
          } else {
            const double fd = (act_apply<double>(act.kind, act.param, zd[i] + h) -
                               act_apply<double>(act.kind, act.param, zd[i] - h)) / (2 * h);
            dzref[i] = double(da0[i]) * fd;
          }
        }
      std::vector<T> got(dz_ptr, dz_ptr + rows * cols);
      EXPECT_LE(max_rel_err(got, dzref), fd_tol);
      std::vector<double> dbref(cols, 0.0);
      for (int64_t c = 0; c < cols; ++c) {
        dbref[c] = accumulate ? double(dbias0[c]) : 0.0;
        for (int64_t r = 0; r < rows; ++r) dbref[c] += dzref[r * cols + c];
      }
      EXPECT_LE(max_rel_err(dbias, dbref), fd_tol);
      // Without a bias gradient the same dz comes out.
      std::vector<T> dz2(z.size());
      activation_backward(this->be, this->dt, act, dz2.data(), nullptr, da0.data(), z_ptr, a.data(), false, rows, cols);
      EXPECT_EQ(0, std::memcmp(dz2.data(), got.data(), sizeof(T) * got.size()));
    }
}

// ---- losses ---------------------------------------------------------------------------------------


// Value and gradient of each loss in one call, against the naive formulas, against central
// differences of the naive value, and split into two row blocks sharing rows_total.
TYPED_TEST(CpuKernels, LossValueAndGradientEveryLoss) {
  using T = TypeParam;
  const int64_t rows = 7, cols = 5;
  for (LossKind kind : {LossKind::mse, LossKind::cross_entropy, LossKind::bce_with_logits}) {
    SCOPED_TRACE(loss_name(kind));
    const std::vector<T> pred = uniform<T>(rows * cols, 51, -3.0, 3.0);
    // BCE takes soft targets in [0, 1]; MSE any real target; CE int labels.
    const std::vector<T> tgt = kind == LossKind::bce_with_logits ? uniform<T>(rows * cols, 52, 0.0, 1.0)
                                                                : uniform<T>(rows * cols, 52, -2.0, 2.0);
    const std::vector<int32_t> y = labels(rows, cols, 53);
    const void* target = kind == LossKind::cross_entropy ? static_cast<const void*>(y.data()) : tgt.data();
    std::vector<T> grad(pred.size(), TestFixture::nan);
    double value = TestFixture::nan;
    loss_mean(this->be, this->dt, kind, &value, grad.data(), pred.data(), target, rows, cols, rows);

    const std::vector<double> pd = to_double(pred), td = to_double(tgt);
    const double vref = loss_naive(kind, pd, td, y, rows, cols);
    EXPECT_NEAR(value, vref, tol<T>() * std::max(1.0, std::abs(vref)));
    EXPECT_LE(max_rel_err(grad, loss_grad_naive(kind, pd, td, y, rows, cols)), tol<T>() * 4);
    // Central differences of the naive value.
    std::vector<double> fd(pd.size());
    for (size_t i = 0; i < pd.size(); ++i) {
      const double h = 1e-6;
      std::vector<double> pp = pd, pm = pd;
      pp[i] += h, pm[i] -= h;
      fd[i] = (loss_naive(kind, pp, td, y, rows, cols) - loss_naive(kind, pm, td, y, rows, cols)) / (2 * h);
    }
    EXPECT_LE(max_rel_err(grad, fd), std::max(tol<T>() * 4, 1e-7));

    // Two row blocks with rows_total = rows: values add up to the whole, gradients are identical.
    const int64_t r0 = 3;
    std::vector<T> g2(pred.size(), TestFixture::nan);
    double v0 = 0, v1 = 0;
    const size_t tstride = kind == LossKind::cross_entropy ? sizeof(int32_t) : sizeof(T) * cols;
    loss_mean(this->be, this->dt, kind, &v0, g2.data(), pred.data(), target, r0, cols, rows);
    loss_mean(this->be, this->dt, kind, &v1, g2.data() + r0 * cols, pred.data() + r0 * cols, static_cast<const char*>(target) + r0 * tstride, rows - r0, cols, rows);
    EXPECT_NEAR(v0 + v1, value, 1e-12 * std::max(1.0, std::abs(value)));
    EXPECT_EQ(0, std::memcmp(g2.data(), grad.data(), sizeof(T) * grad.size()));
  }
}

// Logits far outside exp's range: values stay finite and exact (log-sum-exp, log1p(exp(-|x|))).
TYPED_TEST(CpuKernels, LossesAreStableForExtremeLogits) {
  using T = TypeParam;
  {
    const std::vector<T> pred = {T(1000), T(0), T(-1000), T(1000), T(0), T(-1000)};
    const std::vector<int32_t> y = {0, 2};
    std::vector<T> grad(6);
    double v = 0;
    loss_mean(this->be, this->dt, LossKind::cross_entropy, &v, grad.data(), pred.data(), y.data(), 2, 3, 2);
    EXPECT_NEAR(v, (0.0 + 2000.0) / 2, 1e-9);  // row 0: ~0, row 1: 2000
    for (T g : grad) EXPECT_TRUE(std::isfinite(double(g)));
    EXPECT_NEAR(double(grad[5]), -0.5, 1e-7);  // (softmax - 1) / B for the hopeless label
  }
  {
    const std::vector<T> pred = {T(100), T(-100), T(100), T(-100)}, tgt = {T(0), T(1), T(1), T(0)};
    std::vector<T> grad(4);
    double v = 0;
    loss_mean(this->be, this->dt, LossKind::bce_with_logits, &v, grad.data(), pred.data(), tgt.data(), 2, 2, 2);
    EXPECT_NEAR(v, (100.0 + 100.0 + 0.0 + 0.0) / 4, 1e-9);
    EXPECT_NEAR(double(grad[0]), 0.25, 1e-7);
    EXPECT_NEAR(double(grad[1]), -0.25, 1e-7);
    EXPECT_NEAR(double(grad[2]), 0.0, 1e-7);
  }
}

TYPED_TEST(CpuKernels, CountCorrectMatchesNaiveArgmax) {
  using T = TypeParam;
  const int64_t rows = 200, cols = 7;
  const std::vector<T> pred = uniform<T>(rows * cols, 61);
  std::vector<int32_t> y = labels(rows, cols, 62);
  int64_t ref = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c)
      if (pred[r * cols + c] > pred[r * cols + best]) best = c;
    ref += best == y[r];
  }
  EXPECT_GT(ref, 0);
  EXPECT_EQ(count_correct(this->be, this->dt, pred.data(), y.data(), rows, cols), ref);
  // Labels set to the arg-max: all correct.
  for (int64_t r = 0; r < rows; ++r)
    y[r] = int32_t(std::max_element(pred.begin() + r * cols, pred.begin() + (r + 1) * cols) - (pred.begin() + r * cols));
  EXPECT_EQ(count_correct(this->be, this->dt, pred.data(), y.data(), rows, cols), rows);
}

// ---- data movement -----------------------------------------------------------------------------------

TYPED_TEST(CpuKernels, GatherRowsAndLabels) {
  using T = TypeParam;
  const int64_t n = 10, cols = 3;
  const std::vector<T> src = uniform<T>(n * cols, 71);
  std::vector<int32_t> lab(n);
  for (int64_t i = 0; i < n; ++i) lab[i] = int32_t(100 + i);
  const std::vector<int64_t> idx = {9, 0, 4, 4, 7, 1};  // out of order, with a repeat
  const int64_t rows = int64_t(idx.size());
  std::vector<T> out(rows * cols + 1, T(-7));
  std::vector<int32_t> lout(rows + 1, -7);
  this->be.gather_rows(this->dt, out.data(), src.data(), idx.data(), rows, cols);
  this->be.gather_labels(lout.data(), lab.data(), idx.data(), rows);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(out[i * cols + c], src[idx[i] * cols + c]);
    EXPECT_EQ(lout[i], 100 + idx[i]);
  }
  EXPECT_EQ(out.back(), T(-7));  // nothing written past the end
  EXPECT_EQ(lout.back(), -7);
}

TYPED_TEST(CpuKernels, FillCopyMulAddInplace) {
  using T = TypeParam;
  const int64_t n = 37;
  std::vector<T> a = uniform<T>(n, 81), b = uniform<T>(n, 82), y(n);
  this->be.fill(this->dt, y.data(), n, 2.5);
  for (T v : y) EXPECT_EQ(v, T(2.5));
  this->be.copy(y.data(), a.data(), sizeof(T) * n);
  EXPECT_EQ(y, a);
  this->be.mul(this->dt, y.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], T(a[i] * b[i]));
  std::vector<T> s = a;
  this->be.add_inplace(this->dt, s.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(s[i], T(a[i] + b[i]));
}

// ---- dropout -----------------------------------------------------------------------------------------

// Mask values are exactly 0 or 1/(1-p); y = x * mask; the keep rate is 1-p within 6 sigma; the
// mask is a pure function of (seed, offset + i): same inputs give the same mask, a later offset
// gives the tail of an earlier call, and a different seed gives an independent mask.
TYPED_TEST(CpuKernels, DropoutMaskValuesRateAndDeterminism) {
  using T = TypeParam;
  const int64_t n = 100000;
  const std::vector<T> x = uniform<T>(n, 91, 0.5, 1.5);
  for (double p : {0.3, 0.5, 0.9}) {
    SCOPED_TRACE(::testing::Message() << "p=" << p);
    std::vector<T> y(n), mask(n);
    dropout_at(this->be, this->dt, y.data(), mask.data(), x.data(), n, p, 1234, 0);
    const T scale = T(1.0 / (1.0 - p));
    int64_t kept = 0;
    bool values_ok = true, product_ok = true;
    for (int64_t i = 0; i < n; ++i) {
      values_ok &= mask[i] == T(0) || mask[i] == scale;
      product_ok &= y[i] == x[i] * mask[i];
      kept += mask[i] != T(0);
    }
    EXPECT_TRUE(values_ok);
    EXPECT_TRUE(product_ok);
    const double sigma = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(double(kept), n * (1 - p), 6 * sigma);

    std::vector<T> y2(n), mask2(n);
    dropout_at(this->be, this->dt, y2.data(), mask2.data(), x.data(), n, p, 1234, 0);
    EXPECT_EQ(mask, mask2) << "same seed and offset must give the same mask";
    const int64_t k = 777;
    std::vector<T> y3(n - k), mask3(n - k);
    dropout_at(this->be, this->dt, y3.data(), mask3.data(), x.data() + k, n - k, p, 1234, uint64_t(k));
    EXPECT_TRUE(std::equal(mask3.begin(), mask3.end(), mask.begin() + k)) << "offset k must continue the stream";
    std::vector<T> y4(n), mask4(n);
    dropout_at(this->be, this->dt, y4.data(), mask4.data(), x.data(), n, p, 1235, 0);
    int64_t agree = 0;
    for (int64_t i = 0; i < n; ++i) agree += (mask4[i] != T(0)) == (mask[i] != T(0));
    const double expect_agree = p * p + (1 - p) * (1 - p);  // independent masks
    EXPECT_NEAR(double(agree) / n, expect_agree, 0.01);
  }
  // p = 0 keeps everything unscaled.
  std::vector<T> y(n), mask(n);
  dropout_at(this->be, this->dt, y.data(), mask.data(), x.data(), n, 0.0, 5, 0);
  EXPECT_TRUE(std::all_of(mask.begin(), mask.end(), [](T m) { return m == T(1); }));
  EXPECT_EQ(y, x);
}

// ---- maxout ------------------------------------------------------------------------------------------

TYPED_TEST(CpuKernels, MaxoutForwardBackward) {
  using T = TypeParam;
  for (int64_t pieces : {1, 2, 3, 5}) {
    SCOPED_TRACE(::testing::Message() << "pieces=" << pieces);
    const int64_t rows = 4, cols = 6;
    const std::vector<T> x = uniform<T>(rows * cols * pieces, 101 + pieces);
    std::vector<T> y(rows * cols, TestFixture::nan);
    std::vector<int32_t> idx(rows * cols, -1);
    maxout_forward(this->be, this->dt, y.data(), idx.data(), x.data(), rows, cols, pieces);
    for (int64_t i = 0; i < rows * cols; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < pieces; ++k)
        if (x[i * pieces + k] > x[i * pieces + best]) best = k;
      EXPECT_EQ(idx[i], best);
      EXPECT_EQ(y[i], x[i * pieces + best]);
    }
    const std::vector<T> dy = uniform<T>(rows * cols, 111);
    std::vector<T> dx(x.size(), TestFixture::nan);
    maxout_backward(this->be, this->dt, dx.data(), dy.data(), idx.data(), rows, cols, pieces);
    for (int64_t i = 0; i < rows * cols; ++i)
      for (int64_t k = 0; k < pieces; ++k) EXPECT_EQ(dx[i * pieces + k], k == idx[i] ? dy[i] : T(0));
  }
}

// ---- all_finite --------------------------------------------------------------------------------------

TYPED_TEST(CpuKernels, AllFinite) {
  using T = TypeParam;
  const int64_t n = 1001;
  std::vector<T> x = uniform<T>(n, 121, -1e3, 1e3);
  EXPECT_TRUE(this->be.all_finite(this->dt, x.data(), n));
  EXPECT_TRUE(this->be.all_finite(this->dt, x.data(), 0));
  x[5] = std::numeric_limits<T>::max();
  x[6] = -std::numeric_limits<T>::max();
  x[7] = std::numeric_limits<T>::denorm_min();
  EXPECT_TRUE(this->be.all_finite(this->dt, x.data(), n));
  for (T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                -std::numeric_limits<T>::infinity()})
    for (int64_t at : {int64_t(0), int64_t(500), n - 1}) {
      std::vector<T> y = x;
      y[at] = bad;
      EXPECT_FALSE(this->be.all_finite(this->dt, y.data(), n)) << bad << " at " << at;
      EXPECT_TRUE(this->be.all_finite(this->dt, y.data(), at)) << "only the first " << at << " values are checked";
    }
}
