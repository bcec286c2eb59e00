// ops/loss.h — the loss kernel set (CPU: ops/loss.cpp; CUDA: cuda/loss.cu). Semantics:
// loss_forward_backward and count_correct in mlpcore/loss.h.
#pragma once
#include "mlpcore/loss.h"

namespace mc {

struct LossKernels {
  static constexpr KernelSet set = KernelSet::loss;
  void (*forward_backward)(DType dt, LossKind kind, double* sum, void* grad, const void* pred, const void* target,
                           int64_t rows, int64_t cols, int64_t rows_total);
  int64_t (*count_correct)(DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols);
};

}  // namespace mc
