// mlpcore/ops.h — the ops of a network: one forward and one backward free function per op
// (explicit buffers, outputs first, inputs const), and the OpDef through which the Network runs
// every op without knowing which one it is. The module-path bindings call the free functions;
// the Network calls the OpDefs, which call the same free functions.
//
// Shapes: x (B, in), y (B, out). Linear: weight (out, in) as in PyTorch, bias (out,), z (B, out);
// with `transposed` the weight is stored (in, out) and used as its transpose (tied weights of an
// autoencoder's decoder).
//
// Adding an op (e.g. LayerNorm): ops/<name>.h (its kernel struct and free functions) and
// ops/<name>.cpp (its OpDef `<name>_op`, its free functions, its CPU kernels), cuda/<name>.cu
// (its CUDA kernels), and one line in registry.h; CMake picks the files up by their folders, the
// module path runs the op through the generic `_core.op_forward` / `op_backward` bindings, and
// its hyper-parameters travel in OpSpec.attrs, so nothing else changes. The OpDef declares the
// output width, the parameters it reads, the workspace it keeps from forward to backward (per
// batch row and per call: masks, pre-activations, per-row or per-column statistics),
// non-parameter state (running statistics: OpSpec.state_off), and its forward and backward.
// An op without a weight (or bias, or state) has weight_off (bias_off, state_off) = -1.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mlpcore/activations.h"
#include "mlpcore/backend.h"
#include "mlpcore/registry.h"

namespace mc {

enum class OpKind : int {
#define MC_X(name) name,
  MC_FOR_OPS(MC_X)
#undef MC_X
};
#define MC_X(name) +1
constexpr int kNumOps = 0 MC_FOR_OPS(MC_X);
#undef MC_X

// Counter-based RNG state of a Dropout layer, shared by the module path and the compiled network
// so both draw the same masks: the mask of element i in a call is hash(seed, counter + i), and
// each call advances counter by the number of elements.
struct DropoutState {
  uint64_t seed = 0;
  uint64_t counter = 0;
};

// One op of a lowered network, as Python builds it.
struct OpSpec {
  OpKind kind = OpKind::linear;
  int64_t in_features = 0, out_features = 0;  // linear; maxout: out_features = units (before x pieces)
  bool has_bias = true;
  bool transposed = false;                 // linear with a tied, transposed weight
  int64_t arena = 0;                       // which of the network's arenas the offsets index
  int64_t weight_off = -1, bias_off = -1;  // element offsets into that arena's parameters
  int64_t state_off = -1;                  // non-parameter state (running statistics), or -1
  Activation act;                          // activation op, or the activation fused into a linear
  double p = 0.0;                          // dropout
  std::shared_ptr<DropoutState> dropout;
  int64_t pieces = 1;                      // maxout
  int64_t skip = -1;                       // a second input, added to the op's output (residual_add)
  // The op's own hyper-parameters, read by its OpDef (layer_norm: {eps}; batch_norm: {eps,
  // momentum}), so that a new op needs no new field here nor in the bindings.
  std::vector<double> attrs;
  // False: the weight (bias) is frozen: the network computes no gradient for it (no dW GEMM).
  bool weight_grad = true, bias_grad = true;
};

// ---- the network's view of an op ------------------------------------------------------------

// Arena elements an op reads at weight_off, bias_off and state_off (0: none).
struct OpParams {
  int64_t weight = 0, bias = 0, state = 0;
};
// Workspace bytes an op keeps from forward to backward.
struct OpWork {
  int64_t per_row = 0;  // per batch row (a dropout mask row, a pre-activation row, a row statistic)
  int64_t fixed = 0;    // per call (per-column statistics)
};

// One forward or backward call of an op inside a network; every pointer is device memory.
struct OpCall {
  Backend& be;
  DType dt;
  const OpSpec& spec;
  int64_t rows, in_w, out_w;
  const void* x;          // input (rows, in_w)
  const void* skip;       // the second input (rows, out_w), or null
  void* y;                // output (rows, out_w)
  void* saved;            // this op's workspace: OpWork.per_row * rows + OpWork.fixed bytes
  void* state;            // non-parameter state, or null
  const void* weight;     // parameters, or null
  const void* bias;
  bool training;          // train mode (dropout on, running statistics updated)
  bool fixed_order;       // batch-invariant inference: use gemm_fixed_order
  // Data-parallel training: these rows are rows [row0, row0 + rows) of a batch of batch_rows rows
  // split over the ranks (row0 = 0, batch_rows = rows otherwise; batch_rows < 0 means rows, so a
  // caller that does not set it gets the single-process behaviour). An op whose output depends on
  // a row's place in the batch (dropout's RNG stream) draws for those rows of the whole batch and
  // advances its state by the whole batch, so every rank ends with the same state.
  int64_t row0 = 0;
  int64_t batch_rows = -1;
  int64_t whole_rows() const { return batch_rows < 0 ? rows : batch_rows; }
};
struct OpGrads {
  void* dx;               // d loss / d x (rows, in_w), or null when nothing needs it
  void* dy;               // d loss / d y (rows, out_w); the op may overwrite it
  void* dweight;          // parameter gradients, or null (none, or frozen)
  void* dbias;
  bool acc_weight;        // add into the gradient (else overwrite it)
  bool acc_bias;
};

struct OpDef {
  const char* name;
  // Checks the spec of op `index` for an input of width in_w (ValueError naming the op) and
  // returns its output width. index < 0: the op runs alone (the module path's op_forward).
  int64_t (*out_width)(const OpSpec& s, int64_t in_w, int64_t index);
  OpParams (*params)(const OpSpec& s, int64_t in_w, int64_t out_w);
  OpWork (*work)(const OpSpec& s, int64_t in_w, int64_t out_w, DType dt);
  // Optional (null: never): folds `next` into this op (linear absorbs the activation after it, so
  // bias + activation run in one pass). Returns true when it did.
  bool (*absorb)(OpSpec& s, const OpSpec& next);
  void (*forward)(const OpCall& c);
  // The op's part of back-propagation; c is the forward's call (same buffers, saved values).
  void (*backward)(const OpCall& c, const OpGrads& g);
  // True when a row's output depends on the other rows of its batch (batch statistics): a
  // data-parallel step, which splits each batch over the ranks, refuses the op (network.h).
  bool batch_coupled = false;
};

// " (op i)" in out_width's messages; nothing for an op that runs alone (index < 0).
inline std::string op_at(int64_t index) { return index < 0 ? std::string() : " (op " + std::to_string(index) + ")"; }

// The OpDef of a kind (ValueError for an invalid kind); registered in ops/registry.cpp.
const OpDef& op_def(OpKind k);
inline const char* op_name(OpKind k) { return op_def(k).name; }

// ---- the free functions ---------------------------------------------------------------------

// linear: z (B,out) = x (B,in) · Wᵀ (bias and activation: activation_forward). `fixed_order`:
// batch-invariant GEMM (Backend::gemm_fixed_order).
void linear_forward(Backend& be, DType dt, void* z, const void* x, const void* weight, int64_t B, int64_t in,
                    int64_t out, bool transposed, bool fixed_order = false);
// dW (+)= dzᵀ · x, dx = dz · W. dx may be null (nothing needs it). dweight is overwritten unless
// accumulate. (Bias gradient: activation_backward.)
void linear_backward(Backend& be, DType dt, void* dx, void* dweight, const void* dz, const void* x,
                     const void* weight, int64_t B, int64_t in, int64_t out, bool transposed, bool accumulate);

// activation: z (rows, cols) += bias (cols) when bias is not null; a = act(z). a may alias z.
void activation_forward(Backend& be, DType dt, const Activation& act, void* a, void* z, const void* bias,
                        int64_t rows, int64_t cols);
// dz = da * act'(z, a); if dbias: dbias (cols) (+)= column sums of dz ("+=" when accumulate).
// dz may alias da. z may be null when act.needs_input() is false.
void activation_backward(Backend& be, DType dt, const Activation& act, void* dz, void* dbias, const void* da,
                         const void* z, const void* a, bool accumulate, int64_t rows, int64_t cols);

// dropout (inverted): mask[i] = keep ? 1/(1-p) : 0 from the counter-based RNG (st.seed,
// st.counter + i); y = x * mask; advances st.counter by n. Backward: dx = dy * mask.
void dropout_forward(Backend& be, DType dt, void* y, void* mask, const void* x, int64_t n, double p,
                     DropoutState& st);
void dropout_backward(Backend& be, DType dt, void* dx, const void* dy, const void* mask, int64_t n);

// maxout: x (rows, cols*pieces) viewed as groups of `pieces` consecutive values; y[r,c] = max
// of the group, its first arg-max in idx (int32). Backward scatters dy to the winner.
void maxout_forward(Backend& be, DType dt, void* y, int32_t* idx, const void* x, int64_t rows, int64_t cols,
                    int64_t pieces);
void maxout_backward(Backend& be, DType dt, void* dx, const void* dy, const int32_t* idx, int64_t rows,
                     int64_t cols, int64_t pieces);

// residual add: y = x + skip (n values). Backward: dx = dy (and d skip = dy, which the network
// adds to the skip value's gradient).
void residual_forward(Backend& be, DType dt, void* y, const void* x, const void* skip, int64_t n);
void residual_backward(Backend& be, DType dt, void* dx, const void* dy, int64_t n);

// Losses: loss.h.

}  // namespace mc
