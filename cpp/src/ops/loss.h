// ops/loss.h — the loss kernel set (CPU: ops/loss.cpp; CUDA: cuda/loss.cu). Semantics:
// loss_forward_backward and count_correct in mlpcore/loss.h.
#pragma once
#include "mlpcore/loss.h"

namespace mc {

struct LossKernels {
  static constexpr KernelSet set = KernelSet::loss;
  // `divisor` <= 0: the call's own Σ w n (see loss_forward_backward).
  void (*forward_backward)(DType dt, const LossSpec& loss, LossSums* sums, void* grad, const void* pred,
                           const void* target, const void* sample_weight, int64_t rows, int64_t cols,
                           double divisor);
  int64_t (*count_correct)(DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols);
};

// The gradient scale 1 / D of a mean over a divisor D (0 when D is 0: an all-zero-weight batch
// has gradient 0). T(1) / T(D), as the unweighted kernels have always computed it.
template <class T>
MC_HD T loss_scale(double divisor) {
  return divisor != 0 ? T(1) / T(divisor) : T(0);
}

}  // namespace mc
