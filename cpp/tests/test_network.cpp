// test_network.cpp — the compiled Network: one step against naive back-propagation in double,
// fusion (linear + activation in one op) giving bit-identical results to the unfused ops,
// training reducing the loss, train_epoch's shuffling determinism and batching, the workspace
// growth policy, and predict/evaluate against forward.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "mlpcore/network.h"
#include "test_nets.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;


// Two float64 train_steps (forward, loss, backward, plain SGD) for every element-wise activation
// and every loss: the returned loss, every gradient in the arena, and the updated parameters
// against naive back-propagation.
TEST(Network, TrainStepMatchesNaiveBackpropFloat64) {
  const int64_t B = 9;
  const std::vector<int64_t> sizes = {5, 8, 6, 3};
  const std::vector<Activation> acts = {{ActKind::identity, 0}, {ActKind::relu, 0}, {ActKind::leaky_relu, 0.1},
                                        {ActKind::sigmoid, 0},  {ActKind::tanh, 0}, {ActKind::elu, 0.7},
                                        {ActKind::gelu, 0},     {ActKind::silu, 0}};
  const std::vector<double> x = uniform<double>(B * sizes[0], 1, -2.0, 2.0);
  for (const Activation& act : acts)
    for (LossKind loss : {LossKind::mse, LossKind::cross_entropy, LossKind::bce_with_logits}) {
      SCOPED_TRACE(::testing::Message() << act_name(act.kind) << " " << loss_name(loss));
      const std::vector<double> t = uniform<double>(B * 3, 2, loss == LossKind::mse ? -1.0 : 0.0, 1.0);
      const std::vector<int32_t> y = labels(B, 3, 3);
      Mlp m = make_mlp(DType::f64, sizes, act, 10);
      Network net(m.arena, m.ops, sizes[0]);
      EXPECT_EQ(net.num_ops(), 3) << "each linear + activation is fused into one op";
      Optimizer opt = make_optimizer(m, sgd(0.1));
      const void* target = loss == LossKind::cross_entropy ? static_cast<const void*>(y.data()) : t.data();
      // Two steps: the second starts from updated weights and stale gradients in the arena, so
      // gradients must be overwritten, not accumulated.
      for (int step = 0; step < 2; ++step) {
        const std::vector<double> p0 = arena_params<double>(*m.arena);
        std::vector<double> gref;
        const double vref = naive_step(m, p0, act, loss, x, t, y, B, gref);
        const double v = net.train_step(opt, loss, x.data(), target, B);
        EXPECT_NEAR(v, vref, 1e-12 * std::max(1.0, std::abs(vref))) << "step " << step;
        EXPECT_LE(max_rel_err(arena_grads<double>(*m.arena), gref), 1e-12) << "step " << step;
        std::vector<double> pref(p0.size());
        for (size_t i = 0; i < p0.size(); ++i) pref[i] = p0[i] - 0.1 * gref[i];
        EXPECT_LE(max_rel_err(arena_params<double>(*m.arena), pref), 1e-13) << "step " << step;
      }
    }
}

// Fused linear + activation ops (one pass each way) against the same network kept unfused by a
// Dropout(p=0) between them: losses, parameters and outputs must be bit-identical over 5 steps
// of SGD with momentum, for every activation (softmax included) in float32 and float64.
template <class T>
class NetworkTyped : public ::testing::Test {};
TYPED_TEST_SUITE(NetworkTyped, FloatTypes);

TYPED_TEST(NetworkTyped, FusionGivesBitIdenticalResults) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const int64_t B = 16;
  const std::vector<int64_t> sizes = {6, 12, 10, 4};
  const std::vector<T> x = uniform<T>(B * sizes[0], 5, -2.0, 2.0);
  const std::vector<int32_t> y = labels(B, 4, 6);
  for (ActKind k : {ActKind::identity, ActKind::relu, ActKind::leaky_relu, ActKind::sigmoid, ActKind::tanh, ActKind::elu,
                    ActKind::gelu, ActKind::silu, ActKind::softmax}) {
    const Activation act{k, k == ActKind::leaky_relu ? 0.05 : (k == ActKind::elu ? 1.0 : 0.0)};
    SCOPED_TRACE(act_name(k));
    Mlp fused = make_mlp(dt, sizes, act, 20), plain = make_mlp(dt, sizes, act, 20, /*unfused=*/true);
    Network nf(fused.arena, fused.ops, sizes[0]), np(plain.arena, plain.ops, sizes[0]);
    ASSERT_EQ(nf.num_ops(), 3);
    ASSERT_EQ(np.num_ops(), 7);
    Optimizer of = make_optimizer(fused, sgd(0.05, 0.9)), op = make_optimizer(plain, sgd(0.05, 0.9));
    for (int s = 0; s < 5; ++s) {
      const double lf = nf.train_step(of, LossKind::cross_entropy, x.data(), y.data(), B);
      const double lp = np.train_step(op, LossKind::cross_entropy, x.data(), y.data(), B);
      EXPECT_EQ(lf, lp) << "step " << s;
    }
    EXPECT_EQ(arena_params<T>(*fused.arena), arena_params<T>(*plain.arena));
    EXPECT_EQ(arena_grads<T>(*fused.arena), arena_grads<T>(*plain.arena));
    const Tensor of_out = nf.forward(x.data(), B), op_out = np.forward(x.data(), B);
    EXPECT_EQ(0, std::memcmp(of_out.data, op_out.data, of_out.nbytes()));
  }
}

// A small learnable problem (quadrant parity of 2-D points) on a fixed batch: 150 steps of SGD
// with momentum, and of Adam, must cut the loss by at least 5x and fit most of the batch.
TEST(Network, TrainStepReducesLoss) {
  const int64_t B = 64;
  const std::vector<float> x = uniform<float>(B * 2, 7, -1.0, 1.0);
  std::vector<int32_t> y(B);
  for (int64_t b = 0; b < B; ++b) y[b] = (x[2 * b] > 0) != (x[2 * b + 1] > 0);
  for (OptimParams p : {sgd(0.1, 0.9), adam(0.01)}) {
    SCOPED_TRACE(p.kind == OptimKind::sgd ? "sgd momentum" : "adam");
    Mlp m = make_mlp(DType::f32, {2, 16, 16, 2}, Activation{ActKind::relu, 0}, 30);
    Network net(m.arena, m.ops, 2);
    Optimizer opt = make_optimizer(m, p);
    const double first = net.train_step(opt, LossKind::cross_entropy, x.data(), y.data(), B);
    double last = first;
    for (int s = 0; s < 150; ++s) last = net.train_step(opt, LossKind::cross_entropy, x.data(), y.data(), B);
    EXPECT_TRUE(std::isfinite(last));
    EXPECT_LT(last, first / 5) << "first " << first << " last " << last;
    int64_t correct = 0;
    const double eval = net.evaluate(LossKind::cross_entropy, x.data(), y.data(), B, 20, &correct);
    EXPECT_LT(eval, first / 5);
    EXPECT_GE(correct, B * 9 / 10);
  }
}

namespace {
// Runs one epoch from a fresh copy of the same initial network; returns (epoch loss, params).
template <class T>
std::pair<double, std::vector<T>> one_epoch(LossKind loss, const std::vector<T>& X, const void* Y, int64_t n,
                                            int64_t bs, bool shuffle, uint64_t seed) {
  Mlp m = make_mlp(dtype_of<T>(), {3, 8, 2}, Activation{ActKind::tanh, 0}, 40);
  Network net(m.arena, m.ops, 3);
  Optimizer opt = make_optimizer(m, sgd(0.1, 0.9));
  const double v = net.train_epoch(opt, loss, X.data(), Y, n, bs, shuffle, seed, 0, true).loss;
  return {v, arena_params<T>(*m.arena)};
}
}  // namespace

// train_epoch with n = 100 rows and batch 32 (a ragged last batch), for labels (CE) and row
// targets (MSE): the same seed gives bit-identical results, another seed different ones; without
// shuffle it equals train_step over consecutive slices and returns the row-weighted mean loss;
// with one batch holding every row, shuffling only reorders rows, so the step matches the
// unshuffled one to rounding (this checks that targets are gathered with their rows).
TYPED_TEST(NetworkTyped, TrainEpochShuffleDeterminismAndBatching) {
  using T = TypeParam;
  const int64_t n = 100, bs = 32;
  const std::vector<T> X = uniform<T>(n * 3, 50, -2.0, 2.0), Yr = uniform<T>(n * 2, 51);
  const std::vector<int32_t> Yl = labels(n, 2, 52);
  for (LossKind loss : {LossKind::cross_entropy, LossKind::mse}) {
    SCOPED_TRACE(loss_name(loss));
    const void* Y = loss == LossKind::cross_entropy ? static_cast<const void*>(Yl.data()) : Yr.data();
    const auto a = one_epoch<T>(loss, X, Y, n, bs, true, 3), b = one_epoch<T>(loss, X, Y, n, bs, true, 3);
    const auto c = one_epoch<T>(loss, X, Y, n, bs, true, 4), d = one_epoch<T>(loss, X, Y, n, bs, false, 3);
    EXPECT_EQ(a.first, b.first);
    EXPECT_EQ(a.second, b.second);
    EXPECT_NE(a.second, c.second);
    EXPECT_NE(a.second, d.second);

    // Unshuffled epoch == train_step on slices [0,32), [32,64), [64,96), [96,100).
    Mlp m = make_mlp(dtype_of<T>(), {3, 8, 2}, Activation{ActKind::tanh, 0}, 40);
    Network net(m.arena, m.ops, 3);
    Optimizer opt = make_optimizer(m, sgd(0.1, 0.9));
    double total = 0;
    for (int64_t s = 0; s < n; s += bs) {
      const int64_t rows = std::min(bs, n - s);
      const void* yb = loss == LossKind::cross_entropy ? static_cast<const void*>(Yl.data() + s) : Yr.data() + s * 2;
      total += net.train_step(opt, loss, X.data() + s * 3, yb, rows) * double(rows);
    }
    EXPECT_EQ(arena_params<T>(*m.arena), d.second);
    EXPECT_NEAR(d.first, total / n, 1e-12 * std::abs(d.first));

    const auto full_shuffled = one_epoch<T>(loss, X, Y, n, n, true, 9), full = one_epoch<T>(loss, X, Y, n, n, false, 9);
    EXPECT_NEAR(full_shuffled.first, full.first, tol<T>() * std::abs(full.first));
    EXPECT_LE(max_rel_err(full_shuffled.second, full.second), tol<T>());
  }
}

// The workspace grows to the largest batch seen and never shrinks; predict and evaluate in
// batches agree with one forward over every row.
TEST(Network, WorkspaceGrowthPredictEvaluate) {
  Mlp m = make_mlp(DType::f64, {4, 7, 3}, Activation{ActKind::gelu, 0}, 60);
  Network net(m.arena, m.ops, 4);
  const int64_t n = 23;
  const std::vector<double> X = uniform<double>(n * 4, 61);
  const std::vector<int32_t> y = labels(n, 3, 62);
  EXPECT_EQ(net.capacity(), 0);
  net.forward(X.data(), 10);
  EXPECT_EQ(net.capacity(), 10);
  net.forward(X.data(), 5);
  EXPECT_EQ(net.capacity(), 10);
  const Tensor full = net.forward(X.data(), n);
  EXPECT_EQ(net.capacity(), n);
  EXPECT_EQ(full.rows, n);
  EXPECT_EQ(full.cols, 3);
  const std::vector<double> ref(full.ptr<double>(), full.ptr<double>() + n * 3);
  std::vector<double> out(n * 3, 0.0);
  net.predict(out.data(), X.data(), n, 6);
  EXPECT_LE(max_rel_err(out, ref), 1e-14);
  int64_t correct = -1;
  const double v = net.evaluate(LossKind::cross_entropy, X.data(), y.data(), n, 6, &correct);
  EXPECT_NEAR(v, loss_naive(LossKind::cross_entropy, ref, {}, y, n, 3), 1e-13);
  int64_t ref_correct = 0;
  for (int64_t r = 0; r < n; ++r)
    ref_correct += std::max_element(ref.begin() + r * 3, ref.begin() + r * 3 + 3) - (ref.begin() + r * 3) == y[r];
  EXPECT_EQ(correct, ref_correct);
  EXPECT_EQ(net.capacity(), n) << "smaller batches reuse the workspace";
}
