// test_network_backward.cpp — the module path through the compiled network: Network::forward keeps
// what backward needs, backward_to_host adds the parameter gradients and returns d loss / d x
// (against naive back-propagation in double), tied weights, dropout masks of the forward, eval
// mode, and the errors of a backward that has nothing (valid) to follow.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "test_nets.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

// d(mean loss)/d(out) for the output of a forward, computed by the loss op.
std::vector<double> loss_grad(LossKind loss, const Tensor& out, const void* target) {
  std::vector<double> g(size_t(out.numel()));
  LossSums sums;
  loss_forward_backward(backend_for(Device::cpu), DType::f64, loss, &sums, g.data(), out.data, target, nullptr,
                        out.rows, out.cols);
  return g;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// forward + backward from the loss gradient: every parameter gradient and dx against naive
// back-propagation; a second backward adds the same gradients again (accumulation).
TEST(NetworkBackward, MatchesNaiveBackpropAndAccumulates) {
  const int64_t B = 7;
  const std::vector<int64_t> sizes = {5, 8, 6, 3};
  const std::vector<double> x = uniform<double>(B * sizes[0], 1, -2.0, 2.0);
  const std::vector<int32_t> y = labels(B, 3, 3);
  for (const Activation& act : {Activation{ActKind::tanh, 0}, Activation{ActKind::gelu, 0},
                                Activation{ActKind::leaky_relu, 0.1}}) {
    SCOPED_TRACE(act_name(act.kind));
    Mlp m = make_mlp(DType::f64, sizes, act, 10);
    Network net(m.arena, m.ops, sizes[0]);
    m.arena->zero_grad();
    const Tensor out = net.forward(x.data(), B);
    const std::vector<double> dy = loss_grad(LossKind::cross_entropy, out, y.data());
    std::vector<double> dx(B * sizes[0]);
    net.backward_to_host(dx.data(), dy.data(), B);

    std::vector<double> want_grads, want_dx;
    naive_step(m, arena_params<double>(*m.arena), act, LossKind::cross_entropy, x, {}, y, B, want_grads, &want_dx);
    EXPECT_LE(max_rel_err(arena_grads<double>(*m.arena), want_grads), 1e-12);
    EXPECT_LE(max_rel_err(dx, want_dx), 1e-12);

    std::vector<double> dx2(dx.size());
    net.backward_to_host(dx2.data(), dy.data(), B);
    EXPECT_EQ(dx2, dx);
    std::vector<double> twice = want_grads;
    for (double& g : twice) g *= 2;
    EXPECT_LE(max_rel_err(arena_grads<double>(*m.arena), twice), 1e-12);
  }
}

// An autoencoder whose decoder reads the encoder's weight transposed: backward adds both uses,
// as a compiled train_step (first use overwrites, second adds) does.
TEST(NetworkBackward, TiedWeightsAddBothUses) {
  auto arena = std::make_shared<ParamArena>(Device::cpu, DType::f64, 4 * 3 + 3 + 4);
  init_fill(DType::f64, arena->params(), arena->numel(), InitKind::he_uniform, 4, 3, 5);
  OpSpec enc, act, dec;
  enc.kind = OpKind::linear, enc.in_features = 4, enc.out_features = 3, enc.weight_off = 0, enc.bias_off = 12;
  act.kind = OpKind::activation, act.act = {ActKind::tanh, 0};
  dec.kind = OpKind::linear, dec.in_features = 3, dec.out_features = 4, dec.weight_off = 0, dec.bias_off = 15;
  dec.transposed = true;
  Network net(arena, {enc, act, dec}, 4);
  const int64_t B = 6;
  const std::vector<double> x = uniform<double>(B * 4, 7), t = uniform<double>(B * 4, 8);
  OptimParams none;
  none.lr = 0.0;  // the step leaves the weights as they are
  Optimizer opt(Device::cpu, DType::f64, none, {{arena->params(), arena->grads(), arena->numel()}});
  net.train_step(opt, LossKind::mse, x.data(), t.data(), B);
  const std::vector<double> step_grads = arena_grads<double>(*arena);

  arena->zero_grad();
  const Tensor out = net.forward(x.data(), B);
  const std::vector<double> dy = loss_grad(LossKind::mse, out, t.data());
  std::vector<double> dx(B * 4);
  net.backward_to_host(dx.data(), dy.data(), B);
  EXPECT_LE(max_rel_err(arena_grads<double>(*arena), step_grads), 1e-14);
}

// Backward multiplies by the masks of the forward it follows; a second forward draws new masks
// and backward then follows it.
TEST(NetworkBackward, DropoutUsesTheMasksOfItsForward) {
  auto arena = std::make_shared<ParamArena>(Device::cpu, DType::f32, 1);
  OpSpec d;
  d.kind = OpKind::dropout, d.p = 0.5, d.dropout = std::make_shared<DropoutState>();
  d.dropout->seed = 11;
  Network net(arena, {d}, 64);
  const int64_t B = 4;
  const std::vector<float> ones(B * 64, 1.0f);
  std::vector<float> y1(ones.size()), y2(ones.size()), dx(ones.size());
  net.forward_to_host(y1.data(), ones.data(), B);  // y = mask
  net.forward_to_host(y2.data(), ones.data(), B);
  EXPECT_NE(y1, y2) << "each forward draws new masks";
  net.backward_to_host(dx.data(), ones.data(), B);
  EXPECT_EQ(dx, y2);
  EXPECT_EQ(d.dropout->counter, uint64_t(2 * B * 64));

  net.set_training(false);  // eval mode: identity, backward too
  net.forward_to_host(y1.data(), ones.data(), B);
  net.backward_to_host(dx.data(), ones.data(), B);
  EXPECT_EQ(y1, ones);
  EXPECT_EQ(dx, ones);
}

// Every other use of the workspace makes backward refuse, naming what ran; so does a backward
// before any forward or with the wrong number of rows.
TEST(NetworkBackward, RefusesWhenTheWorkspaceWasReused) {
  Mlp m = make_mlp(DType::f64, {3, 5, 2}, Activation{ActKind::relu, 0}, 20);
  Network net(m.arena, m.ops, 3);
  Optimizer opt = make_optimizer(m, sgd(0.01));
  const int64_t B = 4;
  const std::vector<double> x = uniform<double>(B * 3, 21), dy = uniform<double>(B * 2, 22);
  const std::vector<int32_t> y = labels(B, 2, 23);
  std::vector<double> dx(B * 3), out(B * 2);
  int64_t correct = 0;
  EXPECT_NE(error_of([&] { net.backward_to_host(dx.data(), dy.data(), B); }).find("no forward"), std::string::npos);
  const std::pair<const char*, std::function<void()>> others[] = {
      {"predict", [&] { net.predict(out.data(), x.data(), B, 2); }},
      {"evaluate", [&] { net.evaluate(LossKind::cross_entropy, x.data(), y.data(), B, 2, &correct); }},
      {"train_step", [&] { net.train_step(opt, LossKind::cross_entropy, x.data(), y.data(), B); }},
      {"train_epoch", [&] { net.train_epoch(opt, LossKind::cross_entropy, x.data(), y.data(), B, 2, true, 1, 0, true); }},
  };
  for (const auto& [name, call] : others) {
    net.forward(x.data(), B);
    call();
    const std::string e = error_of([&] { net.backward_to_host(dx.data(), dy.data(), B); });
    EXPECT_NE(e.find(name), std::string::npos) << name << ": " << e;
  }
  net.forward(x.data(), B);
  EXPECT_THROW(net.backward_to_host(dx.data(), dy.data(), B - 1), ValueError);
  EXPECT_NO_THROW(net.backward_to_host(dx.data(), dy.data(), B));
}
