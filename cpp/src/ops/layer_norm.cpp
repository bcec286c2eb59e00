// ops/layer_norm.cpp — the layer_norm op (see ops/layer_norm.h for the formulas): its free
// functions, its OpDef and its CPU kernels (CUDA twin: cuda/layer_norm.cu).
//
// Each row is normalised on its own with sums in a fixed order (eight lanes, then the tail), so a
// row's output does not depend on the other rows of its batch (batch-invariant inference). The
// weight and bias gradients sum over rows, one vectorised pass over the columns per row.
#include "ops/layer_norm.h"

#include <algorithm>
#include <cmath>

namespace mc {

void layer_norm_forward(Backend& be, DType dt, void* y, void* stats, const void* x, const void* weight,
                        const void* bias, int64_t rows, int64_t cols, double eps) {
  kernels_of<LayerNormKernels>(be).forward(dt, y, stats, x, weight, bias, rows, cols, eps);
}

void layer_norm_backward(Backend& be, DType dt, void* dx, void* dweight, void* dbias, const void* dy, const void* x,
                         const void* stats, const void* weight, int64_t rows, int64_t cols, bool acc_weight,
                         bool acc_bias) {
  kernels_of<LayerNormKernels>(be).backward(dt, dx, dweight, dbias, dy, x, stats, weight, rows, cols, acc_weight,
                                            acc_bias);
}

namespace {

// Σ_{i<n} term(i) in a fixed order: eight interleaved partial sums (they vectorise), the tail,
// then the partial sums in order.
template <class T, class F>
inline T lane_sum(int64_t n, F term) {
  constexpr int kLanes = 8;
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  T s = 0;
  for (; i < n; ++i) s += term(i);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// x, y (rows, cols); stats (rows, 2) = (mean, rstd).
template <class T>
void forward_cpu_t(T* y, T* stats, const T* x, const T* w, const T* b, int64_t rows, int64_t cols, T eps) {
  const T inv_c = T(1) / T(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T mean = lane_sum<T>(cols, [xr](int64_t c) { return xr[c]; }) * inv_c;
    const T var = lane_sum<T>(cols, [xr, mean](int64_t c) { return (xr[c] - mean) * (xr[c] - mean); }) * inv_c;
    const T rstd = T(1) / std::sqrt(var + eps);
    stats[2 * r] = mean;
    stats[2 * r + 1] = rstd;
    if (w && b)
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd * w[c] + b[c];
    else if (w)
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd * w[c];
    else if (b)
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd + b[c];
    else
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mean) * rstd;
  }
}

// g = dy * weight; dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)); dweight += dy * xhat and
// dbias += dy over the rows.
template <class T>
void backward_cpu_t(T* dx, T* dw, T* db, const T* dy, const T* x, const T* stats, const T* w, int64_t rows,
                    int64_t cols, bool acc_w, bool acc_b) {
  if (dw && !acc_w) std::fill(dw, dw + cols, T(0));
  if (db && !acc_b) std::fill(db, db + cols, T(0));
  const T inv_c = T(1) / T(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    const T mean = stats[2 * r], rstd = stats[2 * r + 1];
    if (dw)
      for (int64_t c = 0; c < cols; ++c) dw[c] += dyr[c] * ((xr[c] - mean) * rstd);
    if (db)
      for (int64_t c = 0; c < cols; ++c) db[c] += dyr[c];
    if (!dx) continue;
    T* dxr = dx + r * cols;
    auto g = [=](int64_t c) { return w ? dyr[c] * w[c] : dyr[c]; };
    const T s1 = lane_sum<T>(cols, g) * inv_c;
    const T s2 = lane_sum<T>(cols, [=](int64_t c) { return g(c) * ((xr[c] - mean) * rstd); }) * inv_c;
    for (int64_t c = 0; c < cols; ++c) dxr[c] = rstd * (g(c) - s1 - (xr[c] - mean) * rstd * s2);
  }
}

void forward_cpu(DType dt, void* y, void* stats, const void* x, const void* weight, const void* bias, int64_t rows,
                 int64_t cols, double eps) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    forward_cpu_t<T>(static_cast<T*>(y), static_cast<T*>(stats), static_cast<const T*>(x),
                     static_cast<const T*>(weight), static_cast<const T*>(bias), rows, cols, T(eps));
  });
}

void backward_cpu(DType dt, void* dx, void* dweight, void* dbias, const void* dy, const void* x, const void* stats,
                  const void* weight, int64_t rows, int64_t cols, bool acc_weight, bool acc_bias) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    backward_cpu_t<T>(static_cast<T*>(dx), static_cast<T*>(dweight), static_cast<T*>(dbias),
                      static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(stats),
                      static_cast<const T*>(weight), rows, cols, acc_weight, acc_bias);
  });
}

const LayerNormKernels kLayerNormCpu{&forward_cpu, &backward_cpu};

// ---- the OpDef --------------------------------------------------------------------------------

double eps_of(const OpSpec& s) { return s.attrs[0]; }

int64_t out_width(const OpSpec& s, int64_t in_w, int64_t i) {
  MC_CHECK_VALUE(s.attrs.size() == 1 && std::isfinite(s.attrs[0]) && s.attrs[0] >= 0, "layer_norm", op_at(i),
                 ": attrs must be {eps} with eps >= 0, got ", s.attrs.size(), " values");
  MC_CHECK_VALUE(s.in_features == in_w, "LayerNorm: normalized_shape is ", s.in_features,
                 " but the input has ", in_w, " features", op_at(i), "; the last dimension of the input must equal "
                 "normalized_shape");
  return in_w;
}
OpParams params(const OpSpec& s, int64_t in_w, int64_t) {
  return {s.weight_off >= 0 ? in_w : 0, s.bias_off >= 0 ? in_w : 0, 0};
}
OpWork work(const OpSpec&, int64_t, int64_t, DType dt) { return {2 * int64_t(dtype_size(dt)), 0}; }

void forward(const OpCall& c) {
  layer_norm_forward(c.be, c.dt, c.y, c.saved, c.x, c.weight, c.bias, c.rows, c.out_w, eps_of(c.spec));
}
void backward(const OpCall& c, const OpGrads& g) {
  if (!g.dx && !g.dweight && !g.dbias) return;
  layer_norm_backward(c.be, c.dt, g.dx, g.dweight, g.dbias, g.dy, c.x, c.saved, c.weight, c.rows, c.out_w,
                      g.acc_weight, g.acc_bias);
}

}  // namespace

const void* layer_norm_kernels_cpu() { return &kLayerNormCpu; }

extern const OpDef layer_norm_op{"layer_norm", &out_width, &params, &work, nullptr, &forward, &backward};

}  // namespace mc
