// mlpcore/network.h — the compiled path: a Sequential of built-in modules lowered to one C++
// object that runs a whole training step, or a whole epoch of shuffled mini-batches, without
// returning to Python.
//
// Memory: a ParamArena holds every parameter in one flat buffer and every gradient in a second
// one of the same layout (Python's Parameter.data / .grad are views into them). The network owns
// a workspace of activations and gradients sized for the largest batch it has seen; after that,
// a step allocates nothing.
//
// Graph: values are numbered 0 (the input) .. ops.size() (the output); op i reads value i and
// writes value i+1. A residual add also reads value `skip`. A linear followed by an activation
// is fused into one op (bias + activation in one pass; activation backward + bias gradient in one
// pass).
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mlpcore/backend.h"
#include "mlpcore/layers.h"
#include "mlpcore/optim.h"

namespace mc {

class ParamArena {
 public:
  ParamArena(Device device, DType dtype, int64_t numel);
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return numel_; }
  void* params() const { return params_.data(); }
  void* grads() const { return grads_.data(); }
  void* param_at(int64_t off) const { return static_cast<char*>(params_.data()) + off * dtype_size(dtype_); }
  void* grad_at(int64_t off) const { return static_cast<char*>(grads_.data()) + off * dtype_size(dtype_); }
  void zero_grad();

 private:
  Device device_;
  DType dtype_;
  int64_t numel_;
  Buffer params_, grads_;
};

enum class OpKind : int { linear = 0, activation = 1, dropout = 2, maxout = 3, residual_add = 4 };

struct OpSpec {
  OpKind kind = OpKind::linear;
  int64_t in_features = 0, out_features = 0;  // linear; maxout: out_features = units (before x pieces)
  bool has_bias = true;
  bool transposed = false;           // linear with a tied, transposed weight
  int64_t weight_off = -1, bias_off = -1;  // element offsets into the arena
  Activation act;                    // activation op, or the activation fused into a linear
  double p = 0.0;                    // dropout
  std::shared_ptr<DropoutState> dropout;
  int64_t pieces = 1;                // maxout
  int64_t skip = -1;                 // residual_add: the value added to the input
};

// The shuffling order of train_epoch: perm (n,) = a permutation of 0..n-1, a pure function of
// (n, seed) (Fisher-Yates over splitmix64), identical on every platform and backend.
void permutation_fill(int64_t* perm, int64_t n, uint64_t seed);

class Network {
 public:
  Network(std::shared_ptr<ParamArena> arena, std::vector<OpSpec> ops, int64_t in_features);

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return width_.back(); }
  const std::vector<OpSpec>& ops() const { return ops_; }
  std::shared_ptr<ParamArena> arena() const { return arena_; }
  void set_training(bool t) { training_ = t; }
  bool training() const { return training_; }

  // Forward of a batch x (B, in) in device memory; returns a view of the output (B, out) inside
  // the workspace, valid until the next call from any thread (single-threaded C++ use).
  Tensor forward(const void* x, int64_t B);
  // Forward of x (B, in) in device memory, output (B, out) copied to host memory under the
  // network's lock: safe when several threads share the network.
  void forward_to_host(void* host_out, const void* x, int64_t B);
  // Full step on one batch already in device memory: forward, loss, backward, optimizer step.
  // Returns the loss (downloaded to the host). `check_finite`: a non-finite loss throws
  // std::runtime_error before the backward pass, so the weights are left as they were.
  double train_step(Optimizer& opt, LossKind loss, const void* x, const void* target, int64_t B,
                    bool check_finite = false);
  // One epoch over n rows held by the caller (device memory), in mini-batches of batch_size rows
  // (the last one smaller; batch_size > n gives one batch of all n rows); rows are gathered
  // through a permutation drawn from `seed` when shuffle is set. Returns the mean of the batch
  // losses weighted by batch size. `check_finite` stops with an error naming epoch and batch
  // (std::runtime_error, RuntimeError in Python) before that batch's backward pass: the weights
  // are those left by the previous batch.
  // [batch_begin, batch_end) runs only those batches of the epoch (batch_end < 0: to the end),
  // so a caller can split one epoch into several calls (progress bars, per-batch callbacks) and
  // get exactly the numbers of one call; the mean is then over the rows of those batches.
  double train_epoch(Optimizer& opt, LossKind loss, const void* X, const void* Y, int64_t n,
                     int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch_index,
                     bool check_finite, int64_t batch_begin = 0, int64_t batch_end = -1);
  // Cross-entropy only: correct arg-max predictions counted by the last train_epoch call, each
  // batch's forward pass taken before its update (Keras' running training accuracy; costs one
  // arg-max pass over the batch output).
  int64_t last_correct() const { return last_correct_; }
  // Batched inference into out (n, out_features), device memory.
  void predict(void* out, const void* X, int64_t n, int64_t batch_size);
  // Mean loss and number of correct arg-max predictions (classification) over n rows.
  double evaluate(LossKind loss, const void* X, const void* Y, int64_t n, int64_t batch_size,
                  int64_t* correct);
  // Largest batch the workspace currently fits (for tests of the allocation policy).
  int64_t capacity() const { return capacity_; }

 private:
  void reserve(int64_t B);
  void forward_ops(const void* x, int64_t B);
  void backward_ops(int64_t B);
  double step_on(Optimizer& opt, LossKind loss, const void* x, const void* target, int64_t B, bool check_finite,
                 int64_t epoch, int64_t batch, int64_t* correct = nullptr);
  void check_optimizer(const Optimizer& opt) const;

  std::shared_ptr<ParamArena> arena_;
  std::vector<OpSpec> ops_;
  std::vector<int64_t> width_;      // width_[v]: columns of value v
  Backend* be_;
  DType dt_;
  int64_t in_features_;
  bool training_ = true;
  int64_t capacity_ = 0;
  int64_t last_correct_ = 0;
  // Workspace (one buffer carved into pieces): values, pre-activations, gradients, masks.
  Buffer work_;
  std::vector<void*> values_;       // values_[0] is set per call to the input
  std::vector<void*> preact_;       // op i: pre-activation z when its fused activation needs it
  std::vector<void*> grads_;        // grads_[v]: d loss / d value v
  std::vector<void*> masks_;        // dropout masks / maxout argmax
  void* batch_x_ = nullptr;         // gathered mini-batch rows
  void* batch_y_ = nullptr;
  Buffer loss_dev_;                 // one double
  Buffer perm_;                     // int64 permutation in device memory
  std::vector<int64_t> perm_host_;  // drawn on the host, uploaded once per epoch
  uint64_t perm_seed_ = 0;          // (seed, n) of the permutation now in perm_ (n = 0: none)
  int64_t perm_n_ = 0;
  std::vector<int64_t> written_offsets_;  // gradients written so far in this backward (tied weights)
  std::mutex mutex_;                // one call at a time: the workspace is shared
};

}  // namespace mc
