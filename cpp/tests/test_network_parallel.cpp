// test_network_parallel.cpp — the data-parallel step without MPI: P ranks as P threads of this
// process, each with its own network over its own arena, joined by a Communicator that sums in
// rank order (the same bits on every rank, as MPI's all-reduce). Against one network trained
// alone: the weights after shuffled epochs with ragged and empty shards, bitwise equal across
// ranks, also with sample weights, class weights and gradient clipping (the weighted divisor is
// the whole batch's), and the training outputs summed over ranks; a stop request on one rank
// stops every rank after the same batch; frozen gradients are not summed; a non-finite loss,
// ranks called differently and BatchNorm throw on every rank alike. (The MPI communicator itself
// is tested in 2-rank jobs: tests/distributed.)
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cpu/cpu_backend.h"
#include "mlpcore/comm.h"
#include "test_nets.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

// What the ranks share: a barrier and one slot per rank.
struct Group {
  explicit Group(int p) : size(p), slots(static_cast<size_t>(p)) {}
  void barrier() {
    std::unique_lock<std::mutex> lock(m);
    const uint64_t gen = generation;
    if (++arrived == size) {
      arrived = 0, ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen; });
    }
  }
  int size;
  std::vector<std::vector<char>> slots;
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
};

class ThreadComm final : public Communicator {
 public:
  ThreadComm(Group& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size; }
  void allreduce_sum(DType dt, void* buf, int64_t n) override {
    const size_t bytes = size_t(n) * dtype_size(dt);
    g_.slots[size_t(rank_)].assign(static_cast<char*>(buf), static_cast<char*>(buf) + bytes);
    g_.barrier();
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      T* out = static_cast<T*>(buf);
      for (int64_t i = 0; i < n; ++i) {
        T s = reinterpret_cast<const T*>(g_.slots[0].data())[i];
        for (int r = 1; r < g_.size; ++r) s += reinterpret_cast<const T*>(g_.slots[size_t(r)].data())[i];
        out[i] = s;
      }
    });
    g_.barrier();  // nobody overwrites a slot before every rank has read it
  }
  void broadcast(DType dt, void* buf, int64_t n, int root) override {
    const size_t bytes = size_t(n) * dtype_size(dt);
    if (rank_ == root) g_.slots[size_t(root)].assign(static_cast<char*>(buf), static_cast<char*>(buf) + bytes);
    g_.barrier();
    std::memcpy(buf, g_.slots[size_t(root)].data(), bytes);
    g_.barrier();
  }
  void barrier() override { g_.barrier(); }
  void check_usable() const override {}
  std::string describe() const override { return "threads"; }

 private:
  Group& g_;
  int rank_;
};

// Runs f(rank, comm) on p threads; returns each rank's error message ("" when none).
std::vector<std::string> on_ranks(int p, const std::function<void(int, Communicator&)>& f) {
  Group g(p);
  std::vector<std::string> errors(static_cast<size_t>(p));
  std::vector<std::thread> threads;
  for (int r = 0; r < p; ++r)
    threads.emplace_back([&, r] {
      ThreadComm comm(g, r);
      try {
        f(r, comm);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

template <class T>
class NetworkParallel : public ::testing::Test {
 protected:
  void SetUp() override { cpu_set_num_threads(1); }
};
TYPED_TEST_SUITE(NetworkParallel, FloatTypes);

// 3 shuffled epochs of 61 rows in batches of 20 (the last has 1 row: some ranks run none) with
// SGD + momentum, MSE and cross-entropy, on 2 and 3 ranks, against one network alone.
TYPED_TEST(NetworkParallel, RanksMatchOneProcessAndEachOther) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const std::vector<int64_t> sizes = {5, 9, 3};
  const int64_t n = 61, B = 20;
  const std::vector<T> x = uniform<T>(n * sizes[0], 3, -2.0, 2.0), t = uniform<T>(n * 3, 4, -1.0, 1.0);
  const std::vector<int32_t> y = labels(n, 3, 5);
  const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  for (LossKind loss : {LossKind::mse, LossKind::cross_entropy}) {
    const void* target = loss == LossKind::cross_entropy ? static_cast<const void*>(y.data()) : t.data();
    Mlp one = make_mlp(dt, sizes, {ActKind::tanh, 0}, 7);
    Network alone(one.arena, one.ops, sizes[0]);
    Optimizer opt_alone = make_optimizer(one, sgd(0.1, 0.9));
    std::vector<double> losses;
    for (int e = 0; e < 3; ++e)
      losses.push_back(alone.train_epoch(opt_alone, loss, x.data(), target, n, B, true, 11 + e, e, true).loss);
    const std::vector<T> want = arena_params<T>(*one.arena);
    for (int p : {2, 3}) {
      SCOPED_TRACE(::testing::Message() << loss_name(loss) << ", " << p << " ranks");
      std::vector<std::vector<T>> got(static_cast<size_t>(p));
      std::vector<std::vector<double>> got_losses(static_cast<size_t>(p));
      const auto errors = on_ranks(p, [&](int r, Communicator& comm) {
        Mlp m = make_mlp(dt, sizes, {ActKind::tanh, 0}, 7);
        Network net(m.arena, m.ops, sizes[0]);
        Optimizer opt = make_optimizer(m, sgd(0.1, 0.9));
        for (int e = 0; e < 3; ++e) {
          const EpochResult res = net.train_epoch(opt, loss, x.data(), target, n, B, true, 11 + e, e, true, 0, -1,
                                                  nullptr, -1, nullptr, nullptr, &comm);
          EXPECT_EQ(res.rows, n);
          got_losses[size_t(r)].push_back(res.loss);
        }
        got[size_t(r)] = arena_params<T>(*m.arena);
      });
      for (int r = 0; r < p; ++r) {
        EXPECT_EQ(errors[size_t(r)], "");
        EXPECT_EQ(got[size_t(r)], got[0]) << "rank " << r << " differs from rank 0";
        EXPECT_EQ(got_losses[size_t(r)], got_losses[0]);
      }
      EXPECT_LE(max_rel_err(got[0], want), tol);
      for (size_t e = 0; e < losses.size(); ++e) EXPECT_NEAR(got_losses[0][e], losses[e], tol * std::abs(losses[e]));
    }
  }
}

TEST(NetworkParallel, NonFiniteLossOnOneRankStopsEveryRankBeforeAnyUpdate) {
  const std::vector<int64_t> sizes = {4, 6, 2};
  const int64_t n = 8;
  std::vector<double> x = uniform<double>(n * 4, 1, -1.0, 1.0), t = uniform<double>(n * 2, 2, -1.0, 1.0);
  t[7 * 2] = 1e200;  // row 7: rank 1's half of the batch; its square overflows
  std::vector<std::vector<double>> before(2), after(2);
  const auto errors = on_ranks(2, [&](int r, Communicator& comm) {
    Mlp m = make_mlp(DType::f64, sizes, {ActKind::relu, 0}, 3);
    Network net(m.arena, m.ops, sizes[0]);
    Optimizer opt = make_optimizer(m, sgd(0.1));
    before[size_t(r)] = arena_params<double>(*m.arena);
    try {
      net.train_epoch(opt, LossKind::mse, x.data(), t.data(), n, n, false, 0, 0, true, 0, -1, nullptr, -1, nullptr,
                      nullptr, &comm);
    } catch (...) {
      after[size_t(r)] = arena_params<double>(*m.arena);
      throw;
    }
  });
  EXPECT_NE(errors[0].find("non-finite loss"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[0], errors[1]);
  EXPECT_EQ(after[0], before[0]);
  EXPECT_EQ(after[1], before[1]);
}

TEST(NetworkParallel, RanksCalledDifferentlyThrowTheSameValueError) {
  const std::vector<int64_t> sizes = {4, 6, 2};
  const std::vector<double> x = uniform<double>(40 * 4, 1, -1.0, 1.0);
  const std::vector<int32_t> y = labels(40, 2, 2);
  const auto errors = on_ranks(2, [&](int r, Communicator& comm) {
    Mlp m = make_mlp(DType::f64, sizes, {ActKind::relu, 0}, 3);
    Network net(m.arena, m.ops, sizes[0]);
    Optimizer opt = make_optimizer(m, sgd(0.1));
    // rank 1: one row more and another seed
    net.train_epoch(opt, LossKind::cross_entropy, x.data(), y.data(), 39 + r, 8, true, 5 + r, 0, true, 0, -1, nullptr,
                    -1, nullptr, nullptr, &comm);
  });
  EXPECT_NE(errors[0].find("different the number of rows, seed"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[0], errors[1]);
}

// Sample weights (some zero, and a batch whose first rows weigh nothing: a rank's shard with
// Σ w n = 0), class weights and clipping: the loss and gradient are the whole batch's weighted
// mean, so the weights match one process's; the ranks' training outputs sum to one process's.
TYPED_TEST(NetworkParallel, WeightedLossesAndClippingMatchOneProcess) {
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const std::vector<int64_t> sizes = {5, 8, 3};
  const int64_t n = 47, B = 12;
  const std::vector<T> x = uniform<T>(n * sizes[0], 21, -2.0, 2.0), t = uniform<T>(n * 3, 22, -1.0, 1.0);
  const std::vector<int32_t> y = labels(n, 3, 23);
  std::vector<T> w = uniform<T>(n, 24, 0.0, 3.0);
  for (int64_t i = 0; i < n; i += 5) w[size_t(i)] = T(0);
  for (int64_t i = 0; i < 8; ++i) w[size_t(i)] = T(0);  // unshuffled batch 0: rank 0's rows weigh 0
  const std::vector<T> class_weight = {T(0.5), T(2.0), T(1.25)};
  const double tol = std::is_same_v<T, double> ? 1e-10 : 1e-5;
  for (LossKind kind : {LossKind::mse, LossKind::cross_entropy}) {
    LossSpec loss(kind);
    if (kind == LossKind::cross_entropy) loss.class_weight = class_weight.data();
    const void* target = kind == LossKind::cross_entropy ? static_cast<const void*>(y.data()) : t.data();
    for (double clip : {-1.0, 0.05}) {
      Mlp one = make_mlp(dt, sizes, {ActKind::tanh, 0}, 9);
      Network alone(one.arena, one.ops, sizes[0]);
      Optimizer opt_alone = make_optimizer(one, sgd(0.1, 0.9));
      std::vector<T> out_alone(size_t(n * 3));
      std::vector<double> losses;
      for (int e = 0; e < 2; ++e)
        losses.push_back(alone.train_epoch(opt_alone, loss, x.data(), target, n, B, e > 0, 3 + e, e, true, 0, -1,
                                           w.data(), clip, out_alone.data())
                             .loss);
      const std::vector<T> want = arena_params<T>(*one.arena);
      for (int p : {2, 3}) {
        SCOPED_TRACE(::testing::Message() << loss_name(kind) << ", clip " << clip << ", " << p << " ranks");
        std::vector<std::vector<T>> got(static_cast<size_t>(p)), outs(static_cast<size_t>(p));
        std::vector<std::vector<double>> got_losses(static_cast<size_t>(p));
        const auto errors = on_ranks(p, [&](int r, Communicator& comm) {
          Mlp m = make_mlp(dt, sizes, {ActKind::tanh, 0}, 9);
          Network net(m.arena, m.ops, sizes[0]);
          Optimizer opt = make_optimizer(m, sgd(0.1, 0.9));
          outs[size_t(r)].assign(size_t(n * 3), T(-7));
          for (int e = 0; e < 2; ++e)
            got_losses[size_t(r)].push_back(net.train_epoch(opt, loss, x.data(), target, n, B, e > 0, 3 + e, e, true,
                                                            0, -1, w.data(), clip, outs[size_t(r)].data(), nullptr,
                                                            &comm)
                                                .loss);
          got[size_t(r)] = arena_params<T>(*m.arena);
        });
        std::vector<double> out_sum(size_t(n * 3), 0.0);
        for (int r = 0; r < p; ++r) {
          EXPECT_EQ(errors[size_t(r)], "");
          EXPECT_EQ(got[size_t(r)], got[0]) << "rank " << r << " differs from rank 0";
          EXPECT_EQ(got_losses[size_t(r)], got_losses[0]);
          for (size_t i = 0; i < out_sum.size(); ++i) out_sum[i] += double(outs[size_t(r)][i]);
        }
        EXPECT_LE(max_rel_err(got[0], want), tol);
        for (size_t e = 0; e < losses.size(); ++e) EXPECT_NEAR(got_losses[0][e], losses[e], tol * std::abs(losses[e]));
        EXPECT_LE(max_rel_err(out_sum, out_alone), tol);  // the last epoch's outputs, each row from one rank
      }
    }
  }
}

// Ctrl-C on one rank: its stop flag is or-ed over the ranks in the step, so every rank (the others
// pass no flag at all) returns after the same batch, with the same weights.
TEST(NetworkParallel, StopOnOneRankStopsEveryRankAfterTheSameBatch) {
  const std::vector<int64_t> sizes = {4, 6, 2};
  const int64_t n = 40, B = 8;
  const std::vector<double> x = uniform<double>(n * 4, 1, -1.0, 1.0);
  const std::vector<int32_t> y = labels(n, 2, 2);
  std::vector<EpochResult> res(2);
  std::vector<std::vector<double>> got(2);
  const auto errors = on_ranks(2, [&](int r, Communicator& comm) {
    Mlp m = make_mlp(DType::f64, sizes, {ActKind::relu, 0}, 3);
    Network net(m.arena, m.ops, sizes[0]);
    Optimizer opt = make_optimizer(m, sgd(0.1));
    std::atomic<bool> stop{true};
    res[size_t(r)] = net.train_epoch(opt, LossKind::cross_entropy, x.data(), y.data(), n, B, true, 5, 0, true, 1, -1,
                                     nullptr, -1, nullptr, r == 1 ? &stop : nullptr, &comm);
    got[size_t(r)] = arena_params<double>(*m.arena);
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(errors[size_t(r)], "");
    EXPECT_TRUE(res[size_t(r)].interrupted) << "rank " << r;
    EXPECT_EQ(res[size_t(r)].rows, B) << "rank " << r;  // batch 1 only, then the stop
  }
  EXPECT_EQ(got[0], got[1]);
}

// A stop agreed in the last (here ragged) batch is reported too: the caller's agreement on who
// raises must run on every rank, or the rank that was signalled would raise alone after the call.
TEST(NetworkParallel, StopInTheLastBatchIsReportedOnEveryRank) {
  const std::vector<int64_t> sizes = {4, 6, 2};
  const int64_t n = 38, B = 8;  // batches 0..4, the last of 6 rows
  const std::vector<double> x = uniform<double>(n * 4, 1, -1.0, 1.0);
  const std::vector<int32_t> y = labels(n, 2, 2);
  std::vector<EpochResult> res(2);
  const auto errors = on_ranks(2, [&](int r, Communicator& comm) {
    Mlp m = make_mlp(DType::f64, sizes, {ActKind::relu, 0}, 3);
    Network net(m.arena, m.ops, sizes[0]);
    Optimizer opt = make_optimizer(m, sgd(0.1));
    std::atomic<bool> stop{true};
    res[size_t(r)] = net.train_epoch(opt, LossKind::cross_entropy, x.data(), y.data(), n, B, true, 5, 0, true, 4, -1,
                                     nullptr, -1, nullptr, r == 0 ? &stop : nullptr, &comm);
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(errors[size_t(r)], "");
    EXPECT_TRUE(res[size_t(r)].interrupted) << "rank " << r;
    EXPECT_EQ(res[size_t(r)].rows, 6) << "rank " << r;
  }
}

// Frozen parameters (no gradient written) are left out of the all-reduce: their gradient memory
// keeps what it held instead of being summed over the ranks at every step.
TEST(NetworkParallel, FrozenGradientsAreNotSummed) {
  const std::vector<int64_t> sizes = {4, 6, 5, 3};
  const int64_t n = 24;
  const std::vector<double> x = uniform<double>(n * 4, 1);
  const std::vector<int32_t> y = labels(n, 3, 2);
  std::vector<std::vector<double>> grads(2), params(2);
  const auto errors = on_ranks(2, [&](int r, Communicator& comm) {
    Mlp m = make_mlp(DType::f64, sizes, {ActKind::tanh, 0}, 3);
    m.ops[2].weight_grad = false;  // the second Linear's weight, between trainable parameters
    Network net(m.arena, m.ops, sizes[0]);
    double* g = static_cast<double*>(m.arena->grads());
    std::fill(g, g + m.arena->numel(), 7.0);
    Optimizer opt = make_optimizer(m, sgd(0.1));
    net.train_epoch(opt, LossKind::cross_entropy, x.data(), y.data(), n, 8, true, 5, 0, true, 0, -1, nullptr, -1,
                    nullptr, nullptr, &comm);
    grads[size_t(r)] = arena_grads<double>(*m.arena);
    params[size_t(r)] = arena_params<double>(*m.arena);
    for (int64_t i = 0; i < 6 * 5; ++i) EXPECT_EQ(g[m.w_off[1] + i], 7.0);
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  EXPECT_EQ(grads[0], grads[1]);
  EXPECT_EQ(params[0], params[1]);
}

// BatchNorm (with or without running statistics) normalises with its batch's statistics: a rank's
// shard would use its own. Refused on every rank, before any collective.
TEST(NetworkParallel, BatchNormIsRefusedOnEveryRank) {
  for (int64_t state_off : {int64_t(32), int64_t(-1)}) {
    const std::vector<double> x = uniform<double>(16 * 3, 1);
    const std::vector<int32_t> y = labels(16, 4, 2);
    const auto errors = on_ranks(2, [&](int, Communicator& comm) {
      auto arena = std::make_shared<ParamArena>(Device::cpu, DType::f64, 64);
      OpSpec lin;
      lin.kind = OpKind::linear, lin.in_features = 3, lin.out_features = 4, lin.weight_off = 0, lin.bias_off = 12;
      OpSpec bn;
      bn.kind = OpKind::batch_norm, bn.in_features = 4, bn.attrs = {1e-5, 0.1}, bn.state_off = state_off;
      bn.weight_off = 20, bn.bias_off = 24;
      Network net(arena, {lin, bn}, 3);
      Optimizer opt(Device::cpu, DType::f64, sgd(0.1), {{arena->params(), arena->grads(), arena->numel()}});
      net.train_epoch(opt, LossKind::cross_entropy, x.data(), y.data(), 16, 8, true, 5, 0, true, 0, -1, nullptr, -1,
                      nullptr, nullptr, &comm);
    });
    EXPECT_NE(errors[0].find("batch_norm op (BatchNorm1d) is not supported"), std::string::npos) << errors[0];
    EXPECT_EQ(errors[0], errors[1]);
  }
}

}  // namespace
