// mlpcore/loss.h — the losses: value and gradient in one pass, mean reduction.
//   mse:             mean over all elements of (pred - target)^2
//   cross_entropy:   mean over rows of logsumexp(pred_r) - pred_r[label_r]   (int32 labels)
//   bce_with_logits: mean over all elements of max(x,0) - x*t + log1p(exp(-|x|))
// The element-wise losses are scalar formulas (MC_HD, shared by the CPU and CUDA kernels, as the
// activations are); cross-entropy is row-wise. Kernels: ops/loss.cpp (CPU), cuda/loss.cu.
//
// Adding a loss: its LossKind, its loss_def entry, its formula below, and its case in the two
// kernel switches (which have no default: a loss a backend does not handle fails to compile).
#pragma once
#include <cmath>

#include "mlpcore/activations.h"
#include "mlpcore/backend.h"

namespace mc {

enum class LossKind : int { mse = 0, cross_entropy = 1, bce_with_logits = 2 };

struct LossDef {
  const char* name;
  bool labels;       // targets are int32 class ids (rows,); otherwise a (rows, cols) array of dt
  bool per_element;  // the mean is over rows * cols values; otherwise over rows
};
inline LossDef loss_def(LossKind k) {
  switch (k) {
    case LossKind::mse: return {"mse", false, true};
    case LossKind::cross_entropy: return {"cross_entropy", true, false};
    case LossKind::bce_with_logits: return {"bce_with_logits", false, true};
  }
  detail::raise_at<ValueError>(__FILE__, __LINE__, "invalid loss kind ", int(k));
}
inline const char* loss_name(LossKind k) { return loss_def(k).name; }
// The divisor of the mean over `rows` rows of `cols` outputs.
inline double loss_divisor(LossKind k, int64_t rows, int64_t cols) {
  return loss_def(k).per_element ? double(rows) * double(cols) : double(rows);
}

// Element-wise loss formulas: value(x, t) and d value / d x scaled by `scale` (1 / divisor).
struct MseFormula {
  template <class T>
  MC_HD static T value(T x, T t) {
    const T d = x - t;
    return d * d;
  }
  template <class T>
  MC_HD static T grad(T x, T t, T scale) {
    return T(2) * (x - t) * scale;
  }
};
// Stable for any x: never exp of a large positive number.
struct BceWithLogitsFormula {
  template <class T>
  MC_HD static T value(T x, T t) {
    return (x < T(0) ? T(0) : x) - x * t + std::log1p(std::exp(-std::fabs(x)));
  }
  template <class T>
  MC_HD static T grad(T x, T t, T scale) {
    return (sigmoid_stable(x) - t) * scale;
  }
};

// Loss value and gradient in one pass over a batch pred (rows, cols): grad (rows, cols) =
// d(mean loss over rows_total rows)/d(pred); `target` is int32 labels (rows,) when
// loss_def(kind).labels, else (rows, cols) of dt. `*sum` (a double in device memory) is ADDED
// the batch's loss terms: on the CPU row after row, continuing from its value, so a sum carried
// over several batches equals the sum over their rows taken in one batch. The mean is then
// *sum / loss_divisor(kind, rows_total, cols). `sample_weight` (rows,) is reserved for weighted
// losses and must be null for now.
void loss_forward_backward(Backend& be, DType dt, LossKind kind, double* sum, void* grad, const void* pred,
                           const void* target, const void* sample_weight, int64_t rows, int64_t cols,
                           int64_t rows_total);
// Number of rows of pred (rows, cols) whose first arg-max equals the label; synchronises.
int64_t count_correct(Backend& be, DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols);

}  // namespace mc
