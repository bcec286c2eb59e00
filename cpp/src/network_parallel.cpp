// network_parallel.cpp — the data-parallel step of the Network (train_epoch / train_step with a
// communicator of several ranks; network.h says what the ranks agree on and what they share).
//
// One step on one rank, for rows [row0, row0 + B) of a batch of batch_rows rows:
//   forward (B rows; the ops see them as those rows of the whole batch: dropout's stream)
//   loss sum over the B rows, gradient scaled by 1 / batch_rows (the whole batch's divisor)
//   backward (overwrites this network's gradient spans; B = 0 writes zeros)
//   all-reduce of each arena's gradient span       -> the whole batch's gradient, on every rank
//   all-reduce {loss sum, arg-max hits}            -> the whole batch's loss, on every rank
//   finite check                                   -> the same error on every rank, no update
//   optimizer step                                 -> the same update on every rank
// The ranks wait for each other once per step (at the gradient all-reduce; the scalars follow at
// once): a second meeting point after the forward pass would add the ranks' imbalance twice.
// The all-reduce sums are the same bits on every rank (comm.h), and the optimizer is a pure
// function of them, so the weights stay bitwise identical across ranks with no broadcast.
// Host-staged on cuda (download, all-reduce in host memory, upload): enough while the gradient
// transfer is small next to the step; a device-aware MPI could take device pointers instead.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "mlpcore/network.h"

namespace mc {

namespace {

// The rows of a step's shard, as OpCall carries them, for the length of one step.
struct ShardScope {
  int64_t& row0;
  int64_t& rows;
  ShardScope(int64_t& r0, int64_t& r, int64_t first, int64_t batch_rows) : row0(r0), rows(r) {
    row0 = first;
    rows = batch_rows;
  }
  ~ShardScope() {
    row0 = 0;
    rows = -1;
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double Network::step_shard(Optimizer& opt, LossKind loss, const void* x, const void* target, int64_t B, int64_t row0,
                           int64_t batch_rows, bool check_finite, int64_t epoch, int64_t batch, int64_t* correct,
                           Communicator& comm, double* comm_seconds) {
  const int64_t cols = width_.back();
  {
    ShardScope shard(shard_row0_, shard_rows_, row0, batch_rows);
    forward_ops(x, B, training_);
  }
  double* sum_dev = static_cast<double*>(loss_dev_.data());
  be_->fill(DType::f64, sum_dev, 1, 0.0);
  loss_forward_backward(*be_, dt_, loss, sum_dev, grads_.back(), values_.back(), target, nullptr, B, cols, batch_rows);
  double sums[2] = {0, 0};  // loss sum, arg-max hits (exact as a double below 2^53)
  be_->download(&sums[0], sum_dev, sizeof(double));
  if (correct) sums[1] = double(count_correct(*be_, dt_, values_.back(), static_cast<const int32_t*>(target), B, cols));
  backward_ops(B, false, false);
  // The ranks meet once per step: the gradients, then (all ranks already there) the two scalars.
  const auto t0 = std::chrono::steady_clock::now();
  allreduce_grads(comm);
  comm.allreduce_sum(sums, 2);
  *comm_seconds += seconds_since(t0);
  const double value = sums[0] / loss_divisor(loss, batch_rows, cols);
  if (check_finite && !std::isfinite(value)) throw_nonfinite(value, epoch, batch);
  if (correct) *correct += int64_t(sums[1]);
  opt.step();
  return value;
}

void Network::allreduce_grads(Communicator& comm) {
  const size_t es = dtype_size(dt_);
  for (size_t a = 0; a < arenas_.size(); ++a) {
    const auto [lo, hi] = grad_span_[a];
    if (hi <= lo) continue;  // no gradient of this network in that arena
    void* g = arenas_[a]->grad_at(lo);
    if (device() == Device::cpu) {
      comm.allreduce_sum(dt_, g, hi - lo);
      continue;
    }
    const size_t bytes = size_t(hi - lo) * es;
    if (grad_host_.size() < bytes) grad_host_.resize(bytes);  // once: the spans do not change
    be_->download(grad_host_.data(), g, bytes);
    comm.allreduce_sum(dt_, grad_host_.data(), hi - lo);
    be_->upload(g, grad_host_.data(), bytes);
  }
}

void Network::check_same_call(Communicator& comm, const char* call, LossKind loss, int64_t n, int64_t batch_size,
                              bool shuffle, uint64_t seed, int64_t epoch, bool check_finite, int64_t batch_begin,
                              int64_t batch_end) {
  comm.check_usable();
  MC_CHECK_VALUE(!has_state_, call,
                 ": data-parallel training of a network whose ops keep running statistics is not supported "
                 "(each rank would keep its own)");
  int64_t params = 0;
  for (const auto& [lo, hi] : grad_span_) params += std::max<int64_t>(hi - lo, 0);
  // Each rank's values and their sum over ranks: a value differs somewhere exactly when its sum is
  // not size x this rank's value on some rank; a second sum tells every rank which ones.
  constexpr int kFields = 15;
  static const char* const names[kFields] = {
      "the number of rows", "batch_size", "shuffle", "seed", "seed", "epoch", "check_finite", "batch_begin",
      "batch_end", "the loss", "the model (parameter count)", "the model (in_features)", "the model (out_features)",
      "the model (dtype)", "the model's train/eval mode"};
  const double mine[kFields] = {double(n), double(batch_size), double(shuffle), double(seed >> 32),
                                double(seed & 0xffffffffu), double(epoch), double(check_finite), double(batch_begin),
                                double(batch_end), double(int(loss)), double(params), double(in_features_),
                                double(width_.back()), double(int(dt_)), double(training_)};
  double sums[kFields], differs[kFields];
  std::copy(mine, mine + kFields, sums);
  comm.allreduce_sum(sums, kFields);
  for (int i = 0; i < kFields; ++i) differs[i] = sums[i] != mine[i] * double(comm.size()) ? 1.0 : 0.0;
  comm.allreduce_sum(differs, kFields);
  std::string which, last;
  for (int i = 0; i < kFields; ++i)
    if (differs[i] > 0 && names[i] != last) {
      which += (which.empty() ? "" : ", ") + std::string(names[i]);
      last = names[i];
    }
  MC_CHECK_VALUE(which.empty(), call, ": the ranks of this data-parallel job were called with different ", which,
                 "; every rank must pass the same data set, batch_size, seed and epochs, and the same model");
}

}  // namespace mc
