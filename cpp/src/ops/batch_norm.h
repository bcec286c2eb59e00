// ops/batch_norm.h — the batch_norm op: its kernel set (CPU: ops/batch_norm.cpp; CUDA:
// cuda/batch_norm.cu) and free functions. BatchNorm over the batch of each feature, as
// torch.nn.BatchNorm1d(C) on (B, C) inputs:
//   batch statistics (train mode, or no running statistics): mean = Σ_rows x / B,
//     var = Σ_rows (x - mean)² / B (biased);  running statistics (eval mode): their values;
//   rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * weight + bias  (weight, bias (C,) optional);
//   in train mode the running statistics are updated: count += 1, f = momentum (or 1 / count when
//   momentum < 0, PyTorch's momentum=None: a cumulative average),
//   running_mean = f * mean + (1 - f) * running_mean,
//   running_var = f * Σ(x - mean)² / (B - 1) + (1 - f) * running_var (unbiased).
// State (OpSpec.state_off, 2C + 1 values of the model's dtype): running_mean (C), running_var (C),
// num_batches_tracked (1; counted in the dtype: exact up to 2^24 batches in float32, 2^53 in float64).
// OpSpec: in_features = C; attrs = {eps, momentum (< 0: cumulative)}; weight_off / bias_off /
// state_off = -1 when absent (affine=False, track_running_stats=False).
#pragma once
#include "mlpcore/ops.h"

namespace mc {

struct BatchNormKernels {
  static constexpr KernelSet set = KernelSet::batch_norm;
  // y (rows, cols) from x; stats (4, cols): row 0 the mean and row 1 the rstd used (rows 2-3 are
  // backward's scratch). batch: batch statistics, updating the running ones when state is not null;
  // else the running statistics of state. weight / bias may be null.
  void (*forward)(DType dt, void* y, void* stats, void* state, const void* x, const void* weight, const void* bias,
                  int64_t rows, int64_t cols, double eps, double momentum, bool batch);
  // dx (rows, cols) (null: not wanted): batch: weight * rstd / B * (B dy - Σ dy - xhat Σ dy xhat);
  // running: dy * weight * rstd. dweight (+)= Σ_rows dy * xhat, dbias (+)= Σ_rows dy (null: not wanted).
  void (*backward)(DType dt, void* dx, void* dweight, void* dbias, void* stats, const void* dy, const void* x,
                   const void* weight, int64_t rows, int64_t cols, bool batch, bool acc_weight, bool acc_bias);
};

void batch_norm_forward(Backend& be, DType dt, void* y, void* stats, void* state, const void* x, const void* weight,
                        const void* bias, int64_t rows, int64_t cols, double eps, double momentum, bool batch);
void batch_norm_backward(Backend& be, DType dt, void* dx, void* dweight, void* dbias, void* stats, const void* dy,
                         const void* x, const void* weight, int64_t rows, int64_t cols, bool batch, bool acc_weight,
                         bool acc_bias);

}  // namespace mc
