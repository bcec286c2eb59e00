// test_layers.cpp — linear_forward / linear_backward (plain and transposed weight storage) against
// naive loops, and the initialisers' statistics, determinism and platform-independent stream.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "mlpcore/arena.h"
#include "mlpcore/ops.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

template <class T>
class Linear : public ::testing::Test {
 protected:
  Backend& be = backend_for(Device::cpu);
  static constexpr DType dt = dtype_of<T>();
};
TYPED_TEST_SUITE(Linear, FloatTypes);

// Weight element (o, i) of a layer stored (out, in), or (in, out) when transposed.
template <class T>
double weight_at(const std::vector<T>& w, bool transposed, int64_t in, int64_t out, int64_t o, int64_t i) {
  return transposed ? double(w[i * out + o]) : double(w[o * in + i]);
}

}  // namespace

// z = x · Wᵀ; dW (+)= dzᵀ · x (in the storage layout); dx = dz · W; dx = nullptr skips dx.
TYPED_TEST(Linear, ForwardBackwardPlainAndTransposed) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const int64_t B = 13, in = 19, out = 7;
  for (bool transposed : {false, true})
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "transposed=" << transposed << " accumulate=" << accumulate);
      const std::vector<T> x = uniform<T>(B * in, 1), w = uniform<T>(in * out, 2), dz = uniform<T>(B * out, 3);
      std::vector<T> z(B * out, nan), dx(B * in, nan);
      std::vector<T> dw = accumulate ? uniform<T>(in * out, 4) : std::vector<T>(in * out, nan);
      const std::vector<T> dw0 = dw;
      linear_forward(this->be, this->dt, z.data(), x.data(), w.data(), B, in, out, transposed);
      linear_backward(this->be, this->dt, dx.data(), dw.data(), dz.data(), x.data(), w.data(), B, in, out, transposed,
                      accumulate);
      std::vector<double> zref(B * out, 0.0), dxref(B * in, 0.0), dwref(in * out, 0.0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t o = 0; o < out; ++o)
          for (int64_t i = 0; i < in; ++i) {
            const double wv = weight_at(w, transposed, in, out, o, i);
            zref[b * out + o] += double(x[b * in + i]) * wv;
            dxref[b * in + i] += double(dz[b * out + o]) * wv;
            dwref[transposed ? i * out + o : o * in + i] += double(dz[b * out + o]) * double(x[b * in + i]);
          }
      if (accumulate)
        for (size_t k = 0; k < dwref.size(); ++k) dwref[k] += double(dw0[k]);
      EXPECT_LE(max_rel_err(z, zref), tol<T>());
      EXPECT_LE(max_rel_err(dx, dxref), tol<T>());
      EXPECT_LE(max_rel_err(dw, dwref), tol<T>());

      // First layer: dx = nullptr computes the same dW and leaves everything else alone.
      std::vector<T> dw2 = dw0;
      linear_backward(this->be, this->dt, nullptr, dw2.data(), dz.data(), x.data(), w.data(), B, in, out, transposed,
                      accumulate);
      EXPECT_EQ(0, std::memcmp(dw2.data(), dw.data(), sizeof(T) * dw.size()));
    }
}

// ---- initialisers ------------------------------------------------------------------------------

// splitmix64's published test vector (state 0, then state += golden gamma): the stream behind
// every initialiser, dropout mask and shuffle, so it must be bit-exact everywhere.
TEST(Rng, Splitmix64KnownValues) {
  EXPECT_EQ(splitmix64(0), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(splitmix64(0x9E3779B97F4A7C15ull), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(splitmix64(0x9E3779B97F4A7C15ull * 2), 0x06C45D188009454Full);
  EXPECT_EQ(u01(0), 0.0);
  EXPECT_LT(u01(~0ull), 1.0);
}

namespace {
struct Moments {
  double mean = 0, var = 0, min = 1e300, max = -1e300, kurtosis = 0, within_1sd = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x, m.min = std::min(m.min, x), m.max = std::max(m.max, x);
  m.mean /= double(v.size());
  double m4 = 0;
  for (double x : v) m.var += (x - m.mean) * (x - m.mean), m4 += std::pow(x - m.mean, 4);
  m.var /= double(v.size());
  m.kurtosis = m4 / double(v.size()) / (m.var * m.var);
  const double sd = std::sqrt(m.var);
  for (double x : v) m.within_1sd += std::abs(x - m.mean) <= sd;
  m.within_1sd /= double(v.size());
  return m;
}
}  // namespace

// PyTorch's formulas: he_uniform U(±sqrt(6/fan_in)) (variance 2/fan_in), he_normal N(0, 2/fan_in),
// xavier_uniform U(±sqrt(6/(fan_in+fan_out))), xavier_normal N(0, 2/(fan_in+fan_out)).
// Checked on 200k draws: mean within 5 standard errors of 0, variance within 2%, range (uniform),
// kurtosis 1.8 (uniform) / 3 (normal) and the 68.3% one-sigma mass (normal).
TEST(Init, StatisticsOfEveryInitialiser) {
  const int64_t n = 200000, fan_in = 300, fan_out = 100;
  struct Case {
    InitKind kind;
    double var;
    bool normal;
  };
  const Case cases[] = {{InitKind::he_uniform, 2.0 / fan_in, false},
                        {InitKind::he_normal, 2.0 / fan_in, true},
                        {InitKind::xavier_uniform, 2.0 / (fan_in + fan_out), false},
                        {InitKind::xavier_normal, 2.0 / (fan_in + fan_out), true}};
  for (const Case& c : cases) {
    SCOPED_TRACE(int(c.kind));
    std::vector<double> v(n);
    init_fill(DType::f64, v.data(), n, c.kind, fan_in, fan_out, 42);
    const Moments m = moments(v);
    EXPECT_NEAR(m.mean, 0.0, 5 * std::sqrt(c.var / n));
    EXPECT_NEAR(m.var / c.var, 1.0, 0.02);
    if (c.normal) {
      EXPECT_NEAR(m.kurtosis, 3.0, 0.1);
      EXPECT_NEAR(m.within_1sd, 0.6827, 0.005);
    } else {
      const double bound = std::sqrt(3 * c.var);
      EXPECT_GE(m.min, -bound);
      EXPECT_LE(m.max, bound);
      EXPECT_LT(m.min, -bound * 0.999);  // the whole range is used
      EXPECT_GT(m.max, bound * 0.999);
      EXPECT_NEAR(m.kurtosis, 1.8, 0.05);
    }
  }
  std::vector<double> z(100, 3.0);
  init_fill(DType::f64, z.data(), 100, InitKind::zeros, fan_in, fan_out, 42);
  for (double x : z) EXPECT_EQ(x, 0.0);
}

// Same seed: the same values; another seed: different values; float32 is float64 rounded.
TEST(Init, DeterministicPerSeedAndDtypeConsistent) {
  const int64_t n = 1000;
  for (InitKind kind : {InitKind::he_uniform, InitKind::he_normal, InitKind::xavier_uniform, InitKind::xavier_normal}) {
    SCOPED_TRACE(int(kind));
    std::vector<double> a(n), b(n), c(n);
    std::vector<float> f(n);
    init_fill(DType::f64, a.data(), n, kind, 64, 32, 7);
    init_fill(DType::f64, b.data(), n, kind, 64, 32, 7);
    init_fill(DType::f64, c.data(), n, kind, 64, 32, 8);
    init_fill(DType::f32, f.data(), n, kind, 64, 32, 7);
    EXPECT_EQ(a, b);
    int64_t same = 0;
    for (int64_t i = 0; i < n; ++i) same += a[i] == c[i];
    EXPECT_LT(same, 5);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(f[i], float(a[i])) << i;
  }
}
