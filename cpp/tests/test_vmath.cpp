// cpu/vmath.h: the vectorisable float32 exp / expm1 / tanh / erf / sigmoid against double libm,
// over dense sweeps of their useful ranges, plus saturation at +-1e4.
#include <gtest/gtest.h>

#include <cmath>

#include "cpu/vmath.h"

using namespace mc;

namespace {
// Max relative error of f(float x) against g(double x) for x = lo .. hi in n steps.
template <class F, class G>
double max_rel(F f, G g, double lo, double hi, int n, double floor = 0.0) {
  double worst = 0;
  for (int i = 0; i <= n; ++i) {
    const float x = float(lo + (hi - lo) * i / n);
    const double want = g(double(x)), got = double(f(x));
    worst = std::max(worst, std::abs(got - want) / std::max(std::abs(want), floor));
  }
  return worst;
}
}  // namespace

TEST(VMath, ExpRelativeErrorOverWholeRange) {
  EXPECT_LT(max_rel([](float x) { return vexp(x); }, [](double x) { return std::exp(x); }, -87.0, 88.0, 200000), 4e-7);
}

TEST(VMath, Expm1KeepsRelativeAccuracyNearZero) {
  auto f = [](float x) { return vexpm1(x); };
  auto g = [](double x) { return std::expm1(x); };
  EXPECT_LT(max_rel(f, g, -1e-3, 1e-3, 20001), 1e-6);
  EXPECT_LT(max_rel(f, g, -20.0, 20.0, 200001), 2e-6);
}

TEST(VMath, TanhRelativeError) {
  auto f = [](float x) { return vtanh(x); };
  auto g = [](double x) { return std::tanh(x); };
  EXPECT_LT(max_rel(f, g, -1e-3, 1e-3, 20001), 1e-6);
  EXPECT_LT(max_rel(f, g, -20.0, 20.0, 200001), 1e-6);
}

TEST(VMath, ErfAbsoluteError) {
  // Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7 in exact arithmetic; float32 evaluation: ~5e-7.
  EXPECT_LT(max_rel([](float x) { return verf(x); }, [](double x) { return std::erf(x); }, -6.0, 6.0, 200001, 1.0),
            6e-7);
}

TEST(VMath, SigmoidRelativeError) {
  auto f = [](float x) { return vsigmoid(x); };
  auto g = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  EXPECT_LT(max_rel(f, g, -80.0, 80.0, 200001), 1e-6);
}

TEST(VMath, SaturatesWithoutInfOrNaN) {
  for (float x : {-1e4f, -1e30f, 1e4f, 1e30f}) {
    EXPECT_TRUE(std::isfinite(vexp(x))) << x;
    EXPECT_TRUE(std::isfinite(vexpm1(x))) << x;
    EXPECT_EQ(std::abs(vtanh(x)), 1.0f) << x;
    EXPECT_EQ(std::abs(verf(x)), 1.0f) << x;
    EXPECT_TRUE(std::isfinite(vsigmoid(x))) << x;
  }
  EXPECT_EQ(vsigmoid(1e4f), 1.0f);
  EXPECT_LT(vsigmoid(-1e4f), 1e-37f);
  EXPECT_EQ(vexpm1(-1e4f), -1.0f);
}
