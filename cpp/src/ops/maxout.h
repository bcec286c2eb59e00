// ops/maxout.h — the maxout kernel set (CPU: ops/maxout.cpp; CUDA: cuda/maxout.cu).
#pragma once
#include "mlpcore/ops.h"

namespace mc {

struct MaxoutKernels {
  static constexpr KernelSet set = KernelSet::maxout;
  // y (rows, cols), idx = max / first arg-max over groups of `pieces` of x (rows, cols*pieces).
  void (*forward)(DType dt, void* y, int32_t* idx, const void* x, int64_t rows, int64_t cols, int64_t pieces);
  // dx (rows, cols*pieces) = dy at the winning piece, 0 elsewhere.
  void (*backward)(DType dt, void* dx, const void* dy, const int32_t* idx, int64_t rows, int64_t cols,
                   int64_t pieces);
};

}  // namespace mc
