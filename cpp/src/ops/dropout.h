// ops/dropout.h — the dropout kernel set (CPU: ops/dropout.cpp; CUDA: cuda/dropout.cu).
#pragma once
#include "mlpcore/ops.h"

namespace mc {

struct DropoutKernels {
  static constexpr KernelSet set = KernelSet::dropout;
  // mask[i] = u01(splitmix64(splitmix64(seed) ^ (offset + i))) >= p ? 1/(1-p) : 0; y = x * mask (n values).
  void (*forward)(DType dt, void* y, void* mask, const void* x, int64_t n, double p, uint64_t seed,
                  uint64_t offset);
};

}  // namespace mc
