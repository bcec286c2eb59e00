// cuda/layer_norm.cu — the CUDA kernels of the layer_norm op (CPU twin: ops/layer_norm.cpp).
// Rows: one warp per row (statistics and the input gradient, warp sums in a fixed order). The
// weight and bias gradients are column sums over the rows: one block per 32-column tile, its 8
// row-threads each summing a fixed stride of rows, then the 8 partial sums in order —
// deterministic run to run, no atomics.
#include "cuda/common.cuh"
#include "ops/layer_norm.h"

namespace mc {
namespace {

using namespace gpu;

constexpr int kTileCols = 32, kTileRows = 8;

// y (rows, cols), stats (rows, 2) = (mean, rstd), one warp per row. CPU twin: forward_cpu_t.
template <class T>
__global__ void layer_norm_forward_kernel(T* y, T* stats, const T* x, const T* w, const T* b, int64_t rows,
                                          int64_t cols, T eps) {
  const int lane = threadIdx.x & 31;
  const T inv_c = T(1) / T(cols);
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T s = 0;
    for (int64_t c = lane; c < cols; c += 32) s += xr[c];
    const T mean = warp_sum(s) * inv_c;
    T q = 0;
    for (int64_t c = lane; c < cols; c += 32) q += (xr[c] - mean) * (xr[c] - mean);
    const T rstd = T(1) / std::sqrt(warp_sum(q) * inv_c + eps);
    if (lane == 0) stats[2 * r] = mean, stats[2 * r + 1] = rstd;
    for (int64_t c = lane; c < cols; c += 32) {
      T v = (xr[c] - mean) * rstd;
      if (w) v *= w[c];
      if (b) v += b[c];
      yr[c] = v;
    }
  }
}

// dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)), g = dy * weight; one warp per row.
// CPU twin: backward_cpu_t (dx).
template <class T>
__global__ void layer_norm_dx_kernel(T* dx, const T* dy, const T* x, const T* stats, const T* w, int64_t rows,
                                     int64_t cols) {
  const int lane = threadIdx.x & 31;
  const T inv_c = T(1) / T(cols);
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    T* dxr = dx + r * cols;
    const T mean = stats[2 * r], rstd = stats[2 * r + 1];
    T s1 = 0, s2 = 0;
    for (int64_t c = lane; c < cols; c += 32) {
      const T g = w ? dyr[c] * w[c] : dyr[c];
      s1 += g;
      s2 += g * ((xr[c] - mean) * rstd);
    }
    s1 = warp_sum(s1) * inv_c;
    s2 = warp_sum(s2) * inv_c;
    for (int64_t c = lane; c < cols; c += 32) {
      const T g = w ? dyr[c] * w[c] : dyr[c];
      dxr[c] = rstd * (g - s1 - (xr[c] - mean) * rstd * s2);
    }
  }
}

// dweight (+)= Σ_rows dy * xhat, dbias (+)= Σ_rows dy (either may be null); block (32, 8) per
// 32-column tile. CPU twin: backward_cpu_t (dw, db).
template <class T>
__global__ void layer_norm_dparams_kernel(T* dw, T* db, const T* dy, const T* x, const T* stats, int64_t rows,
                                          int64_t cols, bool acc_w, bool acc_b) {
  __shared__ T part_w[kTileRows][kTileCols + 1];
  __shared__ T part_b[kTileRows][kTileCols + 1];
  const int64_t c = int64_t(blockIdx.x) * kTileCols + threadIdx.x;
  T sw = 0, sb = 0;
  if (c < cols)
    for (int64_t r = threadIdx.y; r < rows; r += kTileRows) {
      const T d = dy[r * cols + c];
      sw += d * ((x[r * cols + c] - stats[2 * r]) * stats[2 * r + 1]);
      sb += d;
    }
  part_w[threadIdx.y][threadIdx.x] = sw;
  part_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    T tw = 0, tb = 0;
    for (int k = 0; k < kTileRows; ++k) tw += part_w[k][threadIdx.x], tb += part_b[k][threadIdx.x];
    if (dw) dw[c] = acc_w ? dw[c] + tw : tw;
    if (db) db[c] = acc_b ? db[c] + tb : tb;
  }
}

void forward_cuda(DType dt, void* y, void* stats, const void* x, const void* weight, const void* bias, int64_t rows,
                  int64_t cols, double eps) {
  if (rows <= 0 || cols <= 0) return;
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    layer_norm_forward_kernel<T><<<blocks_for(rows, kWarps), kThreads, 0, stream()>>>(
        static_cast<T*>(y), static_cast<T*>(stats), static_cast<const T*>(x), static_cast<const T*>(weight),
        static_cast<const T*>(bias), rows, cols, T(eps));
  });
  MC_CUDA_LAUNCH_CHECK();
}

void backward_cuda(DType dt, void* dx, void* dweight, void* dbias, const void* dy, const void* x, const void* stats,
                   const void* weight, int64_t rows, int64_t cols, bool acc_weight, bool acc_bias) {
  if (cols <= 0) return;
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* dyp = static_cast<const T*>(dy);
    const T* xp = static_cast<const T*>(x);
    const T* sp = static_cast<const T*>(stats);
    if (dweight || dbias) {
      const unsigned tiles = unsigned((cols + kTileCols - 1) / kTileCols);
      layer_norm_dparams_kernel<T><<<tiles, dim3(kTileCols, kTileRows), 0, stream()>>>(
          static_cast<T*>(dweight), static_cast<T*>(dbias), dyp, xp, sp, rows, cols, acc_weight, acc_bias);
      MC_CUDA_LAUNCH_CHECK();
    }
    if (dx && rows > 0) {
      layer_norm_dx_kernel<T><<<blocks_for(rows, kWarps), kThreads, 0, stream()>>>(
          static_cast<T*>(dx), dyp, xp, sp, static_cast<const T*>(weight), rows, cols);
      MC_CUDA_LAUNCH_CHECK();
    }
  });
}

const LayerNormKernels kLayerNormCuda{&forward_cuda, &backward_cuda};

}  // namespace

const void* layer_norm_kernels_cuda() { return &kLayerNormCuda; }

}  // namespace mc
