// ops/activation.h — the activation kernel set (CPU: ops/activation.cpp; CUDA: cuda/activation.cu).
// Shapes and semantics: activation_forward / activation_backward in mlpcore/ops.h.
#pragma once
#include "mlpcore/ops.h"

namespace mc {

struct ActivationKernels {
  static constexpr KernelSet set = KernelSet::activation;
  // z (rows, cols) += bias (may be null); a = act(z); a may alias z.
  void (*forward)(DType dt, const Activation& act, void* a, void* z, const void* bias, int64_t rows, int64_t cols);
  // dz = da * act'(z, a); dbias (+)= column sums of dz when not null; dz may alias da.
  void (*backward)(DType dt, const Activation& act, void* dz, void* dbias, const void* da, const void* z,
                   const void* a, bool accumulate, int64_t rows, int64_t cols);
};

}  // namespace mc
