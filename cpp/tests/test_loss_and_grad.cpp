// test_loss_and_grad.cpp — Network::loss_and_grad, the full-batch entry point of host-driven
// optimizers (scipy's L-BFGS-B): value and flat gradient against naive back-propagation in
// double with the L2 term and both scales, chunked passes against one pass, sample weights
// against repeated rows, and theta written into a float32 network.
#include <gtest/gtest.h>

#include <vector>

#include "mlpcore/network.h"
#include "test_nets.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

// The MLP's parameters as one flat vector: W0, b0, W1, b1, ... (make_mlp's arena layout, no
// padding), weights penalised.
std::vector<FlatSegment> layout_of(const Mlp& m) {
  std::vector<FlatSegment> l;
  for (size_t i = 0; i + 1 < m.sizes.size(); ++i) {
    l.push_back(FlatSegment{0, m.w_off[i], m.sizes[i] * m.sizes[i + 1], true});
    l.push_back(FlatSegment{0, m.b_off[i], m.sizes[i + 1], false});
  }
  return l;
}

}  // namespace

// value = vs * L + alpha / (2 n) ||W||^2 and grad = gs * dL + alpha / n * W (biases unpenalised),
// at a theta different from the arena's values, for each loss.
TEST(LossAndGrad, MatchesNaiveBackpropWithL2AndScales) {
  const int64_t B = 23;
  const std::vector<int64_t> sizes = {5, 7, 3};
  const Activation act{ActKind::tanh, 0};
  const std::vector<double> x = uniform<double>(B * sizes[0], 1, -2.0, 2.0);
  const double alpha = 0.3, vs = 0.5, gs = 2.0;
  for (LossKind loss : {LossKind::mse, LossKind::cross_entropy, LossKind::bce_with_logits}) {
    SCOPED_TRACE(loss_name(loss));
    const std::vector<double> t = uniform<double>(B * 3, 2, loss == LossKind::mse ? -1.0 : 0.0, 1.0);
    const std::vector<int32_t> y = labels(B, 3, 3);
    const void* target = loss == LossKind::cross_entropy ? static_cast<const void*>(y.data()) : t.data();
    Mlp m = make_mlp(DType::f64, sizes, act, 10);
    Network net(m.arena, m.ops, sizes[0]);
    const std::vector<double> theta = uniform<double>(m.arena->numel(), 4, -0.8, 0.8);
    std::vector<double> g(theta.size());
    const double v = net.loss_and_grad(g.data(), theta.data(), layout_of(m), loss, x.data(), target, B, nullptr,
                                       alpha, vs, gs);
    std::vector<double> gref;
    const double vref = naive_step(m, theta, act, loss, x, t, y, B, gref);
    double sq = 0;
    for (size_t l = 0; l + 1 < sizes.size(); ++l)
      for (int64_t i = 0; i < sizes[l] * sizes[l + 1]; ++i) {
        const size_t k = size_t(m.w_off[l] + i);
        sq += theta[k] * theta[k];
        gref[k] = gs * gref[k] + alpha / B * theta[k];
      }
    for (size_t l = 0; l + 1 < sizes.size(); ++l)
      for (int64_t i = 0; i < sizes[l + 1]; ++i) gref[size_t(m.b_off[l] + i)] *= gs;
    EXPECT_NEAR(v, vs * vref + 0.5 * alpha / B * sq, 1e-12);
    EXPECT_LE(max_rel_err(g, gref), 1e-12);
    EXPECT_EQ(arena_params<double>(*m.arena), theta) << "theta is left in the parameters";
  }
}

// Passes of 4 rows (the last one 3) give the one-pass value and gradient, and integer sample
// weights give the result of repeating each row that many times (weight 0: the row is dropped).
TEST(LossAndGrad, ChunksAndSampleWeights) {
  const int64_t B = 19;
  const std::vector<int64_t> sizes = {4, 6, 3};
  const Activation act{ActKind::relu, 0};
  const std::vector<double> x = uniform<double>(B * sizes[0], 5, -2.0, 2.0);
  const std::vector<int32_t> y = labels(B, 3, 6);
  std::vector<double> w(B);
  for (int64_t i = 0; i < B; ++i) w[i] = double(i % 4);  // 0, 1, 2, 3, ...
  std::vector<double> xr;
  std::vector<int32_t> yr;
  for (int64_t i = 0; i < B; ++i)
    for (int k = 0; k < int(w[i]); ++k) {
      xr.insert(xr.end(), x.begin() + i * sizes[0], x.begin() + (i + 1) * sizes[0]);
      yr.push_back(y[i]);
    }
  const int64_t R = int64_t(yr.size());
  Mlp m = make_mlp(DType::f64, sizes, act, 11);
  Network net(m.arena, m.ops, sizes[0]);
  const std::vector<FlatSegment> layout = layout_of(m);
  const std::vector<double> theta = arena_params<double>(*m.arena);
  const LossSpec ce(LossKind::cross_entropy);
  std::vector<double> g1(theta.size()), g4(theta.size()), gw(theta.size()), gr(theta.size());
  const double v1 = net.loss_and_grad(g1.data(), theta.data(), layout, ce, x.data(), y.data(), B);
  const double v4 = net.loss_and_grad(g4.data(), theta.data(), layout, ce, x.data(), y.data(), B, nullptr, 0.0, 1.0,
                                      1.0, /*chunk_rows=*/4);
  EXPECT_NEAR(v4, v1, 1e-14);
  EXPECT_LE(max_rel_err(g4, g1), 1e-14);
  // The L2 divisor is the sum of the weights, as the row count of the repeated data.
  const double vw = net.loss_and_grad(gw.data(), theta.data(), layout, ce, x.data(), y.data(), B, w.data(), 0.7, 1.0,
                                      1.0, 4);
  const double vr = net.loss_and_grad(gr.data(), theta.data(), layout, ce, xr.data(), yr.data(), R, nullptr, 0.7);
  EXPECT_NEAR(vw, vr, 1e-13);
  EXPECT_LE(max_rel_err(gw, gr), 1e-13);
}

// A float32 network: theta (float64) is rounded into its parameters; the gradient comes back in
// float64 and matches the double reference at those rounded parameters to float32 accuracy.
TEST(LossAndGrad, Float32NetworkConvertsAtTheEdge) {
  const int64_t B = 17;
  const std::vector<int64_t> sizes = {3, 5, 2};
  const Activation act{ActKind::sigmoid, 0};
  Mlp m = make_mlp(DType::f32, sizes, act, 12);
  Network net(m.arena, m.ops, sizes[0]);
  const std::vector<double> theta = uniform<double>(m.arena->numel(), 7, -1.0, 1.0);
  const std::vector<float> xf = uniform<float>(B * sizes[0], 8, -1.0, 1.0);
  const std::vector<float> tf = uniform<float>(B * 2, 9, -1.0, 1.0);
  std::vector<double> g(theta.size());
  const double v = net.loss_and_grad(g.data(), theta.data(), layout_of(m), LossKind::mse, xf.data(), tf.data(), B);
  const std::vector<float> p = arena_params<float>(*m.arena);
  std::vector<double> rounded(p.begin(), p.end());
  for (size_t i = 0; i < theta.size(); ++i) EXPECT_EQ(p[i], float(theta[i]));
  std::vector<double> gref;
  const std::vector<double> x(xf.begin(), xf.end()), t(tf.begin(), tf.end());
  const double vref = naive_step(m, rounded, act, LossKind::mse, x, t, {}, B, gref);
  EXPECT_NEAR(v, vref, 1e-5 * vref);
  EXPECT_LE(max_rel_err(g, gref), 1e-5);
}
