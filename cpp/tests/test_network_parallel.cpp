// test_network_parallel.cpp — the data-parallel step without MPI: P ranks as P threads of this
// process, each with its own network over its own arena, joined by a Communicator that sums in
// rank order (the same bits on every rank, as MPI's all-reduce). Against one network trained
// alone: the weights after shuffled epochs with ragged and empty shards, bitwise equal across
// ranks; a non-finite loss and ranks called differently throw on every rank alike. (The MPI
// communicator itself is tested in 2-rank jobs: tests/distributed.)
#include <gtest/gtest.h>

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

}  // namespace
