// test_norm_ops.cpp — the layer_norm and batch_norm ops against naive double references (values,
// input and parameter gradients, running statistics, eval mode), gradient clipping against its
// formula, and frozen parameters in a Network (no gradient written, no backward below the first
// trainable op).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "mlpcore/network.h"
#include "ops/batch_norm.h"
#include "ops/layer_norm.h"
#include "test_nets.h"

using namespace mc;
using namespace mc_test;

namespace {

Backend& cpu() { return backend_for(Device::cpu); }

template <class T>
class Norms : public ::testing::Test {};
TYPED_TEST_SUITE(Norms, FloatTypes);

// Naive LayerNorm of one row and its backward, in double.
struct NaiveLn {
  std::vector<double> y, dx, dw, db;
};
NaiveLn layer_norm_naive(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
                         const std::vector<double>& dy, int64_t rows, int64_t cols, double eps) {
  NaiveLn r{std::vector<double>(x.size()), std::vector<double>(x.size()), std::vector<double>(cols, 0.0),
            std::vector<double>(cols, 0.0)};
  for (int64_t i = 0; i < rows; ++i) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += x[i * cols + c] / double(cols);
    for (int64_t c = 0; c < cols; ++c) var += (x[i * cols + c] - mean) * (x[i * cols + c] - mean) / double(cols);
    const double rstd = 1.0 / std::sqrt(var + eps);
    double s1 = 0, s2 = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double xh = (x[i * cols + c] - mean) * rstd, g = dy[i * cols + c] * w[c];
      r.y[i * cols + c] = xh * w[c] + b[c];
      r.dw[c] += dy[i * cols + c] * xh;
      r.db[c] += dy[i * cols + c];
      s1 += g, s2 += g * xh;
    }
    for (int64_t c = 0; c < cols; ++c) {
      const double xh = (x[i * cols + c] - mean) * rstd;
      r.dx[i * cols + c] = rstd * (dy[i * cols + c] * w[c] - s1 / double(cols) - xh * s2 / double(cols));
    }
  }
  return r;
}

TYPED_TEST(Norms, LayerNormForwardBackward) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const int64_t rows = 7, cols = 37;  // past the eight lanes, with a tail
  auto x = uniform<T>(rows * cols, 1, -2, 3), w = uniform<T>(cols, 2, 0.5, 1.5), b = uniform<T>(cols, 3);
  auto dy = uniform<T>(rows * cols, 4);
  std::vector<T> y(x.size()), stats(2 * rows), dx(x.size()), dw(cols, T(1)), db(cols, T(1));
  layer_norm_forward(cpu(), dt, y.data(), stats.data(), x.data(), w.data(), b.data(), rows, cols, 1e-5);
  layer_norm_backward(cpu(), dt, dx.data(), dw.data(), db.data(), dy.data(), x.data(), stats.data(), w.data(), rows,
                      cols, false, true);  // dweight overwritten, dbias accumulated onto 1
  const auto ref = layer_norm_naive(to_double(x), to_double(w), to_double(b), to_double(dy), rows, cols, 1e-5);
  EXPECT_LE(max_rel_err(y, ref.y), tol<T>());
  EXPECT_LE(max_rel_err(dx, ref.dx), tol<T>() * 10);
  EXPECT_LE(max_rel_err(dw, ref.dw), tol<T>());
  std::vector<double> db1(ref.db);
  for (auto& v : db1) v += 1.0;
  EXPECT_LE(max_rel_err(db, db1), tol<T>());
}

TYPED_TEST(Norms, BatchNormTrainUpdatesRunningStatisticsAndEvalUsesThem) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const int64_t rows = 9, cols = 5;
  auto x = uniform<T>(rows * cols, 5, -1, 4), w = uniform<T>(cols, 6, 0.5, 1.5), b = uniform<T>(cols, 7);
  auto dy = uniform<T>(rows * cols, 8);
  for (double momentum : {0.1, -1.0}) {  // -1: the cumulative average (momentum=None)
    std::vector<T> state(2 * cols + 1, T(0)), y(x.size()), stats(4 * cols), dx(x.size()), dw(cols), db(cols);
    for (int64_t c = 0; c < cols; ++c) state[cols + c] = T(1);
    batch_norm_forward(cpu(), dt, y.data(), stats.data(), state.data(), x.data(), w.data(), b.data(), rows, cols,
                       1e-5, momentum, true);
    batch_norm_backward(cpu(), dt, dx.data(), dw.data(), db.data(), stats.data(), dy.data(), x.data(), w.data(), rows,
                        cols, true, false, false);
    std::vector<double> yr(x.size()), dxr(x.size()), dwr(cols), dbr(cols), rm(cols), rv(cols);
    const double f = momentum >= 0 ? momentum : 1.0;  // count 1: the cumulative average is the batch's
    for (int64_t c = 0; c < cols; ++c) {
      double mean = 0, sq = 0, sdy = 0, sdyx = 0;
      for (int64_t r = 0; r < rows; ++r) mean += double(x[r * cols + c]) / rows;
      for (int64_t r = 0; r < rows; ++r) sq += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
      const double rstd = 1.0 / std::sqrt(sq / rows + 1e-5);
      for (int64_t r = 0; r < rows; ++r) {
        const double xh = (x[r * cols + c] - mean) * rstd;
        yr[r * cols + c] = xh * w[c] + b[c];
        sdy += dy[r * cols + c], sdyx += dy[r * cols + c] * xh;
      }
      for (int64_t r = 0; r < rows; ++r) {
        const double xh = (x[r * cols + c] - mean) * rstd;
        dxr[r * cols + c] = w[c] * rstd * (dy[r * cols + c] - sdy / rows - xh * sdyx / rows);
      }
      dwr[c] = sdyx, dbr[c] = sdy;
      rm[c] = f * mean, rv[c] = f * sq / (rows - 1) + (1 - f) * 1.0;
    }
    EXPECT_LE(max_rel_err(y, yr), tol<T>());
    EXPECT_LE(max_rel_err(dx, dxr), tol<T>() * 10);
    EXPECT_LE(max_rel_err(dw, dwr), tol<T>());
    EXPECT_LE(max_rel_err(db, dbr), tol<T>());
    EXPECT_LE(max_rel_err(std::vector<T>(state.begin(), state.begin() + cols), rm), tol<T>());
    EXPECT_LE(max_rel_err(std::vector<T>(state.begin() + cols, state.begin() + 2 * cols), rv), tol<T>());
    EXPECT_EQ(state[2 * cols], T(1));
    // eval mode: the running statistics, element-wise
    batch_norm_forward(cpu(), dt, y.data(), stats.data(), state.data(), x.data(), w.data(), b.data(), rows, cols,
                       1e-5, momentum, false);
    for (int64_t i = 0; i < rows * cols; ++i) {
      const int64_t c = i % cols;
      yr[i] = (x[i] - double(state[c])) / std::sqrt(double(state[cols + c]) + 1e-5) * w[c] + b[c];
    }
    EXPECT_LE(max_rel_err(y, yr), tol<T>());
    EXPECT_EQ(state[2 * cols], T(1));  // eval mode counts nothing
  }
}

TEST(Norms, BatchNormRefusesOneRowInTrainMode) {
  auto arena = std::make_shared<ParamArena>(Device::cpu, DType::f64, 64);
  OpSpec lin;
  lin.kind = OpKind::linear, lin.in_features = 3, lin.out_features = 4, lin.weight_off = 0, lin.bias_off = 16;
  OpSpec bn;
  bn.kind = OpKind::batch_norm, bn.in_features = 4, bn.attrs = {1e-5, 0.1}, bn.state_off = 32;
  Network net(arena, {lin, bn}, 3);
  std::vector<double> x(3, 1.0);
  EXPECT_THROW(net.forward(x.data(), 1), ValueError);
  net.set_training(false);
  EXPECT_NO_THROW(net.forward(x.data(), 1));
  OpSpec bad = bn;
  bad.attrs = {1e-5};
  EXPECT_THROW(Network(arena, {lin, bad}, 3), ValueError);
  bad = bn;
  bad.in_features = 5;
  EXPECT_THROW(Network(arena, {lin, bad}, 3), ValueError);
}

TEST(Clip, NormAndScaleOverActiveSegmentsOnly) {
  std::vector<double> p(40, 0.0), g = uniform<double>(40, 9, -3, 3);
  const std::vector<double> g0 = g;
  std::vector<OptimSegment> segs{{p.data(), g.data(), 10, true}, {p.data() + 10, g.data() + 10, 20, false},
                                 {p.data() + 30, g.data() + 30, 10, true}};
  double want = 0;
  for (int i : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39}) want += g0[i] * g0[i];
  want = std::sqrt(want);
  double sum = 0;
  EXPECT_NEAR(clip_grad_norm(cpu(), DType::f64, segs, 1.0, &sum), want, 1e-12 * want);
  const double coef = 1.0 / (want + 1e-6);
  for (int i = 0; i < 40; ++i) EXPECT_DOUBLE_EQ(g[i], (i >= 10 && i < 30) ? g0[i] : g0[i] * coef) << i;
  // a max_norm above the norm leaves everything as it was
  std::vector<double> h = g0;
  std::vector<OptimSegment> all{{p.data(), h.data(), 40, true}};
  clip_grad_norm(cpu(), DType::f64, all, 1e9, &sum);
  EXPECT_EQ(h, g0);
}

TEST(Frozen, NetworkWritesNoGradientOfFrozenParametersAndSkipsTheirBackward) {
  Mlp m = make_mlp(DType::f64, {4, 6, 5, 3}, Activation{ActKind::tanh, 0}, 3);
  m.ops[0].weight_grad = m.ops[0].bias_grad = false;  // first Linear frozen
  m.ops[2].weight_grad = false;                       // second Linear's weight frozen
  Network net(m.arena, m.ops, 4);
  double* g = static_cast<double*>(m.arena->grads());
  std::fill(g, g + m.arena->numel(), 7.0);
  auto x = uniform<double>(8 * 4, 1);
  auto y = labels(8, 3, 2);
  Optimizer opt(Device::cpu, DType::f64, sgd(0.1), {{m.arena->params(), m.arena->grads(), m.arena->numel()}});
  net.train_step(opt, LossKind::cross_entropy, x.data(), y.data(), 8);
  for (int64_t i = 0; i < 4 * 6 + 6; ++i) EXPECT_EQ(g[m.w_off[0] + i], 7.0);  // layer 0: weight and bias
  for (int64_t i = 0; i < 6 * 5; ++i) EXPECT_EQ(g[m.w_off[1] + i], 7.0);
  for (int64_t i = 0; i < 5; ++i) EXPECT_NE(g[m.b_off[1] + i], 7.0);  // the trainable bias got its gradient
}

}  // namespace
