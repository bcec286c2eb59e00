// network_parallel.cpp — the data-parallel step of the Network (train_epoch / train_step with a
// communicator of several ranks; network.h says what the ranks agree on and what they share).
//
// One step on one rank, for rows [row0, row0 + B) of a batch of batch_rows rows:
//   forward (B rows; the ops see them as those rows of the whole batch: dropout's stream)
//   outputs (if asked): this rank's rows at their places in the batch, zeros elsewhere
//   loss sums {Σ w v, Σ w n} over the B rows; the gradient of Σ w v divided by the whole batch's
//     Σ n when it is known in advance (no sample or class weights), else by 1
//   backward (overwrites this network's gradients; B = 0 writes zeros)
//   all-reduce of the gradient spans            -> the whole batch's gradient (of Σ w v, or of L)
//   all-reduce {Σ w v, Σ w n, hits, stop}       -> the whole batch's loss, on every rank
//   weighted: gradient *= 1 / Σ w n             -> the whole batch's gradient of L = Σ w v / Σ w n
//   finite check                                -> the same error on every rank, no update
//   gradient clipping (max_grad_norm)           -> on the reduced gradient: the same on every rank
//   optimizer step                              -> the same update on every rank
// The ranks wait for each other once per step (at the gradient all-reduce; the scalars follow at
// once): a second meeting point after the forward pass (to learn Σ w n before backward) would add
// the ranks' imbalance twice, and the scale afterwards is one pass over the gradients.
// The all-reduce sums are the same bits on every rank (comm.h), and clipping and the optimizer
// are pure functions of them, so the weights stay bitwise identical across ranks with no
// broadcast. The stop flag (Ctrl-C) travels with the scalars, so every rank stops after the same
// batch. Host-staged on cuda (download, all-reduce in host memory, upload): enough while the
// gradient transfer is small next to the step; a device-aware MPI could take device pointers.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "mlpcore/network.h"
#include "mlpcore/optim.h"

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

double Network::step_shard(Optimizer& opt, const LossSpec& loss, const void* x, const void* target, const void* w,
                           int64_t B, int64_t row0, int64_t batch_rows, bool check_finite, int64_t epoch, int64_t batch,
                           int64_t* correct, double max_grad_norm, void* output, Communicator& comm,
                           double* comm_seconds, const std::atomic<bool>* stop, bool* stopped) {
  const int64_t cols = width_.back();
  {
    ShardScope shard(shard_row0_, shard_rows_, row0, batch_rows);
    forward_ops(x, B, training_);
  }
  // output: the whole batch's rows; this rank's outputs at theirs, zeros at the other ranks'.
  if (output) {
    be_->fill(dt_, output, batch_rows * cols, 0.0);
    be_->copy(static_cast<char*>(output) + size_t(row0 * cols) * dtype_size(dt_), values_.back(),
              size_t(B * cols) * dtype_size(dt_));
  }
  const bool plain = loss.plain(w);
  LossSums* sums_dev = static_cast<LossSums*>(loss_dev_.data());
  be_->fill(DType::f64, sums_dev, 2, 0.0);
  loss_forward_backward(*be_, dt_, loss, sums_dev, grads_.back(), values_.back(), target, w, B, cols,
                        plain ? loss_divisor(loss.kind, batch_rows, cols) : 1.0);
  // Σ w v, Σ w n, arg-max hits (exact as a double below 2^53), this rank's stop request
  double sums[4] = {0, 0, 0, 0};
  be_->download(&sums[0], sums_dev, sizeof(LossSums));
  if (correct) sums[2] = double(count_correct(*be_, dt_, values_.back(), static_cast<const int32_t*>(target), B, cols));
  sums[3] = stop && stop->load(std::memory_order_relaxed) ? 1.0 : 0.0;
  backward_ops(B, false, false);
  // The ranks meet once per step: the gradients, then (all ranks already there) the scalars.
  const auto t0 = std::chrono::steady_clock::now();
  allreduce_grads(comm);
  comm.allreduce_sum(sums, 4);
  *comm_seconds += seconds_since(t0);
  const double value = loss_mean(LossSums{sums[0], sums[1]});
  // The whole batch's divisor Σ w n is known now (a batch whose total is 0 has gradient 0, loss.h).
  if (!plain) scale_grads(sums[1] != 0 ? 1.0 / sums[1] : 0.0);
  if (check_finite) check_loss_finite(value, epoch, batch);
  if (correct) *correct += int64_t(sums[2]);
  *stopped = sums[3] > 0;
  if (max_grad_norm >= 0) opt.clip_grad_norm(max_grad_norm);
  opt.step();
  return value;
}

void Network::allreduce_grads(Communicator& comm) {
  const size_t es = dtype_size(dt_);
  for (const GradSpan& s : grad_spans_) {
    if (s.hi <= s.lo) continue;
    void* g = arenas_[s.arena]->grad_at(s.lo);
    if (device() == Device::cpu) {
      comm.allreduce_sum(dt_, g, s.hi - s.lo);
      continue;
    }
    const size_t bytes = size_t(s.hi - s.lo) * es;
    if (grad_host_.size() < bytes) grad_host_.resize(bytes);  // grows to the largest span, once
    be_->download(grad_host_.data(), g, bytes);
    comm.allreduce_sum(dt_, grad_host_.data(), s.hi - s.lo);
    be_->upload(g, grad_host_.data(), bytes);
  }
}

void Network::scale_grads(double s) {
  const OptimKernels& k = kernels_of<OptimKernels>(*be_);
  for (const GradSpan& g : grad_spans_)
    if (g.hi > g.lo) k.scale(dt_, arenas_[g.arena]->grad_at(g.lo), g.hi - g.lo, s);
}

namespace {

// FNV-1a over a host vector's bytes (0 for none): a loss's class_weight / pos_weight, compared
// across ranks.
uint64_t bytes_hash(const void* p, size_t nbytes) {
  if (!p) return 0;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < nbytes; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  return h | 1;  // never 0
}

uint64_t double_bits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

}  // namespace

void Network::check_same_call(Communicator& comm, const char* call, const LossSpec& loss, int64_t n,
                              int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch, bool check_finite,
                              int64_t batch_begin, int64_t batch_end, bool weighted, double max_grad_norm) {
  comm.check_usable();
  // A property of the model, the same on every rank: refused on every rank before any collective.
  MC_CHECK_VALUE(!dp_refused_, call, ": data-parallel training of a network with a ", dp_refused_ ? dp_refused_ : "",
                 " op (BatchNorm1d) is not supported: each rank would normalise its rows with its own batch "
                 "statistics and keep its own running statistics, unlike one process; train it in one process, or "
                 "use LayerNorm");
  int64_t params = 0;
  for (const GradSpan& g : grad_spans_) params += g.hi - g.lo;
  const size_t vec_bytes = size_t(width_.back()) * dtype_size(dt_);
  // Each rank's values (64-bit, sent as two exact 32-bit halves) and their sums over ranks: a
  // value differs somewhere exactly when a half's sum is not size x this rank's half on some
  // rank; a second sum tells every rank which ones.
  struct Field {
    const char* name;
    uint64_t value;
  };
  const Field fields[] = {
      {"the number of rows", uint64_t(n)},
      {"batch_size", uint64_t(batch_size)},
      {"shuffle", uint64_t(shuffle)},
      {"seed", seed},
      {"epoch", uint64_t(epoch)},
      {"check_finite", uint64_t(check_finite)},
      {"batch_begin", uint64_t(batch_begin)},
      {"batch_end", uint64_t(batch_end)},
      {"the loss", uint64_t(int(loss.kind))},
      {"the loss's parameters", double_bits(loss.delta)},
      {"the loss's parameters", double_bits(loss.beta)},
      {"the loss's parameters", double_bits(loss.label_smoothing)},
      {"the loss's parameters", uint64_t(loss.log_input) | uint64_t(loss.full) << 1},
      {"the loss's parameters", double_bits(loss.eps)},
      {"the loss's class weights", bytes_hash(loss.class_weight, vec_bytes)},
      {"the loss's pos_weight", bytes_hash(loss.pos_weight, vec_bytes)},
      {"sample weights (given or not)", uint64_t(weighted)},
      {"max_grad_norm", double_bits(max_grad_norm)},
      {"the model (parameter count)", uint64_t(params)},
      {"the model (in_features)", uint64_t(in_features_)},
      {"the model (out_features)", uint64_t(width_.back())},
      {"the model (dtype)", uint64_t(int(dt_))},
      {"the model's train/eval mode", uint64_t(training_)},
  };
  constexpr int kFields = int(sizeof(fields) / sizeof(fields[0]));
  double mine[2 * kFields], sums[2 * kFields], differs[kFields];
  for (int i = 0; i < kFields; ++i) {
    mine[2 * i] = double(fields[i].value >> 32);
    mine[2 * i + 1] = double(fields[i].value & 0xffffffffu);
  }
  std::copy(mine, mine + 2 * kFields, sums);
  comm.allreduce_sum(sums, 2 * kFields);
  const double p = double(comm.size());
  for (int i = 0; i < kFields; ++i)
    differs[i] = sums[2 * i] != mine[2 * i] * p || sums[2 * i + 1] != mine[2 * i + 1] * p ? 1.0 : 0.0;
  comm.allreduce_sum(differs, kFields);
  std::string which, last;
  for (int i = 0; i < kFields; ++i)
    if (differs[i] > 0 && fields[i].name != last) {
      which += (which.empty() ? "" : ", ") + std::string(fields[i].name);
      last = fields[i].name;
    }
  MC_CHECK_VALUE(which.empty(), call, ": the ranks of this data-parallel job were called with different ", which,
                 "; every rank must pass the same data set, batch_size, seed and epochs, and the same model");
}

}  // namespace mc
