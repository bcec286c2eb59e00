// mlpcore/optim.h — optimizers over flat parameter/gradient buffers, with PyTorch's semantics:
//   SGD:     g = grad + wd*p; buf = g on the first step, else momentum*buf + g (no dampening);
//            g = nesterov ? g + momentum*buf : buf; p -= lr*g
//   Adam:    g = grad + wd*p; m,v moments; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
//   AdamW:   as Adam with p *= 1 - lr*wd instead of the L2 term
//   RMSprop: sq = alpha*sq + (1-alpha) g^2 (centered: minus the squared mean); optional momentum
// The per-element updates are written once, below, as MC_HD formulas that the CPU loops
// (src/optim.cpp) and the CUDA kernels (cuda/optim.cu) both call. Their flags are template
// parameters so that each CPU loop body is straight-line code that vectorises.
//
// An Optimizer owns its state (one flat buffer) and updates a list of segments, each a
// contiguous run of parameters with its gradient; a whole parameter arena is one segment,
// so a step is one pass over memory. Frozen parameters lie in inactive segments: no work.
#pragma once
#include <cmath>
#include <vector>

#include "mlpcore/backend.h"
#include "mlpcore/hd.h"

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
    case OptimKind::adam:
    case OptimKind::adamw: return 2;
    case OptimKind::rmsprop: return 3;
  }
  detail::raise_at<ValueError>(__FILE__, __LINE__, "invalid optimizer kind ", int(p.kind));
}

// ---- the update formulas (one parameter) ----------------------------------------------------

template <bool WD, bool MOM, bool FIRST, bool NESTEROV, class T>
MC_HD void sgd_update(T& w, T& buf, T g, T lr, T wd, T mom) {
  T d = g;
  if (WD) d += wd * w;
  if (MOM) {
    const T b = FIRST ? d : mom * buf + d;
    buf = b;
    d = NESTEROV ? d + mom * b : b;
  }
  w -= lr * d;
}

// Adam / AdamW (DECOUPLED) in PyTorch's order: m = lerp(m, g, 1-b1), v = b2 v + (1-b2) g^2,
// p -= step_size * m / (sqrt(v)/bc2_sqrt + eps); the scalars come from adam_scalars.
template <bool WD, bool DECOUPLED, class T>
MC_HD void adam_update(T& w, T& m, T& v, T g, T wd, T decay, T b1, T b2, T eps, T step_size, T bc2_sqrt) {
  T d = g;
  T wi = w;
  if (DECOUPLED && WD) wi *= decay;
  if (!DECOUPLED && WD) d += wd * wi;
  const T mi = m + (d - m) * (T(1) - b1);
  const T vi = v * b2 + (T(1) - b2) * d * d;
  m = mi;
  v = vi;
  w = wi - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
}

template <class T>
struct AdamScalars {
  T wd, decay, b1, b2, eps, step_size, bc2_sqrt;
};
// Host-side scalars of one Adam step (bias corrections of step p.step), in dtype T.
template <class T>
AdamScalars<T> adam_scalars(const OptimParams& p) {
  const T lr = T(p.lr), wd = T(p.weight_decay);
  const T bc1 = T(1) - T(std::pow(p.beta1, double(p.step)));
  const T bc2_sqrt = T(std::sqrt(1.0 - std::pow(p.beta2, double(p.step))));
  return {wd, T(1) - lr * wd, T(p.beta1), T(p.beta2), T(p.eps), lr / bc1, bc2_sqrt};
}

template <bool CENTERED, bool MOM, class T>
MC_HD void rmsprop_update(T& w, T& sq, T& buf, T& mean, T g, T lr, T wd, T alpha, T eps, T mom) {
  T d = g;
  if (wd != T(0)) d += wd * w;
  sq = sq * alpha + (T(1) - alpha) * d * d;
  T avg;
  if (CENTERED) {
    mean += (d - mean) * (T(1) - alpha);
    avg = std::sqrt(sq - mean * mean) + eps;
  } else {
    avg = std::sqrt(sq) + eps;
  }
  if (MOM) {
    buf = buf * mom + d / avg;
    w -= lr * buf;
  } else {
    w -= lr * (d / avg);
  }
}

// ---- kernels and the Optimizer --------------------------------------------------------------

// The optimizer kernel set: one update over n contiguous parameters; `state` holds
// optim_state_slots(p) * n values (slot k of element i at state[k*n + i]). Gradient clipping:
// add_sum_squares adds Σ g² over n values to the device double *sum (fixed order, double
// accumulators); scale multiplies n values by s.
struct OptimKernels {
  static constexpr KernelSet set = KernelSet::optim;
  void (*step)(DType dt, const OptimParams& p, void* param, const void* grad, void* state, int64_t n);
  void (*add_sum_squares)(DType dt, double* sum, const void* x, int64_t n);
  void (*scale)(DType dt, void* x, int64_t n, double s);
};

// A contiguous run of parameters and their gradients. An inactive segment (frozen parameters)
// keeps its optimizer state but gets no update and takes no part in gradient clipping.
struct OptimSegment {
  void* param;
  void* grad;
  int64_t n;
  bool active = true;
};

// torch.nn.utils.clip_grad_norm_ over the gradients of the active segments: returns their joint
// L2 norm, and when max_norm >= 0 scales them by max_norm / (norm + 1e-6) if that is below 1.
// One pass for the norm (its value reaches the host), one to scale. error_if_nonfinite: a NaN/Inf
// norm throws std::runtime_error before anything is scaled. sum_dev: one device double (scratch).
double clip_grad_norm(Backend& be, DType dt, const std::vector<OptimSegment>& segments, double max_norm,
                      double* sum_dev, bool error_if_nonfinite = false);

class Optimizer {
 public:
  Optimizer(Device device, DType dtype, OptimParams params, std::vector<OptimSegment> segments);
  // One step over every active segment; increments params().step first.
  void step();
  // clip_grad_norm (above) over this optimizer's active segments; no allocation.
  double clip_grad_norm(double max_norm);
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
  Buffer norm_dev_;  // one double: clip_grad_norm's sum
};

}  // namespace mc
