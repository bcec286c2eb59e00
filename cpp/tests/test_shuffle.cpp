// test_shuffle.cpp — the epoch: permutation_fill and epoch_seed (the one splitmix64 of the shuffle;
// epoch_seed's values are those the Python layer computed before it moved here), the
// EpochResult train_epoch returns (mean loss, arg-max hits, rows) for whole and split epochs, and
// the stop flag (Ctrl-C) that ends an epoch between two whole steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "mlpcore/rng.h"
#include "test_nets.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

TEST(Shuffle, PermutationIsADeterministicPermutation) {
  for (int64_t n : {0, 1, 2, 17, 1000}) {
    std::vector<int64_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n)), c(static_cast<size_t>(n));
    permutation_fill(a.data(), n, 42);
    permutation_fill(b.data(), n, 42);
    permutation_fill(c.data(), n, 43);
    EXPECT_EQ(a, b);
    if (n > 10) EXPECT_NE(a, c);
    std::sort(a.begin(), a.end());
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(a[i], i);
  }
}

// Recorded from mlpcore.trainer.epoch_seed as written in Python (seed & (2**64 - 1), epoch as a
// 64-bit pattern).
TEST(Shuffle, EpochSeedKnownValues) {
  EXPECT_EQ(epoch_seed(0, 0), 12035550249420947055ull);
  EXPECT_EQ(epoch_seed(0, 1), 627405149472732430ull);
  EXPECT_EQ(epoch_seed(1, 0), 6791897765849424158ull);
  EXPECT_EQ(epoch_seed(42, 7), 1587005860896957696ull);
  EXPECT_EQ(epoch_seed(18446744073709551615ull, 1000000), 13336330283179696231ull);
  EXPECT_EQ(epoch_seed(uint64_t(-1), 3), 209967342931450243ull);
  EXPECT_EQ(epoch_seed(123456789, uint64_t(-1)), 1297058898398046339ull);
}

// With the weights frozen (lr 0), correct counts the arg-max hits of every row (evaluate's count)
// and rows the rows run; a split epoch's results add up to the whole epoch's.
TEST(Shuffle, EpochResultCountsRowsAndHits) {
  const int64_t n = 30, bs = 8;  // batches of 8, 8, 8, 6
  const std::vector<double> X = uniform<double>(n * 4, 1);
  const std::vector<int32_t> y = labels(n, 3, 2);
  Mlp m = make_mlp(DType::f64, {4, 6, 3}, Activation{ActKind::tanh, 0}, 3);
  Network net(m.arena, m.ops, 4);
  Optimizer frozen = make_optimizer(m, sgd(0.0));
  int64_t hits = 0;
  const double mean = net.evaluate(LossKind::cross_entropy, X.data(), y.data(), n, n, &hits);
  const EpochResult all = net.train_epoch(frozen, LossKind::cross_entropy, X.data(), y.data(), n, bs, true, 9, 0, true);
  EXPECT_EQ(all.rows, n);
  EXPECT_EQ(all.correct, hits);
  EXPECT_NEAR(all.loss, mean, 1e-12);
  const EpochResult a = net.train_epoch(frozen, LossKind::cross_entropy, X.data(), y.data(), n, bs, true, 9, 0, true, 0, 1);
  const EpochResult b = net.train_epoch(frozen, LossKind::cross_entropy, X.data(), y.data(), n, bs, true, 9, 0, true, 1, 4);
  EXPECT_EQ(a.rows, 8);
  EXPECT_EQ(b.rows, 22);
  EXPECT_EQ(a.correct + b.correct, all.correct);
  EXPECT_NEAR((a.loss * 8 + b.loss * 22) / n, all.loss, 1e-12);
  // Other losses count nothing.
  const std::vector<double> t = uniform<double>(n * 3, 4);
  EXPECT_EQ(net.train_epoch(frozen, LossKind::mse, X.data(), t.data(), n, bs, false, 0, 0, true).correct, 0);
}

// A stop request ends the call after the step in progress: one batch when the flag is already set,
// none of its rows counted twice, and continuing from the next batch gives the weights and
// optimizer state of an uninterrupted epoch, bit for bit. An unset flag changes nothing.
TEST(Shuffle, StopFlagEndsTheEpochBetweenWholeSteps) {
  const int64_t n = 30, bs = 8;  // batches of 8, 8, 8, 6
  const std::vector<float> X = uniform<float>(n * 4, 1);
  const std::vector<int32_t> y = labels(n, 3, 2);
  Mlp a = make_mlp(DType::f32, {4, 6, 3}, Activation{ActKind::tanh, 0}, 3);
  Mlp b = make_mlp(DType::f32, {4, 6, 3}, Activation{ActKind::tanh, 0}, 3);
  Network na(a.arena, a.ops, 4), nb(b.arena, b.ops, 4);
  Optimizer oa = make_optimizer(a, sgd(0.1, 0.9)), ob = make_optimizer(b, sgd(0.1, 0.9));
  const EpochResult whole = na.train_epoch(oa, LossKind::cross_entropy, X.data(), y.data(), n, bs, true, 9, 0, true);
  EXPECT_FALSE(whole.interrupted);

  std::atomic<bool> stop{true};
  int64_t begin = 0, rows = 0, calls = 0;
  while (begin < 4) {
    const EpochResult r =
        nb.train_epoch(ob, LossKind::cross_entropy, X.data(), y.data(), n, bs, true, 9, 0, true, begin, -1,
                       /*sample_weight=*/nullptr, /*max_grad_norm=*/-1, /*outputs=*/nullptr, &stop);
    EXPECT_EQ(r.rows, begin < 3 ? bs : 6);  // one whole step per call; the last batch ends the epoch
    EXPECT_EQ(r.interrupted, begin < 3);
    rows += r.rows;
    begin += 1;
    ++calls;
  }
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(rows, n);
  EXPECT_EQ(arena_params<float>(*a.arena), arena_params<float>(*b.arena));
  const float* sa = static_cast<const float*>(oa.state().data());  // CPU: host memory
  const float* sb = static_cast<const float*>(ob.state().data());
  EXPECT_EQ(std::vector<float>(sa, sa + oa.state_numel()), std::vector<float>(sb, sb + ob.state_numel()));
  EXPECT_EQ(oa.params().step, ob.params().step);

  std::atomic<bool> unset{false};
  Mlp c = make_mlp(DType::f32, {4, 6, 3}, Activation{ActKind::tanh, 0}, 3);
  Network nc(c.arena, c.ops, 4);
  Optimizer oc = make_optimizer(c, sgd(0.1, 0.9));
  const EpochResult r =
      nc.train_epoch(oc, LossKind::cross_entropy, X.data(), y.data(), n, bs, true, 9, 0, true, 0, -1,
                     /*sample_weight=*/nullptr, /*max_grad_norm=*/-1, /*outputs=*/nullptr, &unset);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.rows, n);
  EXPECT_EQ(r.loss, whole.loss);
  EXPECT_EQ(arena_params<float>(*a.arena), arena_params<float>(*c.arena));
}
