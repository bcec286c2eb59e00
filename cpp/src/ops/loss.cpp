// ops/loss.cpp — the losses (value and gradient in one pass) and the arg-max count: the free
// functions and the CPU kernels (CUDA twin: cuda/loss.cu). Element-wise formulas: mlpcore/loss.h.
//
// The value is summed in double, row after row (element after element), continuing from *sum,
// and each row's terms depend on that row alone: a sum carried over several batches equals the
// sum over their rows in one batch (evaluate relies on it for batch-size invariance).
#include "ops/loss.h"

#include <algorithm>

#include "cpu/vmath.h"

namespace mc {

void loss_forward_backward(Backend& be, DType dt, LossKind kind, double* sum, void* grad, const void* pred,
                           const void* target, const void* sample_weight, int64_t rows, int64_t cols,
                           int64_t rows_total) {
  MC_CHECK_VALUE(sample_weight == nullptr, "loss ", loss_name(kind), ": per-sample weights are not supported yet");
  kernels_of<LossKernels>(be).forward_backward(dt, kind, sum, grad, pred, target, rows, cols, rows_total);
}

int64_t count_correct(Backend& be, DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols) {
  return kernels_of<LossKernels>(be).count_correct(dt, pred, labels, rows, cols);
}

namespace {

// Softmax cross-entropy: grad = (softmax(pred) - onehot) / rows_total.
template <class T>
double cross_entropy_cpu(double total, T* grad, const T* pred, const int32_t* labels, int64_t rows, int64_t cols,
                         int64_t rows_total) {
  const T inv_b = T(1) / T(rows_total);
  for (int64_t r = 0; r < rows; ++r) {
    const T* pr = pred + r * cols;
    T* gr = grad + r * cols;
    T m = pr[0];
    for (int64_t c = 1; c < cols; ++c) m = std::max(m, pr[c]);
    for (int64_t c = 0; c < cols; ++c) gr[c] = vexp(pr[c] - m);  // vectorised; the sum stays in order
    T s = 0;
    for (int64_t c = 0; c < cols; ++c) s += gr[c];
    // -log_softmax[y] = log(s) - (x_y - m): shifting by the max first keeps the small log(s)
    // exact; (m + log(s)) - x_y would lose it next to a huge m (log 3 -> 0 at m = -1e300).
    const int32_t y = labels[r];
    total += double(std::log(s) - (pr[y] - m));
    const T scale = inv_b / s;
    for (int64_t c = 0; c < cols; ++c) gr[c] *= scale;
    gr[y] -= inv_b;
  }
  return total;
}

template <class F, class T>
double elementwise_cpu(double total, T* grad, const T* pred, const T* t, int64_t n, T scale) {
  for (int64_t i = 0; i < n; ++i) {
    total += double(F::value(pred[i], t[i]));
    grad[i] = F::grad(pred[i], t[i], scale);
  }
  return total;
}

void forward_backward_cpu(DType dt, LossKind kind, double* sum, void* grad, const void* pred, const void* target,
                          int64_t rows, int64_t cols, int64_t rows_total) {
  dtype_dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* g = static_cast<T*>(grad);
    const T* p = static_cast<const T*>(pred);
    const T* t = static_cast<const T*>(target);
    const T scale = T(1) / T(loss_divisor(kind, rows_total, cols));
    switch (kind) {
      case LossKind::cross_entropy:
        *sum = cross_entropy_cpu<T>(*sum, g, p, static_cast<const int32_t*>(target), rows, cols, rows_total);
        return;
      case LossKind::mse: *sum = elementwise_cpu<MseFormula>(*sum, g, p, t, rows * cols, scale); return;
      case LossKind::bce_with_logits:
        *sum = elementwise_cpu<BceWithLogitsFormula>(*sum, g, p, t, rows * cols, scale);
        return;
    }
  });
}

int64_t count_correct_cpu(DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols) {
  int64_t k = 0;
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* p = static_cast<const T*>(pred);
    for (int64_t r = 0; r < rows; ++r) {
      const T* pr = p + r * cols;
      k += (std::max_element(pr, pr + cols) - pr) == labels[r];
    }
  });
  return k;
}

const LossKernels kLossCpu{&forward_backward_cpu, &count_correct_cpu};

}  // namespace

const void* loss_kernels_cpu() { return &kLossCpu; }

}  // namespace mc
