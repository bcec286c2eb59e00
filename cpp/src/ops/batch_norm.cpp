// ops/batch_norm.cpp — the batch_norm op (see ops/batch_norm.h for the formulas and the state):
// its free functions, its OpDef and its CPU kernels (CUDA twin: cuda/batch_norm.cu).
//
// Row-major data: the per-feature sums run over the rows, each row one vectorised pass over the
// columns into per-column accumulators (a fixed order). In eval mode with running statistics the
// op is element-wise, so an output row does not depend on its batch (batch-invariant inference);
// with batch statistics it does by definition.
#include "ops/batch_norm.h"

#include <algorithm>
#include <cmath>

namespace mc {

void batch_norm_forward(Backend& be, DType dt, void* y, void* stats, void* state, const void* x, const void* weight,
                        const void* bias, int64_t rows, int64_t cols, double eps, double momentum, bool batch) {
  kernels_of<BatchNormKernels>(be).forward(dt, y, stats, state, x, weight, bias, rows, cols, eps, momentum, batch);
}

void batch_norm_backward(Backend& be, DType dt, void* dx, void* dweight, void* dbias, void* stats, const void* dy,
                         const void* x, const void* weight, int64_t rows, int64_t cols, bool batch, bool acc_weight,
                         bool acc_bias) {
  kernels_of<BatchNormKernels>(be).backward(dt, dx, dweight, dbias, stats, dy, x, weight, rows, cols, batch,
                                            acc_weight, acc_bias);
}

namespace {

// stats (4, cols): mean, rstd, then backward's Σ dy and Σ dy * xhat.
template <class T>
void forward_cpu_t(T* y, T* stats, T* state, const T* x, const T* w, const T* b, int64_t rows, int64_t cols, T eps,
                   double momentum, bool batch) {
  T* mean = stats;
  T* rstd = stats + cols;
  if (batch) {
    T* sq = stats + 2 * cols;  // Σ (x - mean)², in backward's scratch row
    std::fill(mean, mean + cols, T(0));
    std::fill(sq, sq + cols, T(0));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) mean[c] += x[r * cols + c];
    const T inv_n = T(1) / T(rows);
    for (int64_t c = 0; c < cols; ++c) mean[c] *= inv_n;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const T d = x[r * cols + c] - mean[c];
        sq[c] += d * d;
      }
    for (int64_t c = 0; c < cols; ++c) rstd[c] = T(1) / std::sqrt(sq[c] * inv_n + eps);
    if (state) {
      T* run_mean = state;
      T* run_var = state + cols;
      T& count = state[2 * cols];
      count += T(1);
      const T f = momentum >= 0 ? T(momentum) : T(1) / count;
      const T inv_n1 = T(1) / T(rows - 1);
      for (int64_t c = 0; c < cols; ++c) {
        run_mean[c] = f * mean[c] + (T(1) - f) * run_mean[c];
        run_var[c] = f * (sq[c] * inv_n1) + (T(1) - f) * run_var[c];
      }
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) {
      mean[c] = state[c];
      rstd[c] = T(1) / std::sqrt(state[cols + c] + eps);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    if (w && b)
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean[c]) * rstd[c] * w[c] + b[c];
    else if (w)
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean[c]) * rstd[c] * w[c];
    else if (b)
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean[c]) * rstd[c] + b[c];
    else
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean[c]) * rstd[c];
  }
}

template <class T>
void backward_cpu_t(T* dx, T* dw, T* db, T* stats, const T* dy, const T* x, const T* w, int64_t rows, int64_t cols,
                    bool batch, bool acc_w, bool acc_b) {
  const T* mean = stats;
  const T* rstd = stats + cols;
  T* sdy = stats + 2 * cols;
  T* sdyx = stats + 3 * cols;
  std::fill(sdy, sdy + cols, T(0));
  std::fill(sdyx, sdyx + cols, T(0));
  if (batch || dw || db)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      const T* dyr = dy + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        sdy[c] += dyr[c];
        sdyx[c] += dyr[c] * ((xr[c] - mean[c]) * rstd[c]);
      }
    }
  if (dw)
    for (int64_t c = 0; c < cols; ++c) dw[c] = acc_w ? dw[c] + sdyx[c] : sdyx[c];
  if (db)
    for (int64_t c = 0; c < cols; ++c) db[c] = acc_b ? db[c] + sdy[c] : sdy[c];
  if (!dx) return;
  const T inv_n = T(1) / T(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    T* dxr = dx + r * cols;
    if (batch)
      for (int64_t c = 0; c < cols; ++c) {
        const T xhat = (xr[c] - mean[c]) * rstd[c];
        dxr[c] = (w ? w[c] : T(1)) * rstd[c] * (dyr[c] - sdy[c] * inv_n - xhat * sdyx[c] * inv_n);
      }
    else
      for (int64_t c = 0; c < cols; ++c) dxr[c] = dyr[c] * (w ? w[c] : T(1)) * rstd[c];
  }
}

void forward_cpu(DType dt, void* y, void* stats, void* state, const void* x, const void* weight, const void* bias,
                 int64_t rows, int64_t cols, double eps, double momentum, bool batch) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    forward_cpu_t<T>(static_cast<T*>(y), static_cast<T*>(stats), static_cast<T*>(state), static_cast<const T*>(x),
                     static_cast<const T*>(weight), static_cast<const T*>(bias), rows, cols, T(eps), momentum, batch);
  });
}

void backward_cpu(DType dt, void* dx, void* dweight, void* dbias, void* stats, const void* dy, const void* x,
                  const void* weight, int64_t rows, int64_t cols, bool batch, bool acc_weight, bool acc_bias) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    backward_cpu_t<T>(static_cast<T*>(dx), static_cast<T*>(dweight), static_cast<T*>(dbias), static_cast<T*>(stats),
                      static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(weight), rows, cols,
                      batch, acc_weight, acc_bias);
  });
}

const BatchNormKernels kBatchNormCpu{&forward_cpu, &backward_cpu};

// ---- the OpDef --------------------------------------------------------------------------------

// Batch statistics in train mode, and in eval mode without running statistics (as PyTorch).
bool batch_stats(const OpCall& c) { return c.training || !c.state; }

int64_t out_width(const OpSpec& s, int64_t in_w, int64_t i) {
  MC_CHECK_VALUE(s.attrs.size() == 2 && std::isfinite(s.attrs[0]) && s.attrs[0] >= 0 && std::isfinite(s.attrs[1]),
                 "batch_norm", op_at(i), ": attrs must be {eps >= 0, momentum}, got ", s.attrs.size(), " values");
  MC_CHECK_VALUE(s.in_features == in_w, "BatchNorm1d: num_features is ", s.in_features, " but the input has ", in_w,
                 " features", op_at(i));
  return in_w;
}
OpParams params(const OpSpec& s, int64_t in_w, int64_t) {
  return {s.weight_off >= 0 ? in_w : 0, s.bias_off >= 0 ? in_w : 0, s.state_off >= 0 ? 2 * in_w + 1 : 0};
}
OpWork work(const OpSpec&, int64_t in_w, int64_t, DType dt) { return {0, 4 * in_w * int64_t(dtype_size(dt))}; }

void forward(const OpCall& c) {
  const bool batch = batch_stats(c);
  MC_CHECK_VALUE(!batch || c.rows > 1, "BatchNorm1d: Expected more than 1 value per channel when training, got "
                 "input of shape (", c.rows, ", ", c.in_w, ") (batch statistics of one row are undefined: use batches "
                 "of at least 2 rows, or eval mode with running statistics)");
  batch_norm_forward(c.be, c.dt, c.y, c.saved, c.state, c.x, c.weight, c.bias, c.rows, c.out_w, c.spec.attrs[0],
                     c.spec.attrs[1], batch);
}
void backward(const OpCall& c, const OpGrads& g) {
  if (!g.dx && !g.dweight && !g.dbias) return;
  batch_norm_backward(c.be, c.dt, g.dx, g.dweight, g.dbias, c.saved, g.dy, c.x, c.weight, c.rows, c.out_w,
                      batch_stats(c), g.acc_weight, g.acc_bias);
}

}  // namespace

const void* batch_norm_kernels_cpu() { return &kBatchNormCpu; }

// batch_coupled: train mode normalises each row with its batch's statistics.
extern const OpDef batch_norm_op{"batch_norm", &out_width, &params, &work, nullptr, &forward, &backward, true};

}  // namespace mc
