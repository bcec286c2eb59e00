// mlpcore/network.h — the compiled path: a Sequential of built-in modules lowered to one C++
// object that runs a whole training step, or a whole epoch of shuffled mini-batches, without
// returning to Python; and the same object run op by op from Python (forward, then backward).
//
// Memory: parameters and gradients live in ParamArenas (arena.h), one or several of one device
// and dtype. The network owns a workspace of values, gradients and what each op keeps for its
// backward, sized for the largest batch it has seen; after that, a step allocates nothing.
//
// Graph: values are numbered 0 (the input) .. ops.size() (the output); op i reads value i and
// writes value i+1; an op with a skip input also reads value `skip`, which enters as an addend
// (its gradient is the op's output gradient). Ops are run through their OpDef (ops.h), never
// switched on by kind here. An op may absorb the next one (linear + activation fuse into one op:
// bias + activation in one pass; activation backward + bias gradient in one pass).
//
// Gradients: train_step / train_epoch overwrite the parameter gradients (the first write of a
// step overwrites, later writes to the same parameter — tied weights — add). backward() adds to
// them, as PyTorch's backward and the module path do.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mlpcore/arena.h"
#include "mlpcore/comm.h"
#include "mlpcore/loss.h"
#include "mlpcore/ops.h"
#include "mlpcore/optim.h"

namespace mc {

// What train_epoch did: the mean loss over the rows it ran, arg-max hits (cross-entropy; each
// batch's forward pass taken before its update, as Keras' running training accuracy; 0 for other
// losses), the number of rows, and whether a stop request ended it before its last batch (then
// every batch it ran was a whole one of batch_size rows: only an epoch's last batch is shorter);
// with a communicator, those of the whole batches (every rank's rows), the same on every rank,
// and the seconds spent in its collectives (waiting for the other ranks included).
struct EpochResult {
  double loss = 0;
  int64_t correct = 0;
  int64_t rows = 0;
  bool interrupted = false;
  double comm_seconds = 0;
};

// Batch-invariant inference (process-wide, off by default): when on, every output row of
// predict, evaluate and eval-mode forward on the CPU is bitwise independent of the other rows of
// its batch, of the batch size and of the thread count (Backend::gemm_fixed_order instead of
// BLAS, which picks GEMV for one row and blocks and threads by shape). Training is unaffected.
// Other backends run their usual GEMM (the mode is CPU-only).
void set_batch_invariant(bool on);
bool get_batch_invariant();

// The training guard: a non-finite batch loss throws std::runtime_error naming the epoch and the
// batch (epoch < 0: a single train_step) and saying that the weights were left as they were. The
// compiled step calls it between the loss and the backward pass; the module path's Python loop
// (Trainer) calls it through _core._check_loss_finite, so both paths stop with the same message.
void check_loss_finite(double value, int64_t epoch, int64_t batch);

// One parameter tensor of a flat parameter vector (Network::loss_and_grad): `numel` values at
// element `offset` of the network's arena number `arena`. `penalised`: the L2 term covers it
// (scikit-learn's MLPs penalise weights, not biases).
struct FlatSegment {
  int64_t arena = 0, offset = 0, numel = 0;
  bool penalised = false;
};

class Network {
 public:
  Network(std::vector<std::shared_ptr<ParamArena>> arenas, std::vector<OpSpec> ops, int64_t in_features);
  Network(std::shared_ptr<ParamArena> arena, std::vector<OpSpec> ops, int64_t in_features)
      : Network(std::vector<std::shared_ptr<ParamArena>>{std::move(arena)}, std::move(ops), in_features) {}

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return width_.back(); }
  int64_t num_ops() const { return int64_t(nodes_.size()); }  // after fusion
  const std::vector<std::shared_ptr<ParamArena>>& arenas() const { return arenas_; }
  Device device() const { return arenas_[0]->device(); }
  DType dtype() const { return dt_; }
  void set_training(bool t) { training_ = t; }
  bool training() const { return training_; }

  // Forward of a batch x (B, in) in device memory, in the current train/eval mode; returns a view
  // of the output (B, out) inside the workspace, valid until the next call (single-threaded use).
  // Keeps what backward() needs; x must stay valid until then.
  Tensor forward(const void* x, int64_t B);
  // As forward, with the output (B, out) copied to host memory under the network's lock: safe
  // when several threads share the network.
  void forward_to_host(void* host_out, const void* x, int64_t B);
  // Backward of the last forward: dy (B, out) and dx (B, in) in host memory; adds to the parameter
  // gradients. Throws std::runtime_error, naming why, when no forward ran or another call used the
  // workspace since (predict, evaluate, train_step, train_epoch).
  void backward_to_host(void* host_dx, const void* host_dy, int64_t B);
  // Rows of the last forward that backward can follow (0 when it cannot).
  int64_t backward_rows() const { return stale_ ? 0 : fwd_rows_; }

  // Losses: a LossSpec (loss.h; a bare LossKind converts to one with PyTorch's defaults) whose
  // class_weight / pos_weight vectors, if any, are out_features() values of the network's dtype in
  // HOST memory: each call copies them to the device (on cuda) into a buffer made with the
  // network, so no call allocates for them. Sample weights (`sample_weight`, n or B values of the
  // network's dtype, device memory, or null) make each batch's loss the weighted mean of loss.h;
  // they are gathered with the rows.
  //
  // Full step on one batch already in device memory: forward, loss, backward, gradient clipping
  // (max_grad_norm >= 0: Optimizer::clip_grad_norm), optimizer step. Returns the loss.
  // `check_finite`: a non-finite loss throws std::runtime_error before the backward pass, so the
  // weights are left as they were. `comm`: data parallel, as train_epoch (every rank passes the
  // same batch and runs its share of the rows).
  double train_step(Optimizer& opt, const LossSpec& loss, const void* x, const void* target, int64_t B,
                    bool check_finite = false, const void* sample_weight = nullptr, double max_grad_norm = -1,
                    Communicator* comm = nullptr);
  // One epoch over n rows held by the caller (device memory), in mini-batches of batch_size rows
  // (the last one smaller; batch_size > n gives one batch of all n rows); rows are gathered
  // through permutation_fill(n, seed) when shuffle is set. `check_finite` stops with an error
  // naming epoch and batch before that batch's backward pass (the weights are those left by the
  // previous batch). [batch_begin, batch_end) runs only those batches of the epoch (batch_end < 0:
  // to the end), so a caller can split one epoch into several calls (progress bars, per-batch
  // callbacks) and get exactly the numbers of one call. EpochResult.loss is the mean of the batch
  // losses weighted by their row counts (with sample weights too: scikit-learn's epoch loss).
  // max_grad_norm >= 0 clips each step's gradients (as train_step). outputs (n, out_features),
  // device memory, or null: each batch's training-mode output (before its update) is copied there
  // in the order the rows were visited (row k of the epoch's order at row k), for running metrics
  // without a second forward pass. `stop` (may be null) is polled between batches: once it reads
  // true the call returns after the step in progress, with EpochResult::interrupted set (Ctrl-C;
  // the caller continues at the next batch or gives up).
  //
  // Data parallel (`comm` of more than one rank, comm.h): every rank passes the same X, Y, n,
  // sample weights and arguments (checked: ValueError on every rank otherwise) and batch_size is
  // the global batch. Each rank gathers only its rows [rows*r/p, rows*(r+1)/p) of every batch (of
  // the same permutation) and runs them. Per step, between backward and the finite check: one
  // all-reduce of the gradients this network writes (one call per contiguous span; host-staged on
  // cuda), and one of the loss sums {Σ w v, Σ w n}, the arg-max hits and the stop flag. The loss is
  // then the whole batch's (Σ w v / Σ w n over every rank's rows), and so is the gradient: without
  // sample or class weights each rank divides by the whole batch's Σ n, known in advance; with
  // them it backpropagates the gradient of Σ w v and the reduced gradient is scaled by 1 / Σ w n
  // of the whole batch. The finite check then throws on every rank alike, before any update (the
  // gradients are those of the failed batch); clipping (max_grad_norm) acts on the reduced
  // gradient; every rank takes the same optimizer step, so the weights stay bitwise identical
  // across ranks, and equal to one process's up to the rounding of the split sums. `stop` is
  // or-ed over the ranks at each step, so every rank ends the call after the same batch.
  // `outputs` receives this rank's rows at their places in the epoch's order and zeros at the
  // other ranks' (summed over the ranks: one process's outputs). Dropout draws
  // the masks of the whole batch's rows. A network with an op that uses batch statistics or keeps
  // non-parameter state (BatchNorm1d: each rank would normalise with its own rows' statistics and
  // keep its own running statistics) is refused, on every rank alike. comm of one rank (or
  // null): the single-process path.
  EpochResult train_epoch(Optimizer& opt, const LossSpec& loss, const void* X, const void* Y, int64_t n,
                          int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch_index, bool check_finite,
                          int64_t batch_begin = 0, int64_t batch_end = -1, const void* sample_weight = nullptr,
                          double max_grad_norm = -1, void* outputs = nullptr, const std::atomic<bool>* stop = nullptr,
                          Communicator* comm = nullptr);
  // Batched inference into out (n, out_features), device memory, in eval mode.
  void predict(void* out, const void* X, int64_t n, int64_t batch_size);
  // Mean loss and number of correct arg-max predictions (labels only; not weighted) over n rows,
  // in eval mode. The mean is over all n rows at once (Σ w v / Σ w n over the whole set), its
  // terms summed row after row across batches, so the batch size does not change it.
  double evaluate(const LossSpec& loss, const void* X, const void* Y, int64_t n, int64_t batch_size,
                  int64_t* correct, const void* sample_weight = nullptr);
  // Full-batch loss and gradient at a point given as one flat vector, for optimizers driven from
  // the host (scipy's L-BFGS-B). theta (host, float64) is the concatenation of `layout`'s segments
  // (distinct parameters of this network, in the caller's order); it is written into the arenas,
  // converted to the network's dtype. Forward + loss + backward then run over all n rows (device
  // memory; in chunks of rows that bound the workspace: the loss terms are summed row after row
  // and the chunks' parameter gradients add up), in the current train/eval mode, and
  //     value = value_scale * L + l2_alpha / (2 s) * sum over penalised segments of theta^2
  //     grad  = grad_scale  * dL/dtheta + l2_alpha / s * theta   (penalised segments only)
  // is returned, grad written to grad_out (host, float64, theta's layout). L is the loss's mean
  // over all n rows (loss.h: Σ w v / Σ w n, weighted by sample_weight (n,) when not null); s is
  // n, or the sum of the sample weights (scikit-learn's L2 divisor). The parameters keep theta (in
  // the network's dtype); their gradients are left holding d(Σ w v)/dtheta. `chunk_rows` > 0 sets
  // the rows per pass (0: the workspace already reserved, or what fits in 64 MiB, >= 256 rows).
  double loss_and_grad(double* grad_out, const double* theta, const std::vector<FlatSegment>& layout,
                       const LossSpec& loss, const void* X, const void* Y, int64_t n,
                       const void* sample_weight = nullptr, double l2_alpha = 0.0, double value_scale = 1.0,
                       double grad_scale = 1.0, int64_t chunk_rows = 0);
  // Largest batch the workspace currently fits (for tests of the allocation policy).
  int64_t capacity() const { return capacity_; }

 private:
  // One op after fusion, with its parameters resolved to pointers.
  struct Node {
    OpSpec spec;
    const OpDef* def;
    int64_t in_w, out_w;
    const void* weight = nullptr;
    const void* bias = nullptr;
    void* dweight = nullptr;
    void* dbias = nullptr;
    void* state = nullptr;
    OpWork work;
    void* saved = nullptr;  // in the workspace
  };

  void reserve(int64_t B);
  // Workspace bytes per batch row (what reserve(B) allocates is about B times this).
  size_t row_bytes() const;
  OpCall call_of(size_t i, int64_t B) const;
  void forward_ops(const void* x, int64_t B, bool training);
  // input_grad: also compute d loss / d input (grads_[0]); accumulate: every gradient write adds.
  void backward_ops(int64_t B, bool input_grad, bool accumulate);
  double step_on(Optimizer& opt, const LossSpec& loss, const void* x, const void* target, const void* w, int64_t B,
                 bool check_finite, int64_t epoch, int64_t batch, int64_t* correct, double max_grad_norm,
                 void* output);
  // `loss` with its vectors in device memory (copied into loss_vecs_ on cuda; as is on the CPU).
  LossSpec loss_on_device(const LossSpec& loss);
  // Data parallel (network_parallel.cpp): this rank's rows [row0, row0 + B) of a batch of
  // batch_rows rows; adds the seconds spent in collectives to *comm_seconds and sets *stopped when
  // some rank's `stop` read true.
  double step_shard(Optimizer& opt, const LossSpec& loss, const void* x, const void* target, const void* w,
                    int64_t B, int64_t row0, int64_t batch_rows, bool check_finite, int64_t epoch, int64_t batch,
                    int64_t* correct, double max_grad_norm, void* output, Communicator& comm, double* comm_seconds,
                    const std::atomic<bool>* stop, bool* stopped);
  void allreduce_grads(Communicator& comm);
  void scale_grads(double s);
  // Throws mc::ValueError, the same on every rank, unless every rank passed the same arguments.
  void check_same_call(Communicator& comm, const char* call, const LossSpec& loss, int64_t n, int64_t batch_size,
                       bool shuffle, uint64_t seed, int64_t epoch, bool check_finite, int64_t batch_begin,
                       int64_t batch_end, bool weighted, double max_grad_norm);
  void check_optimizer(const Optimizer& opt) const;
  void invalidate(const char* why) { stale_ = why; }

  std::vector<std::shared_ptr<ParamArena>> arenas_;
  std::vector<Node> nodes_;
  std::vector<int64_t> width_;  // width_[v]: columns of value v
  size_t first_grad_ = 0;       // the first op with a parameter gradient (nodes_.size(): none)
  Backend* be_;
  DType dt_;
  int64_t in_features_;
  bool training_ = true;
  int64_t capacity_ = 0;
  // Workspace (one buffer carved into pieces).
  Buffer work_;
  std::vector<void*> values_;  // values_[0] is set per call to the input
  std::vector<void*> grads_;   // grads_[v]: d loss / d value v
  void* batch_x_ = nullptr;    // gathered mini-batch rows
  void* batch_y_ = nullptr;
  void* batch_w_ = nullptr;         // gathered sample weights
  Buffer loss_dev_;                 // one LossSums
  Buffer loss_vecs_;                // a loss's class_weight and pos_weight on the device (cuda only)
  Buffer perm_;                     // int64 permutation in device memory
  std::vector<int64_t> perm_host_;  // drawn on the host, uploaded once per epoch
  uint64_t perm_seed_ = 0;          // (seed, n) of the permutation now in perm_ (n = 0: none)
  int64_t perm_n_ = 0;
  std::vector<char> flat_host_;      // loss_and_grad: one segment in the network's dtype, on the host
  std::vector<const void*> written_;  // gradients written so far in this backward (tied weights)
  // backward() state: why it cannot run (null: it can), and the forward it follows.
  const char* stale_ = "no forward() has run yet";
  int64_t fwd_rows_ = 0;
  bool fwd_training_ = false;
  std::mutex mutex_;  // one call at a time: the workspace is shared
  // Data parallel: the rows of a step's shard as the ops see them (OpCall.row0 / batch_rows;
  // shard_rows_ < 0: the call's own rows), the gradients this network writes as contiguous spans
  // of its arenas (frozen parameters, whose gradients it never writes, left out: summing their
  // stale values over the ranks at every step would grow them), the first op that data
  // parallelism refuses (batch statistics or non-parameter state; null: none), and host memory that stages the gradients of a cuda
  // network for the all-reduce (grown once).
  struct GradSpan {
    size_t arena;
    int64_t lo, hi;
  };
  int64_t shard_row0_ = 0;
  int64_t shard_rows_ = -1;
  std::vector<GradSpan> grad_spans_;
  const char* dp_refused_ = nullptr;
  std::vector<char> grad_host_;
};

}  // namespace mc
