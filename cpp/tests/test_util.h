// test_util.h — helpers shared by the C++ unit tests: a deterministic value generator, the
// dtype <-> C++ type map for typed tests, and error measures. Reference results are always
// computed in double with naive loops; tolerances depend on the dtype under test.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "mlpcore/check.h"
#include "mlpcore/loss.h"
#include "mlpcore/ops.h"
#include "mlpcore/optim.h"
#include "mlpcore/rng.h"

namespace mc_test {

using mc::LossKind;

template <class T>
constexpr mc::DType dtype_of();
template <>
constexpr mc::DType dtype_of<float>() { return mc::DType::f32; }
template <>
constexpr mc::DType dtype_of<double>() { return mc::DType::f64; }

// Tolerances: float32 kernels against double references (a few ulps times the reduction length),
// float64 kernels against double references (rounding of a different summation order).
template <class T>
constexpr double tol() { return std::is_same<T, float>::value ? 2e-5 : 1e-12; }

// n values uniform in [lo, hi) from splitmix64(seed, i): the same on every platform.
template <class T>
std::vector<T> uniform(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::vector<T> v(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) v[i] = T(lo + (hi - lo) * mc::u01(mc::splitmix64(seed * 1000003ull + uint64_t(i))));
  return v;
}

// Values in [-hi, -lo] U [lo, hi]: keeps samples away from the kink at 0 of relu/leaky_relu/elu,
// where finite differences are meaningless.
template <class T>
std::vector<T> away_from_zero(int64_t n, uint64_t seed, double lo = 0.05, double hi = 3.0) {
  std::vector<T> v = uniform<T>(n, seed, -1.0, 1.0);
  for (auto& x : v) x = T((x >= T(0) ? 1.0 : -1.0) * (lo + (hi - lo) * std::abs(double(x))));
  return v;
}

inline std::vector<int32_t> labels(int64_t n, int64_t classes, uint64_t seed) {
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[i] = int32_t(mc::splitmix64(seed * 7919ull + uint64_t(i)) % uint64_t(classes));
  return y;
}

// max_i |a_i - b_i| / max_i |b_i| (as mc.gradcheck reports): relative to the scale of the reference.
// Infinite when any difference is NaN (std::max would silently drop it).
template <class A, class B>
double max_rel_err(const std::vector<A>& a, const std::vector<B>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 1e-300;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = std::abs(double(a[i]) - double(b[i]));
    if (!(d == d)) return std::numeric_limits<double>::infinity();  // NaN anywhere fails
    num = std::max(num, d);
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / den;
}

template <class T>
std::vector<double> to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Row-wise softmax of a (rows, cols) array, naive (no max subtraction: inputs are moderate).
inline std::vector<double> softmax_naive(const std::vector<double>& z, int64_t rows, int64_t cols) {
  std::vector<double> a(z.size());
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += std::exp(z[r * cols + c]);
    for (int64_t c = 0; c < cols; ++c) a[r * cols + c] = std::exp(z[r * cols + c]) / s;
  }
  return a;
}

// The losses' textbook formulas in double (mean reduction), no stabilisation tricks.
inline double loss_naive(LossKind kind, const std::vector<double>& p, const std::vector<double>& t,
                  const std::vector<int32_t>& y, int64_t rows, int64_t cols) {
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (kind == LossKind::cross_entropy) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += std::exp(p[r * cols + c]);
      total += std::log(s) - p[r * cols + y[r]];
      continue;
    }
    for (int64_t c = 0; c < cols; ++c) {
      const double x = p[r * cols + c], tt = t[r * cols + c];
      if (kind == LossKind::mse) {
        total += (x - tt) * (x - tt);
      } else {
        const double s = 1.0 / (1.0 + std::exp(-x));
        total += -(tt * std::log(s) + (1 - tt) * std::log(1 - s));
      }
    }
  }
  return kind == LossKind::cross_entropy ? total / double(rows) : total / double(rows * cols);
}

inline std::vector<double> loss_grad_naive(LossKind kind, const std::vector<double>& p, const std::vector<double>& t,
                                    const std::vector<int32_t>& y, int64_t rows, int64_t cols) {
  std::vector<double> g(p.size());
  if (kind == LossKind::cross_entropy) {
    const auto sm = softmax_naive(p, rows, cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) g[r * cols + c] = (sm[r * cols + c] - (c == y[r] ? 1.0 : 0.0)) / double(rows);
    return g;
  }
  const double n = double(rows * cols);
  for (size_t i = 0; i < p.size(); ++i)
    g[i] = kind == LossKind::mse ? 2 * (p[i] - t[i]) / n : (1.0 / (1.0 + std::exp(-p[i])) - t[i]) / n;
  return g;
}

// Short forms of the op calls the CPU kernel tests make (host memory).
// loss_mean: the mean loss of a batch of unweighted rows over rows_total rows (loss_forward_backward
// adds the terms to sums; this starts them at 0 and divides by the divisor of rows_total rows).
inline void loss_mean(mc::Backend& be, mc::DType dt, const mc::LossSpec& loss, double* value, void* grad,
                      const void* pred, const void* target, int64_t rows, int64_t cols, int64_t rows_total) {
  mc::LossSums sums;
  const double divisor = mc::loss_divisor(loss.kind, rows_total, cols);
  mc::loss_forward_backward(be, dt, loss, &sums, grad, pred, target, nullptr, rows, cols, divisor);
  *value = sums.value / divisor;
}
// dropout with an explicit (seed, offset) instead of a DropoutState.
inline void dropout_at(mc::Backend& be, mc::DType dt, void* y, void* mask, const void* x, int64_t n, double p,
                       uint64_t seed, uint64_t offset) {
  mc::DropoutState st{seed, offset};
  mc::dropout_forward(be, dt, y, mask, x, n, p, st);
}
inline void optim_step(mc::Backend& be, mc::DType dt, const mc::OptimParams& p, void* param, const void* grad,
                       void* state, int64_t n) {
  mc::kernels_of<mc::OptimKernels>(be).step(dt, p, param, grad, state, n);
}

}  // namespace mc_test

using FloatTypes = ::testing::Types<float, double>;
