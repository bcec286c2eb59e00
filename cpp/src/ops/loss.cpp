// ops/loss.cpp — the losses (value and gradient in one pass) and the arg-max count: the free
// functions and the CPU kernels (CUDA twin: cuda/loss.cu). Formulas and the weighted mean:
// mlpcore/loss.h.
//
// The value is summed in double, row after row (element after element), continuing from the
// sums, and each row's terms depend on that row alone: sums carried over several batches equal
// the sums over their rows in one batch (evaluate relies on it for batch-size invariance).
// Unweighted losses without class weights know their divisor (rows or rows * cols) and run one
// pass; weighted ones first add up their divisor Σ w n (one pass over the weights), then run the
// same single pass with a per-row gradient factor w_r / D (weights of 1 reproduce the unweighted
// numbers bit for bit).
#include "ops/loss.h"

#include <algorithm>

#include "cpu/vmath.h"

namespace mc {

void loss_check(const LossSpec& l) {
  MC_CHECK_VALUE(l.delta > 0, "delta: expected a value > 0 (as PyTorch's huber_loss), got ", l.delta);
  MC_CHECK_VALUE(l.beta >= 0, "beta: expected a value >= 0 (as PyTorch's smooth_l1_loss), got ", l.beta);
  MC_CHECK_VALUE(l.label_smoothing >= 0 && l.label_smoothing <= 1,
                 "label_smoothing: expected a value in [0, 1], got ", l.label_smoothing);
}

void loss_forward_backward(Backend& be, DType dt, const LossSpec& loss, LossSums* sums, void* grad, const void* pred,
                           const void* target, const void* sample_weight, int64_t rows, int64_t cols,
                           double divisor) {
  kernels_of<LossKernels>(be).forward_backward(dt, loss, sums, grad, pred, target, sample_weight, rows, cols, divisor);
}

int64_t count_correct(Backend& be, DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols) {
  return kernels_of<LossKernels>(be).count_correct(dt, pred, labels, rows, cols);
}

namespace {

// Σ_r w_r n_r of a weighted or class-weighted batch (n_r: `per_row`, or the label's class weight),
// returned; the same terms are added to `*carried` row after row (the sums' weight, continued
// across calls as the value is).
template <class T>
double weight_total(double* carried, const T* w, const int32_t* labels, const T* cw, double per_row, int64_t rows) {
  double d = 0, c = *carried;
  for (int64_t r = 0; r < rows; ++r) {
    const double term = (w ? double(w[r]) : 1.0) * (cw ? double(cw[labels[r]]) : per_row);
    d += term;
    c += term;
  }
  *carried = c;
  return d;
}

// Softmax cross-entropy of one row of pred with label y, scaled by rs = w_r / D: writes the
// row's gradient, returns its v_r (mlpcore/loss.h). Without class weights (cw null) and without
// smoothing (ls = 0) it is  grad = (softmax - onehot) rs,  v = log s - (x_y - m)  with the same
// operations as ever (the extra factors are exact 1s).
template <class T>
T cross_entropy_row(T* gr, const T* pr, int32_t y, int64_t cols, const T* cw, T ls, T rs) {
  T m = pr[0];
  for (int64_t c = 1; c < cols; ++c) m = std::max(m, pr[c]);
  for (int64_t c = 0; c < cols; ++c) gr[c] = vexp(pr[c] - m);  // vectorised; the sum stays in order
  T s = 0;
  for (int64_t c = 0; c < cols; ++c) s += gr[c];
  // -log_softmax[y] = log(s) - (x_y - m): shifting by the max first keeps the small log(s)
  // exact; (m + log(s)) - x_y would lose it next to a huge m (log 3 -> 0 at m = -1e300).
  const T log_s = std::log(s);
  const T wy = cw ? cw[y] : T(1);
  T v = wy * (log_s - (pr[y] - m));
  T a_sum = wy;  // Σ_c a_c: the softmax part of the gradient is a_sum * softmax
  T spread = 0;  // ε / C: each class's share of the smoothing
  if (ls > T(0)) {
    spread = ls / T(cols);
    T sl = 0, sw = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const T wc = cw ? cw[c] : T(1);
      sl += wc * (log_s - (pr[c] - m));
      sw += wc;
    }
    v = (T(1) - ls) * v + spread * sl;
    a_sum = (T(1) - ls) * wy + spread * sw;
  }
  const T k = rs * a_sum / s;
  for (int64_t c = 0; c < cols; ++c) gr[c] *= k;
  gr[y] -= rs * wy * (T(1) - ls);
  if (ls > T(0))
    for (int64_t c = 0; c < cols; ++c) gr[c] -= rs * spread * (cw ? cw[c] : T(1));
  return v;
}

template <class T>
void cross_entropy_cpu(LossSums& sums, T* grad, const T* pred, const int32_t* labels, const T* w, const T* cw, T ls,
                       int64_t rows, int64_t cols, double divisor) {
  const bool plain = !w && !cw;
  const double own = plain ? double(rows) : weight_total<T>(&sums.weight, w, labels, cw, 1.0, rows);
  if (plain) sums.weight += own;
  const double d = divisor > 0 ? divisor : own;
  const T scale = loss_scale<T>(d);
  double total = sums.value;
  for (int64_t r = 0; r < rows; ++r) {
    T* gr = grad + r * cols;
    if (w && w[r] == T(0)) {  // a row of weight 0 is not there (even with a non-finite loss)
      std::fill(gr, gr + cols, T(0));
      continue;
    }
    const T rs = w ? w[r] * scale : scale;
    const T v = cross_entropy_row<T>(gr, pred + r * cols, labels[r], cols, cw, ls, rs);
    total += w ? double(w[r]) * double(v) : double(v);
  }
  sums.value = total;
}

template <class F, class T>
void elementwise_cpu(LossSums& sums, const F& f, T* grad, const T* pred, const T* t, const T* w, int64_t rows,
                     int64_t cols, double divisor) {
  const double own = w ? weight_total<T>(&sums.weight, w, nullptr, nullptr, double(cols), rows)
                       : double(rows) * double(cols);
  if (!w) sums.weight += own;
  const double d = divisor > 0 ? divisor : own;
  const T scale = loss_scale<T>(d);
  double total = sums.value;
  if (!w && !F::kPerColumn) {  // the common case: one flat loop that vectorises where f allows
    const int64_t n = rows * cols;
    for (int64_t i = 0; i < n; ++i) {
      total += double(f.value(pred[i], t[i], 0));
      grad[i] = f.grad(pred[i], t[i], 0) * scale;
    }
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      const T* pr = pred + r * cols;
      const T* tr = t + r * cols;
      T* gr = grad + r * cols;
      if (w && w[r] == T(0)) {
        std::fill(gr, gr + cols, T(0));
        continue;
      }
      // Weights of 1 give the unweighted path's numbers bit for bit: the same terms in the same
      // order, and w * scale = scale.
      const double wr = w ? double(w[r]) : 1.0;
      const T rs = w ? w[r] * scale : scale;
      for (int64_t c = 0; c < cols; ++c) {
        total += wr * double(f.value(pr[c], tr[c], c));
        gr[c] = f.grad(pr[c], tr[c], c) * rs;
      }
    }
  }
  sums.value = total;
}

void forward_backward_cpu(DType dt, const LossSpec& loss, LossSums* sums, void* grad, const void* pred,
                          const void* target, const void* sample_weight, int64_t rows, int64_t cols, double divisor) {
  dtype_dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* g = static_cast<T*>(grad);
    const T* p = static_cast<const T*>(pred);
    const T* t = static_cast<const T*>(target);
    const T* w = static_cast<const T*>(sample_weight);
    auto run = [&](const auto& f) { elementwise_cpu(*sums, f, g, p, t, w, rows, cols, divisor); };
    switch (loss.kind) {
      case LossKind::cross_entropy:
        cross_entropy_cpu<T>(*sums, g, p, static_cast<const int32_t*>(target), w,
                             static_cast<const T*>(loss.class_weight), T(loss.label_smoothing), rows, cols, divisor);
        return;
      case LossKind::mse: run(MseFormula<T>{}); return;
      case LossKind::l1: run(L1Formula<T>{}); return;
      case LossKind::huber: run(HuberFormula<T>{T(loss.delta)}); return;
      case LossKind::smooth_l1:
        if (loss.beta == 0) run(L1Formula<T>{});  // PyTorch's beta = 0 is l1
        else run(SmoothL1Formula<T>{T(loss.beta)});
        return;
      case LossKind::bce_with_logits:
        if (loss.pos_weight) run(BcePosWeightFormula<T>{static_cast<const T*>(loss.pos_weight)});
        else run(BceWithLogitsFormula<T>{});
        return;
      case LossKind::poisson_nll: run(PoissonNllFormula<T>{loss.log_input, loss.full, T(loss.eps)}); return;
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
