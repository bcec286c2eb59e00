// cuda/batch_norm.cu — the CUDA kernels of the batch_norm op (CPU twin: ops/batch_norm.cpp).
// Per-feature sums over the rows: one block per 32-column tile, its 8 row-threads each summing a
// fixed stride of rows, then the 8 partial sums in order — deterministic run to run, no atomics.
// Element-wise passes (normalise, input gradient) are grid-stride loops.
#include "cuda/common.cuh"
#include "ops/batch_norm.h"

namespace mc {
namespace {

using namespace gpu;

constexpr int kTileCols = 32, kTileRows = 8;

// Σ over the 8 row-threads of v for column threadIdx.x, broadcast to the whole block.
template <class T>
__device__ T tile_sum(T (*part)[kTileCols + 1], T v) {
  part[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  T s = 0;
  for (int k = 0; k < kTileRows; ++k) s += part[k][threadIdx.x];
  __syncthreads();
  return s;
}

// Batch statistics of x (rows, cols) into stats (mean row 0, rstd row 1), and the running
// statistics' update when state is not null (count: the value of num_batches_tracked after this
// batch). Block (32, 8) per 32-column tile. CPU twin: forward_cpu_t, batch branch.
template <class T>
__global__ void batch_stats_kernel(T* stats, T* state, const T* x, int64_t rows, int64_t cols, T eps, double momentum) {
  __shared__ T part[kTileRows][kTileCols + 1];
  const int64_t c = int64_t(blockIdx.x) * kTileCols + threadIdx.x;
  T s = 0;
  if (c < cols)
    for (int64_t r = threadIdx.y; r < rows; r += kTileRows) s += x[r * cols + c];
  const T mean = tile_sum(part, s) * (T(1) / T(rows));
  T q = 0;
  if (c < cols)
    for (int64_t r = threadIdx.y; r < rows; r += kTileRows) {
      const T d = x[r * cols + c] - mean;
      q += d * d;
    }
  const T sq = tile_sum(part, q);
  if (threadIdx.y != 0 || c >= cols) return;
  stats[c] = mean;
  stats[cols + c] = T(1) / std::sqrt(sq * (T(1) / T(rows)) + eps);
  if (state) {
    const T count = state[2 * cols] + T(1);
    const T f = momentum >= 0 ? T(momentum) : T(1) / count;
    state[c] = f * mean + (T(1) - f) * state[c];
    state[cols + c] = f * (sq * (T(1) / T(rows - 1))) + (T(1) - f) * state[cols + c];
  }
}

// num_batches_tracked += 1 (after batch_stats_kernel has read it). CPU twin: forward_cpu_t.
template <class T>
__global__ void count_batch_kernel(T* state, int64_t cols) {
  state[2 * cols] += T(1);
}

// stats = (running_mean, 1 / sqrt(running_var + eps)). CPU twin: forward_cpu_t, eval branch.
template <class T>
__global__ void running_stats_kernel(T* stats, const T* state, int64_t cols, T eps) {
  for (int64_t c = grid_index(); c < cols; c += grid_stride()) {
    stats[c] = state[c];
    stats[cols + c] = T(1) / std::sqrt(state[cols + c] + eps);
  }
}

// y = (x - mean) * rstd * weight + bias. CPU twin: forward_cpu_t, last loop.
template <class T>
__global__ void normalize_kernel(T* y, const T* x, const T* stats, const T* w, const T* b, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = grid_index(); i < n; i += grid_stride()) {
    const int64_t c = i % cols;
    T v = (x[i] - stats[c]) * stats[cols + c];
    if (w) v *= w[c];
    if (b) v += b[c];
    y[i] = v;
  }
}

// Σ dy and Σ dy * xhat per column into stats rows 2 and 3, and dweight / dbias from them.
// CPU twin: backward_cpu_t, sums.
template <class T>
__global__ void batch_norm_sums_kernel(T* dw, T* db, T* stats, const T* dy, const T* x, int64_t rows, int64_t cols,
                                       bool acc_w, bool acc_b) {
  __shared__ T part[kTileRows][kTileCols + 1];
  const int64_t c = int64_t(blockIdx.x) * kTileCols + threadIdx.x;
  T sdy = 0, sdyx = 0;
  if (c < cols) {
    const T mean = stats[c], rstd = stats[cols + c];
    for (int64_t r = threadIdx.y; r < rows; r += kTileRows) {
      const T d = dy[r * cols + c];
      sdy += d;
      sdyx += d * ((x[r * cols + c] - mean) * rstd);
    }
  }
  sdy = tile_sum(part, sdy);
  sdyx = tile_sum(part, sdyx);
  if (threadIdx.y != 0 || c >= cols) return;
  stats[2 * cols + c] = sdy;
  stats[3 * cols + c] = sdyx;
  if (dw) dw[c] = acc_w ? dw[c] + sdyx : sdyx;
  if (db) db[c] = acc_b ? db[c] + sdy : sdy;
}

// dx from dy and the column sums. CPU twin: backward_cpu_t, last loop.
template <class T>
__global__ void batch_norm_dx_kernel(T* dx, const T* dy, const T* x, const T* stats, const T* w, int64_t rows,
                                     int64_t cols, bool batch) {
  const int64_t n = rows * cols;
  const T inv_n = T(1) / T(rows);
  for (int64_t i = grid_index(); i < n; i += grid_stride()) {
    const int64_t c = i % cols;
    const T scale = (w ? w[c] : T(1)) * stats[cols + c];
    if (batch) {
      const T xhat = (x[i] - stats[c]) * stats[cols + c];
      dx[i] = scale * (dy[i] - stats[2 * cols + c] * inv_n - xhat * stats[3 * cols + c] * inv_n);
    } else {
      dx[i] = dy[i] * scale;
    }
  }
}

void forward_cuda(DType dt, void* y, void* stats, void* state, const void* x, const void* weight, const void* bias,
                  int64_t rows, int64_t cols, double eps, double momentum, bool batch) {
  if (rows <= 0 || cols <= 0) return;
  cudaStream_t s = stream();
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    T* st = static_cast<T*>(stats);
    T* state_p = static_cast<T*>(state);
    if (batch) {
      const unsigned tiles = unsigned((cols + kTileCols - 1) / kTileCols);
      batch_stats_kernel<T><<<tiles, dim3(kTileCols, kTileRows), 0, s>>>(st, state_p, static_cast<const T*>(x), rows,
                                                                        cols, T(eps), momentum);
      MC_CUDA_LAUNCH_CHECK();
      if (state_p) {
        count_batch_kernel<T><<<1, 1, 0, s>>>(state_p, cols);
        MC_CUDA_LAUNCH_CHECK();
      }
    } else {
      running_stats_kernel<T><<<blocks_for(cols), kThreads, 0, s>>>(st, state_p, cols, T(eps));
      MC_CUDA_LAUNCH_CHECK();
    }
    normalize_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s>>>(
        static_cast<T*>(y), static_cast<const T*>(x), st, static_cast<const T*>(weight), static_cast<const T*>(bias),
        rows, cols);
    MC_CUDA_LAUNCH_CHECK();
  });
}

void backward_cuda(DType dt, void* dx, void* dweight, void* dbias, void* stats, const void* dy, const void* x,
                   const void* weight, int64_t rows, int64_t cols, bool batch, bool acc_weight, bool acc_bias) {
  if (cols <= 0) return;
  cudaStream_t s = stream();
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    T* st = static_cast<T*>(stats);
    const T* dyp = static_cast<const T*>(dy);
    const T* xp = static_cast<const T*>(x);
    if (batch || dweight || dbias) {
      const unsigned tiles = unsigned((cols + kTileCols - 1) / kTileCols);
      batch_norm_sums_kernel<T><<<tiles, dim3(kTileCols, kTileRows), 0, s>>>(
          static_cast<T*>(dweight), static_cast<T*>(dbias), st, dyp, xp, rows, cols, acc_weight, acc_bias);
      MC_CUDA_LAUNCH_CHECK();
    }
    if (dx && rows > 0) {
      batch_norm_dx_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s>>>(static_cast<T*>(dx), dyp, xp, st,
                                                                           static_cast<const T*>(weight), rows, cols,
                                                                           batch);
      MC_CUDA_LAUNCH_CHECK();
    }
  });
}

const BatchNormKernels kBatchNormCuda{&forward_cuda, &backward_cuda};

}  // namespace

const void* batch_norm_kernels_cuda() { return &kBatchNormCuda; }

}  // namespace mc
