// test_multi_arena.cpp — a network whose parameters live in several arenas (OpSpec.arena): the
// same numbers as one arena, optimizers over any of its arenas, and the checks on arena indices,
// devices and dtypes.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "test_nets.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

// The MLP of `m` with layer l's parameters copied into arena l (one arena per layer).
struct Split {
  std::vector<std::shared_ptr<ParamArena>> arenas;
  std::vector<OpSpec> ops;
};
Split split_per_layer(const Mlp& m) {
  Split s;
  const size_t es = dtype_size(m.arena->dtype());
  size_t layer = 0;
  for (OpSpec op : m.ops) {
    if (op.kind == OpKind::linear) {
      const int64_t nw = op.in_features * op.out_features, nb = op.out_features;
      auto a = std::make_shared<ParamArena>(Device::cpu, m.arena->dtype(), nw + nb);
      std::memcpy(a->param_at(0), m.arena->param_at(op.weight_off), size_t(nw) * es);
      std::memcpy(a->param_at(nw), m.arena->param_at(op.bias_off), size_t(nb) * es);
      op.arena = int64_t(layer++), op.weight_off = 0, op.bias_off = nw;
      s.arenas.push_back(a);
    }
    s.ops.push_back(op);
  }
  return s;
}

}  // namespace

TEST(MultiArena, SameNumbersAsOneArena) {
  Mlp m = make_mlp(DType::f32, {6, 16, 8, 3}, Activation{ActKind::relu, 0}, 30);
  Split s = split_per_layer(m);
  Network one(m.arena, m.ops, 6), many(s.arenas, s.ops, 6);
  const int64_t n = 40;
  const std::vector<float> X = uniform<float>(n * 6, 31);
  const std::vector<int32_t> y = labels(n, 3, 32);
  std::vector<float> a(n * 3), b(n * 3);
  one.predict(a.data(), X.data(), n, 16);
  many.predict(b.data(), X.data(), n, 16);
  EXPECT_EQ(a, b);

  // An optimizer over every arena (one segment each) trains to the same weights (Adam is
  // element-wise, so segmentation cannot matter).
  OptimParams p;
  p.kind = OptimKind::adam, p.lr = 1e-2;
  Optimizer o1(Device::cpu, DType::f32, p, {{m.arena->params(), m.arena->grads(), m.arena->numel()}});
  std::vector<OptimSegment> segs;
  for (const auto& ar : s.arenas) segs.push_back({ar->params(), ar->grads(), ar->numel()});
  Optimizer o2(Device::cpu, DType::f32, p, segs);
  const EpochResult r1 = one.train_epoch(o1, LossKind::cross_entropy, X.data(), y.data(), n, 8, true, 5, 0, true);
  const EpochResult r2 = many.train_epoch(o2, LossKind::cross_entropy, X.data(), y.data(), n, 8, true, 5, 0, true);
  EXPECT_EQ(r1.loss, r2.loss);
  EXPECT_EQ(r1.correct, r2.correct);
  one.predict(a.data(), X.data(), n, 16);
  many.predict(b.data(), X.data(), n, 16);
  EXPECT_EQ(a, b);

  // An optimizer over one of the arenas (a frozen rest) is accepted; one over memory the network
  // does not read is refused.
  Optimizer part(Device::cpu, DType::f32, p, {{s.arenas[1]->params(), s.arenas[1]->grads(), s.arenas[1]->numel()}});
  EXPECT_NO_THROW(many.train_step(part, LossKind::cross_entropy, X.data(), y.data(), 8));
  EXPECT_THROW(many.train_step(o1, LossKind::cross_entropy, X.data(), y.data(), 8), std::runtime_error);
}

TEST(MultiArena, RefusesBadIndicesDtypesAndOffsets) {
  Mlp m = make_mlp(DType::f32, {3, 4, 2}, Activation{ActKind::tanh, 0}, 40);
  Split s = split_per_layer(m);
  std::vector<OpSpec> ops = s.ops;
  ops.back().arena = 2;  // only arenas 0 and 1
  EXPECT_THROW(Network(s.arenas, ops, 3), ValueError);
  ops = s.ops;
  ops.back().weight_off = 5;  // the weight (2 x 4) then runs past arena 1's end
  EXPECT_THROW(Network(s.arenas, ops, 3), ValueError);
  auto f64 = std::make_shared<ParamArena>(Device::cpu, DType::f64, s.arenas[1]->numel());
  EXPECT_THROW(Network({s.arenas[0], f64}, s.ops, 3), ValueError);
  EXPECT_THROW(Network(std::vector<std::shared_ptr<ParamArena>>{}, s.ops, 3), ValueError);
}
