// mlpcore/loss.h — the losses: value and gradient in one pass, with per-sample weights.
//
// A batch's loss is a weighted mean over its rows r (pred x_r, target t_r, sample weight w_r):
//     L = Σ_r w_r v_r / Σ_r w_r n_r
//   v_r  the row's loss terms: the sum over its columns of f(x, t) for the element-wise losses;
//        for cross-entropy  Σ_c a_c (-log softmax(x_r)_c),  a = the (smoothed) one-hot label
//        times the class weights: a_c = (1 - ε) cw_y [c == y] + ε cw_c / C;
//   n_r  the row's share of the divisor: cols for the element-wise losses (a mean over
//        elements); cw_y, the label's class weight (1 without class weights), for cross-entropy;
//   w_r  1 without sample weights.
// Without sample weights this is PyTorch's reduction="mean", class-weighted cross-entropy
// included (PyTorch divides by Σ_r cw[y_r]). With them it is PyTorch's reduction="none" loss
// times w, summed, over Σ w n — for one batch what scikit-learn's MLP minimises
// (np.average(loss, weights=w): Σ w l / Σ w). A batch whose Σ w n is 0 has loss 0 and gradient 0
// (PyTorch would give 0/0); rows of weight 0 contribute nothing, not even a non-finite term.
// Weights may be negative (PyTorch's and scikit-learn's MLP's arithmetic allow it).
//
// The element-wise formulas f(x, t) (x = pred, d = x - t) and their derivatives, PyTorch's:
//   mse              d^2
//   l1               |d|                          (derivative sign(d), 0 at d = 0)
//   huber            |d| < δ ? d^2/2 : δ(|d| - δ/2)            (δ = delta > 0)
//   smooth_l1        |d| < β ? d^2/(2β) : |d| - β/2            (β = beta >= 0; β = 0 is l1)
//   bce_with_logits  -[p t log σ(x) + (1 - t) log(1 - σ(x))]   (p = pos_weight[column], 1 without)
//   poisson_nll      log_input ? exp(x) - t x : x - t log(x + eps);
//                    full adds the Stirling term t log t - t + log(2π t)/2 where t > 1
// They are scalar functors (MC_HD: the CPU and CUDA kernels evaluate the same expressions, as
// with the activations); cross-entropy is row-wise. Kernels: ops/loss.cpp (CPU), cuda/loss.cu.
//
// Adding a loss: its LossKind, its loss_def entry, its formula below, and its case in the two
// kernel switches (which have no default: a loss a backend does not handle fails to compile).
#pragma once
#include <cmath>

#include "mlpcore/activations.h"
#include "mlpcore/backend.h"

namespace mc {

enum class LossKind : int {
  mse = 0,
  cross_entropy = 1,
  bce_with_logits = 2,
  l1 = 3,
  huber = 4,
  smooth_l1 = 5,
  poisson_nll = 6,
};
constexpr int kNumLossKinds = 7;

struct LossDef {
  const char* name;
  bool labels;       // targets are int32 class ids (rows,); otherwise a (rows, cols) array of dt
  bool per_element;  // n_r = cols (a mean over elements); otherwise 1 or the label's class weight
};
inline LossDef loss_def(LossKind k) {
  switch (k) {
    case LossKind::mse: return {"mse", false, true};
    case LossKind::cross_entropy: return {"cross_entropy", true, false};
    case LossKind::bce_with_logits: return {"bce_with_logits", false, true};
    case LossKind::l1: return {"l1", false, true};
    case LossKind::huber: return {"huber", false, true};
    case LossKind::smooth_l1: return {"smooth_l1", false, true};
    case LossKind::poisson_nll: return {"poisson_nll", false, true};
  }
  detail::raise_at<ValueError>(__FILE__, __LINE__, "invalid loss kind ", int(k));
}
inline const char* loss_name(LossKind k) { return loss_def(k).name; }
// The divisor Σ n_r of `rows` unweighted rows of `cols` outputs (no class weights).
inline double loss_divisor(LossKind k, int64_t rows, int64_t cols) {
  return loss_def(k).per_element ? double(rows) * double(cols) : double(rows);
}

// A loss and its parameters (PyTorch's names and defaults). The vectors, of the kernels' dtype
// and `cols` values, live in the memory of the backend that runs the kernel (the Network copies
// a host LossSpec's vectors to its device itself, see network.h); null means "none".
struct LossSpec {
  LossKind kind = LossKind::mse;
  double delta = 1.0;                  // huber: > 0
  double beta = 1.0;                   // smooth_l1: >= 0
  double label_smoothing = 0.0;        // cross_entropy: in [0, 1]
  bool log_input = true;               // poisson_nll: pred is log(rate)
  bool full = false;                   // poisson_nll: add the Stirling term
  double eps = 1e-8;                   // poisson_nll without log_input
  const void* class_weight = nullptr;  // cross_entropy: (cols,), PyTorch's `weight`
  const void* pos_weight = nullptr;    // bce_with_logits: (cols,)

  LossSpec() = default;
  LossSpec(LossKind k) : kind(k) {}  // NOLINT(google-explicit-constructor): a kind with the defaults
  // True when every row's n_r is known without looking at the data (no sample or class weights):
  // the divisor is then loss_divisor(kind, rows, cols).
  bool plain(const void* sample_weight) const { return !sample_weight && !(kind == LossKind::cross_entropy && class_weight); }
};
// Throws ValueError naming the parameter when a scalar parameter is outside its domain, as
// PyTorch refuses them: delta <= 0, beta < 0, label_smoothing outside [0, 1] (NaN included;
// PyTorch ignores a negative label_smoothing, we refuse it). eps is unchecked, as in PyTorch.
void loss_check(const LossSpec& loss);

// What a loss call adds up, in double: value += Σ w_r v_r, weight += Σ w_r n_r.
struct LossSums {
  double value = 0;
  double weight = 0;
};
// The weighted mean of the rows summed so far (0 when their Σ w n is 0).
inline double loss_mean(const LossSums& s) { return s.weight != 0 ? s.value / s.weight : 0.0; }

// ---- element-wise formulas: value(x, t, c) and d value / d x; c is the column -----------------

template <class T>
struct MseFormula {
  static constexpr bool kPerColumn = false;
  MC_HD T value(T x, T t, int64_t) const {
    const T d = x - t;
    return d * d;
  }
  MC_HD T grad(T x, T t, int64_t) const { return T(2) * (x - t); }
};

template <class T>
struct L1Formula {
  static constexpr bool kPerColumn = false;
  MC_HD T value(T x, T t, int64_t) const { return std::fabs(x - t); }
  MC_HD T grad(T x, T t, int64_t) const { return x > t ? T(1) : x < t ? T(-1) : T(0); }
};

template <class T>
struct HuberFormula {
  static constexpr bool kPerColumn = false;
  T delta;
  MC_HD T value(T x, T t, int64_t) const {
    const T z = std::fabs(x - t);
    return z < delta ? T(0.5) * z * z : delta * (z - T(0.5) * delta);
  }
  MC_HD T grad(T x, T t, int64_t) const {
    const T d = x - t;
    return d < -delta ? -delta : d > delta ? delta : d;
  }
};

// beta = 0 is l1 (PyTorch routes it there: no division by beta).
template <class T>
struct SmoothL1Formula {
  static constexpr bool kPerColumn = false;
  T beta;
  MC_HD T value(T x, T t, int64_t) const {
    const T z = std::fabs(x - t);
    return z < beta ? T(0.5) * z * z / beta : z - T(0.5) * beta;
  }
  MC_HD T grad(T x, T t, int64_t) const {
    const T d = x - t;
    return std::fabs(d) < beta ? d / beta : d > T(0) ? T(1) : d < T(0) ? T(-1) : T(0);
  }
};

// Stable for any x: never exp of a large positive number.
template <class T>
struct BceWithLogitsFormula {
  static constexpr bool kPerColumn = false;
  MC_HD T value(T x, T t, int64_t) const {
    return (x < T(0) ? T(0) : x) - x * t + std::log1p(std::exp(-std::fabs(x)));
  }
  MC_HD T grad(T x, T t, int64_t) const { return sigmoid_stable(x) - t; }
};

// With pos_weight p (per column), PyTorch's form: (1 - t) x + l softplus(-x), l = 1 + (p - 1) t;
// d/dx = l σ(x) - p t.
template <class T>
struct BcePosWeightFormula {
  static constexpr bool kPerColumn = true;
  const T* pos_weight;
  MC_HD T value(T x, T t, int64_t c) const {
    const T l = T(1) + (pos_weight[c] - T(1)) * t;
    return (T(1) - t) * x + l * ((x < T(0) ? -x : T(0)) + std::log1p(std::exp(-std::fabs(x))));
  }
  MC_HD T grad(T x, T t, int64_t c) const {
    const T p = pos_weight[c];
    return (T(1) + (p - T(1)) * t) * sigmoid_stable(x) - p * t;
  }
};

template <class T>
struct PoissonNllFormula {
  static constexpr bool kPerColumn = false;
  bool log_input, full;
  T eps;
  MC_HD T value(T x, T t, int64_t) const {
    T v = log_input ? std::exp(x) - t * x : x - t * std::log(x + eps);
    if (full && t > T(1)) v += t * std::log(t) - t + T(0.5) * std::log(T(2 * 3.14159265358979323846) * t);
    return v;
  }
  MC_HD T grad(T x, T t, int64_t) const { return log_input ? std::exp(x) - t : T(1) - t / (x + eps); }
};

// Loss value and gradient in one pass over a batch pred (rows, cols). `target`: int32 labels
// (rows,) when loss_def(kind).labels, else (rows, cols) of dt; `sample_weight`: (rows,) of dt or
// null. `sums` (a LossSums in the backend's memory) is ADDED Σ w v and Σ w n of these rows: on the
// CPU row after row, continuing from its value, so sums carried over several calls equal the sums
// over their rows taken in one call (evaluate relies on it for batch-size invariance).
// grad (rows, cols) = d L / d pred with L = Σ w v / D: D = `divisor` when > 0 (the total of a
// mean taken over more rows than this call's, e.g. a batch split into blocks), else this call's
// own Σ w n (the batch mean; its gradient is 0 when that total is 0).
void loss_forward_backward(Backend& be, DType dt, const LossSpec& loss, LossSums* sums, void* grad, const void* pred,
                           const void* target, const void* sample_weight, int64_t rows, int64_t cols,
                           double divisor = 0);
// Number of rows of pred (rows, cols) whose first arg-max equals the label; synchronises.
int64_t count_correct(Backend& be, DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols);

}  // namespace mc
