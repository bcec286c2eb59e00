// ops/layer_norm.h — the layer_norm op: its kernel set (CPU: ops/layer_norm.cpp; CUDA:
// cuda/layer_norm.cu) and free functions. LayerNorm over the features of each row, as
// torch.nn.LayerNorm(C) on (B, C) inputs:
//   mean = Σ_c x / C,  var = Σ_c (x - mean)² / C (biased),  rstd = 1 / sqrt(var + eps),
//   xhat = (x - mean) * rstd,  y = xhat * weight + bias   (weight, bias (C,); either may be absent).
// OpSpec: in_features = C; attrs = {eps}; weight_off / bias_off = -1 when absent.
#pragma once
#include "mlpcore/ops.h"

namespace mc {

struct LayerNormKernels {
  static constexpr KernelSet set = KernelSet::layer_norm;
  // y (rows, cols); stats (rows, 2) = (mean, rstd) per row, kept for backward. weight / bias may be null.
  void (*forward)(DType dt, void* y, void* stats, const void* x, const void* weight, const void* bias, int64_t rows,
                  int64_t cols, double eps);
  // dx (rows, cols) (null: not wanted) from dy; dweight (+)= Σ_rows dy * xhat, dbias (+)= Σ_rows dy
  // (null: not wanted; "+=" when acc_*). weight null: the identity scale.
  void (*backward)(DType dt, void* dx, void* dweight, void* dbias, const void* dy, const void* x, const void* stats,
                   const void* weight, int64_t rows, int64_t cols, bool acc_weight, bool acc_bias);
};

// y (rows, cols) = LayerNorm(x); stats (rows, 2): the per-row (mean, rstd) backward needs.
void layer_norm_forward(Backend& be, DType dt, void* y, void* stats, const void* x, const void* weight,
                        const void* bias, int64_t rows, int64_t cols, double eps);
// Backward of layer_norm_forward (same x, stats and weight): see LayerNormKernels::backward.
void layer_norm_backward(Backend& be, DType dt, void* dx, void* dweight, void* dbias, const void* dy, const void* x,
                         const void* stats, const void* weight, int64_t rows, int64_t cols, bool acc_weight,
                         bool acc_bias);

}  // namespace mc
