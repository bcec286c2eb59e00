// test_losses.cpp — the CPU loss kernels with parameters and sample weights (every LossSpec
// setting) against naive double formulas written here from PyTorch's definitions, and against
// central differences of those formulas; the weighted mean's rules (all-zero weights, rows of
// weight 0, unit weights, a batch split into blocks sharing a divisor); loss_check. The
// unweighted MSE / CE / BCE kernels are also covered by test_cpu_backend.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

struct Case {
  std::string name;
  LossSpec spec;
  bool class_weights = false, pos_weights = false;
};

std::vector<Case> cases() {
  auto with = [](LossKind k, auto&& set) {
    LossSpec s(k);
    set(s);
    return s;
  };
  return {
      {"mse", LossSpec(LossKind::mse)},
      {"l1", LossSpec(LossKind::l1)},
      {"huber_0.7", with(LossKind::huber, [](LossSpec& s) { s.delta = 0.7; })},
      {"smooth_l1_0.5", with(LossKind::smooth_l1, [](LossSpec& s) { s.beta = 0.5; })},
      {"smooth_l1_0", with(LossKind::smooth_l1, [](LossSpec& s) { s.beta = 0.0; })},
      {"bce", LossSpec(LossKind::bce_with_logits)},
      {"bce_pos_weight", LossSpec(LossKind::bce_with_logits), false, true},
      {"poisson", LossSpec(LossKind::poisson_nll)},
      {"poisson_full", with(LossKind::poisson_nll, [](LossSpec& s) { s.full = true; })},
      {"poisson_rate", with(LossKind::poisson_nll, [](LossSpec& s) { s.log_input = false, s.full = true, s.eps = 0.1; })},
      {"ce", LossSpec(LossKind::cross_entropy)},
      {"ce_weight", LossSpec(LossKind::cross_entropy), true},
      {"ce_smooth", with(LossKind::cross_entropy, [](LossSpec& s) { s.label_smoothing = 0.2; })},
      {"ce_weight_smooth", with(LossKind::cross_entropy, [](LossSpec& s) { s.label_smoothing = 0.4; }), true},
  };
}

// PyTorch's element-wise definitions, in double, without stabilisation.
double elem_naive(const LossSpec& s, double x, double t, double p) {
  const double d = x - t, z = std::abs(d);
  switch (s.kind) {
    case LossKind::mse: return d * d;
    case LossKind::l1: return z;
    case LossKind::huber: return z < s.delta ? 0.5 * d * d : s.delta * (z - 0.5 * s.delta);
    case LossKind::smooth_l1: return s.beta == 0 ? z : z < s.beta ? 0.5 * d * d / s.beta : z - 0.5 * s.beta;
    case LossKind::bce_with_logits: {
      const double sg = 1.0 / (1.0 + std::exp(-x));
      return -(p * t * std::log(sg) + (1 - t) * std::log(1 - sg));
    }
    case LossKind::poisson_nll: {
      double v = s.log_input ? std::exp(x) - t * x : x - t * std::log(x + s.eps);
      if (s.full && t > 1) v += t * std::log(t) - t + 0.5 * std::log(2 * M_PI * t);
      return v;
    }
    case LossKind::cross_entropy: break;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

struct Batch {
  int64_t rows, cols;
  std::vector<double> pred, target, w, cw, pw;  // w empty: unweighted
  std::vector<int32_t> y;
};

// The weighted mean of mlpcore/loss.h in double: Σ w v / Σ w n.
double mean_naive(const LossSpec& s, const Batch& b, const std::vector<double>& pred) {
  double num = 0, den = 0;
  for (int64_t r = 0; r < b.rows; ++r) {
    const double w = b.w.empty() ? 1.0 : b.w[r];
    double v = 0, n = double(b.cols);
    if (s.kind == LossKind::cross_entropy) {
      double se = 0;
      for (int64_t c = 0; c < b.cols; ++c) se += std::exp(pred[r * b.cols + c]);
      const int32_t y = b.y[r];
      const double cwy = b.cw.empty() ? 1.0 : b.cw[y], eps = s.label_smoothing;
      for (int64_t c = 0; c < b.cols; ++c) {
        const double a = (1 - eps) * cwy * (c == y) + eps / double(b.cols) * (b.cw.empty() ? 1.0 : b.cw[c]);
        v += a * (std::log(se) - pred[r * b.cols + c]);
      }
      n = cwy;
    } else {
      for (int64_t c = 0; c < b.cols; ++c)
        v += elem_naive(s, pred[r * b.cols + c], b.target[r * b.cols + c], b.pw.empty() ? 1.0 : b.pw[c]);
    }
    num += w * v;
    den += w * n;
  }
  return den != 0 ? num / den : 0.0;
}

Batch make_batch(const Case& k, int64_t rows, int64_t cols, bool weighted, uint64_t seed) {
  Batch b{rows, cols};
  const LossSpec& s = k.spec;
  const bool rate = s.kind == LossKind::poisson_nll && !s.log_input;
  b.pred = uniform<double>(rows * cols, seed, rate ? 0.05 : -2.5, rate ? 4.0 : 2.5);
  b.target = uniform<double>(rows * cols, seed + 1, -2.0, 2.0);
  if (s.kind == LossKind::bce_with_logits)
    for (auto& t : b.target) t = (t + 2.0) / 4.0;  // in [0, 1]
  if (s.kind == LossKind::poisson_nll)
    for (auto& t : b.target) t = std::floor((t + 2.0) * 1.5);  // counts 0..5
  b.y = labels(rows, cols, seed + 2);
  if (weighted) {
    b.w = uniform<double>(rows, seed + 3, 0.0, 2.0);
    for (int64_t r = 0; r < rows; r += 4) b.w[r] = 0.0;
    b.w[rows - 1] = 1.25;
  }
  if (k.class_weights) b.cw = uniform<double>(cols, seed + 4, 0.3, 2.0);
  if (k.pos_weights) b.pw = uniform<double>(cols, seed + 5, 0.2, 3.0);
  return b;
}

template <class T>
struct Run {
  LossSums sums;
  std::vector<T> grad;
};

// One kernel call on batch b in dtype T (rows [r0, r1), divisor as given).
template <class T>
Run<T> run(const Case& k, const Batch& b, double divisor = 0, int64_t r0 = 0, int64_t r1 = -1,
           LossSums start = {}) {
  if (r1 < 0) r1 = b.rows;
  const std::vector<T> pred(b.pred.begin(), b.pred.end()), target(b.target.begin(), b.target.end()),
      w(b.w.begin(), b.w.end()), cw(b.cw.begin(), b.cw.end()), pw(b.pw.begin(), b.pw.end());
  LossSpec s = k.spec;
  s.class_weight = cw.empty() ? nullptr : cw.data();
  s.pos_weight = pw.empty() ? nullptr : pw.data();
  const bool labels_in = s.kind == LossKind::cross_entropy;
  const int64_t c = b.cols;
  Run<T> out{start, std::vector<T>(size_t((r1 - r0) * c), std::numeric_limits<T>::quiet_NaN())};
  const void* tgt = labels_in ? static_cast<const void*>(b.y.data() + r0) : target.data() + r0 * c;
  loss_forward_backward(backend_for(Device::cpu), dtype_of<T>(), s, &out.sums, out.grad.data(), pred.data() + r0 * c,
                        tgt, w.empty() ? nullptr : w.data() + r0, r1 - r0, c, divisor);
  return out;
}

template <class T>
class Losses : public ::testing::Test {};
TYPED_TEST_SUITE(Losses, FloatTypes);

}  // namespace

// Value and gradient of every setting, unweighted and weighted, against the naive mean and its
// central differences (in double).
TYPED_TEST(Losses, ValueAndGradientAgainstNaiveFormulas) {
  using T = TypeParam;
  for (const Case& k : cases())
    for (bool weighted : {false, true}) {
      SCOPED_TRACE(k.name + (weighted ? " weighted" : ""));
      const Batch b = make_batch(k, 9, 4, weighted, 11);
      const Run<T> r = run<T>(k, b);
      const double want = mean_naive(k.spec, b, b.pred);
      EXPECT_NEAR(loss_mean(r.sums), want, tol<T>() * 10 * std::max(1.0, std::abs(want)));
      std::vector<double> fd(b.pred.size());
      for (size_t i = 0; i < fd.size(); ++i) {
        std::vector<double> pp = b.pred, pm = b.pred;
        pp[i] += 1e-6, pm[i] -= 1e-6;
        fd[i] = (mean_naive(k.spec, b, pp) - mean_naive(k.spec, b, pm)) / 2e-6;
      }
      EXPECT_LE(max_rel_err(r.grad, fd), std::max(tol<T>() * 10, 1e-7));
    }
}

// Σ w n = 0: the sums' weight is 0, the mean 0, the gradient 0.
TYPED_TEST(Losses, AllZeroWeightsGiveZeroLossAndGradient) {
  using T = TypeParam;
  for (const Case& k : cases()) {
    SCOPED_TRACE(k.name);
    Batch b = make_batch(k, 6, 3, true, 21);
    std::fill(b.w.begin(), b.w.end(), 0.0);
    const Run<T> r = run<T>(k, b);
    EXPECT_EQ(r.sums.weight, 0.0);
    EXPECT_EQ(loss_mean(r.sums), 0.0);
    for (T g : r.grad) EXPECT_EQ(g, T(0));
  }
}

// Weights of 1 give the unweighted numbers bit for bit.
TYPED_TEST(Losses, UnitWeightsAreTheUnweightedNumbersExactly) {
  using T = TypeParam;
  for (const Case& k : cases()) {
    SCOPED_TRACE(k.name);
    Batch b = make_batch(k, 7, 5, false, 31);
    const Run<T> plain = run<T>(k, b);
    b.w.assign(size_t(b.rows), 1.0);
    const Run<T> ones = run<T>(k, b);
    EXPECT_EQ(plain.sums.value, ones.sums.value);
    EXPECT_EQ(plain.sums.weight, ones.sums.weight);
    EXPECT_EQ(0, std::memcmp(plain.grad.data(), ones.grad.data(), sizeof(T) * plain.grad.size()));
  }
}

// A batch split into two calls that share the whole batch's divisor: the sums continue row after
// row (equal to one call's, bit for bit) and the gradients are the one call's.
TYPED_TEST(Losses, BlocksSharingADivisorEqualOneCall) {
  using T = TypeParam;
  for (const Case& k : cases())
    for (bool weighted : {false, true}) {
      SCOPED_TRACE(k.name + (weighted ? " weighted" : ""));
      const Batch b = make_batch(k, 10, 3, weighted, 41);
      const Run<T> whole = run<T>(k, b);
      const Run<T> first = run<T>(k, b, whole.sums.weight, 0, 4);
      const Run<T> second = run<T>(k, b, whole.sums.weight, 4, 10, first.sums);
      EXPECT_EQ(second.sums.value, whole.sums.value);
      EXPECT_EQ(second.sums.weight, whole.sums.weight);
      std::vector<T> joined = first.grad;
      joined.insert(joined.end(), second.grad.begin(), second.grad.end());
      EXPECT_EQ(0, std::memcmp(joined.data(), whole.grad.data(), sizeof(T) * joined.size()));
    }
}

// A row of weight 0 contributes nothing, even a loss that overflows (exp(1000) = inf).
TYPED_TEST(Losses, ZeroWeightRowsContributeNothing) {
  using T = TypeParam;
  const Case k{"poisson", LossSpec(LossKind::poisson_nll)};
  Batch b{2, 1, {1000.0, 0.5}, {1.0, 2.0}, {0.0, 2.0}};
  const Run<T> r = run<T>(k, b);
  EXPECT_NEAR(loss_mean(r.sums), std::exp(0.5) - 1.0, tol<T>());
  EXPECT_EQ(r.grad[0], T(0));
  EXPECT_NEAR(double(r.grad[1]), std::exp(0.5) - 2.0, tol<T>() * 4);
}

TEST(LossCheck, RefusesParametersOutsideTheirDomain) {
  LossSpec s(LossKind::huber);
  EXPECT_NO_THROW(loss_check(s));
  s.delta = 0;
  EXPECT_THROW(loss_check(s), ValueError);
  s = LossSpec(LossKind::smooth_l1);
  s.beta = 0;
  EXPECT_NO_THROW(loss_check(s));
  s.beta = -1e-9;
  EXPECT_THROW(loss_check(s), ValueError);
  s = LossSpec(LossKind::cross_entropy);
  for (double ls : {0.0, 0.5, 1.0}) {
    s.label_smoothing = ls;
    EXPECT_NO_THROW(loss_check(s));
  }
  for (double ls : {-0.1, 1.1, std::numeric_limits<double>::quiet_NaN()}) {
    s.label_smoothing = ls;
    EXPECT_THROW(loss_check(s), ValueError);
  }
  EXPECT_EQ(std::string(loss_name(LossKind::poisson_nll)), "poisson_nll");
  EXPECT_TRUE(loss_def(LossKind::huber).per_element);
}
