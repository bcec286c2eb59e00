// mlpcore/optim.h — optimizers over flat parameter/gradient buffers, with PyTorch's semantics:
//   SGD:     g = grad + wd*p; buf = g on the first step, else momentum*buf + g (no dampening);
//            g = nesterov ? g + momentum*buf : buf; p -= lr*g
//   Adam:    g = grad + wd*p; m,v moments; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
//   AdamW:   as Adam with p *= 1 - lr*wd instead of the L2 term
//   RMSprop: sq = alpha*sq + (1-alpha) g^2 (centered: minus the squared mean); optional momentum
// An Optimizer owns its state (one flat buffer) and updates a list of segments, each a
// contiguous run of parameters with its gradient; a whole parameter arena is one segment,
// so a step is one pass over memory.
#pragma once
#include <vector>

#include "mlpcore/tensor.h"

namespace mc {

enum class OptimKind : int { sgd = 0, adam = 1, adamw = 2, rmsprop = 3 };

// Hyper-parameters of one optimizer step; `step` is the 1-based step count.
struct OptimParams {
  OptimKind kind = OptimKind::sgd;
  double lr = 0.01, momentum = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam / adamw (rmsprop uses eps too)
  double alpha = 0.99;                            // rmsprop smoothing constant
  bool centered = false;                          // rmsprop
  int64_t step = 0;
};

// State values kept per parameter: SGD 1 (momentum buffer), Adam 2, RMSprop 3 (sq, buf, mean).
inline int optim_state_slots(const OptimParams& p) {
  switch (p.kind) {
    case OptimKind::sgd: return 1;
    case OptimKind::rmsprop: return 3;
    default: return 2;
  }
}

struct OptimSegment {
  void* param;
  const void* grad;
  int64_t n;
};

class Optimizer {
 public:
  Optimizer(Device device, DType dtype, OptimParams params, std::vector<OptimSegment> segments);
  // One step over every segment; increments params().step first.
  void step();
  OptimParams& params() { return params_; }
  const std::vector<OptimSegment>& segments() const { return segments_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  // Flat state: for segment s, slot k, element i: state[off_s + k*n_s + i].
  Buffer& state() { return state_; }
  int64_t state_numel() const { return state_numel_; }
  void reset_state();

 private:
  Device device_;
  DType dtype_;
  OptimParams params_;
  std::vector<OptimSegment> segments_;
  std::vector<int64_t> offsets_;
  Buffer state_;
  int64_t state_numel_ = 0;
};

}  // namespace mc
