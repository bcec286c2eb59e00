// cuda/activation.cu — the CUDA kernels of the activation op (CPU twin: ops/activation.cpp):
// bias + activation forward (element-wise, or softmax one warp per row) and activation backward
// fused with the two-pass, fixed-order bias-gradient reduction. See common.cuh for the conventions.
#include <algorithm>

#include "cuda/common.cuh"
#include "ops/activation.h"

namespace mc {
namespace {

using namespace gpu;

// z[rows, cols] += bias[cols]; a = act(z) for the element-wise activations (a may alias z).
// CPU twin: ops/activation.cpp forward_cpu_t (all cases except softmax).
template <class T>
__global__ void bias_act_kernel(T* z, T* a, const T* bias, int64_t rows, int64_t cols, ActKind kind, T param) {
  const int64_t n = rows * cols;
  for (int64_t i = grid_index(); i < n; i += grid_stride()) {
    T v = z[i];
    if (bias) {
      v += bias[i % cols];
      z[i] = v;
    }
    a[i] = act_apply<T>(kind, param, v);
  }
}

// Row-wise softmax of z[rows, cols] (+ bias) into a, one warp per row. CPU twin:
// ops/activation.cpp forward_cpu_t, case softmax (max subtracted, then normalised by the sum).
template <class T>
__global__ void softmax_rows_kernel(T* z, T* a, const T* bias, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    T* zr = z + r * cols;
    T* ar = a + r * cols;
    T m = -INFINITY;
    for (int64_t c = lane; c < cols; c += 32) {  // each lane touches only its own columns
      if (bias) zr[c] += bias[c];
      m = max(m, zr[c]);
    }
    m = warp_max(m);
    T s = 0;
    for (int64_t c = lane; c < cols; c += 32) {
      ar[c] = std::exp(zr[c] - m);
      s += ar[c];
    }
    const T inv = T(1) / warp_sum(s);
    for (int64_t c = lane; c < cols; c += 32) ar[c] *= inv;
  }
}

// d act / d z times da for one element (z, a may be null when the activation does not need
// them). CPU twin: the switch in ops/activation.cpp backward_cpu_t.
template <class T>
__device__ __forceinline__ T act_backward_elem(ActKind k, T param, T da, const T* z, const T* a, int64_t i) {
  switch (k) {
    case ActKind::identity: return da;
    case ActKind::relu: return a[i] > T(0) ? da : T(0);
    case ActKind::sigmoid: return da * (a[i] * (T(1) - a[i]));
    case ActKind::tanh: return da * (T(1) - a[i] * a[i]);
    default: return da * act_derivative<T>(k, param, z[i], a ? a[i] : T(0));
  }
}

// dz[rows, cols] = da * act'(z, a), element-wise, no bias gradient (dz may alias da).
// CPU twin: ops/activation.cpp backward_cpu_t with dbias == nullptr.
template <class T>
__global__ void act_backward_kernel(T* dz, const T* da, const T* z, const T* a, int64_t n, ActKind kind, T param) {
  for (int64_t i = grid_index(); i < n; i += grid_stride())
    dz[i] = act_backward_elem<T>(kind, param, da[i], z, a, i);
}

// Fused activation backward + first pass of the bias gradient. Block (32, 8): threadIdx.x picks a
// column of a 32-column tile (coalesced rows), threadIdx.y strides over the rows of chunk
// blockIdx.y. Writes dz[rows, cols] and partial[blockIdx.y, cols] = column sums of dz over the
// chunk. CPU twin: ops/activation.cpp backward_cpu_t (dz, and the dbias accumulation loop).
constexpr int kTileCols = 32, kTileRows = 8;
template <class T>
__global__ void act_backward_colsum_kernel(T* dz, T* partial, const T* da, const T* z, const T* a, int64_t rows,
                                           int64_t cols, int64_t rows_per_chunk, ActKind kind, T param) {
  __shared__ T part[kTileRows][kTileCols + 1];
  const int64_t c = int64_t(blockIdx.x) * kTileCols + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = min(rows, r0 + rows_per_chunk);
  T sum = 0;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const int64_t i = r * cols + c;
      const T v = act_backward_elem<T>(kind, param, da[i], z, a, i);
      dz[i] = v;
      sum += v;
    }
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    T s = 0;
    for (int k = 0; k < kTileRows; ++k) s += part[k][threadIdx.x];
    partial[int64_t(blockIdx.y) * cols + c] = s;
  }
}

// Second pass: dbias[cols] (+)= sum over chunks of partial[chunks, cols], fixed order.
// CPU twin: the dbias accumulation of ops/activation.cpp backward_cpu_t.
template <class T>
__global__ void colsum_finalize_kernel(T* dbias, const T* partial, int64_t chunks, int64_t cols, bool accumulate) {
  __shared__ T part[kTileRows][kTileCols + 1];
  const int64_t c = int64_t(blockIdx.x) * kTileCols + threadIdx.x;
  T sum = 0;
  if (c < cols)
    for (int64_t k = threadIdx.y; k < chunks; k += kTileRows) sum += partial[k * cols + c];
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    T s = 0;
    for (int k = 0; k < kTileRows; ++k) s += part[k][threadIdx.x];
    dbias[c] = accumulate ? dbias[c] + s : s;
  }
}

// Softmax backward, one warp per row: dz = a * (da - <da, a>). CPU twin:
// ops/activation.cpp backward_cpu_t, case softmax.
template <class T>
__global__ void softmax_backward_rows_kernel(T* dz, const T* da, const T* a, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* dar = da + r * cols;
    const T* ar = a + r * cols;
    T* dzr = dz + r * cols;
    T dot = 0;
    for (int64_t c = lane; c < cols; c += 32) dot += dar[c] * ar[c];
    dot = warp_sum(dot);
    for (int64_t c = lane; c < cols; c += 32) dzr[c] = ar[c] * (dar[c] - dot);
  }
}

void forward_cuda(DType dt, const Activation& act, void* a, void* z, const void* bias, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  cudaStream_t s = stream();
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    T* zp = static_cast<T*>(z);
    T* ap = static_cast<T*>(a);
    const T* bp = static_cast<const T*>(bias);
    if (act.kind == ActKind::softmax)
      softmax_rows_kernel<T><<<blocks_for(rows, kWarps), kThreads, 0, s>>>(zp, ap, bp, rows, cols);
    else
      bias_act_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s>>>(zp, ap, bp, rows, cols, act.kind, T(act.param));
  });
  MC_CUDA_LAUNCH_CHECK();
}

void backward_cuda(DType dt, const Activation& act, void* dz, void* dbias, const void* da, const void* z,
                   const void* a, bool accumulate, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  cudaStream_t s = stream();
  if (rows <= 0) {  // an empty batch: the bias gradient of nothing is zero
    if (dbias && !accumulate) MC_CUDA_CHECK(cudaMemsetAsync(dbias, 0, size_t(cols) * dtype_size(dt), s));
    return;
  }
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    T* dzp = static_cast<T*>(dz);
    const T* dap = static_cast<const T*>(da);
    const T* zp = static_cast<const T*>(z);
    const T* ap = static_cast<const T*>(a);
    const T param = T(act.param);
    ActKind kind = act.kind;
    if (kind == ActKind::softmax) {  // row-wise part first; then the bias sums of dz (identity)
      softmax_backward_rows_kernel<T><<<blocks_for(rows, kWarps), kThreads, 0, s>>>(dzp, dap, ap, rows, cols);
      MC_CUDA_LAUNCH_CHECK();
      if (!dbias) return;
      kind = ActKind::identity;
      dap = dzp;
    }
    if (!dbias) {
      if (kind == ActKind::identity) {
        if (dzp != dap)
          MC_CUDA_CHECK(cudaMemcpyAsync(dzp, dap, size_t(rows * cols) * sizeof(T), cudaMemcpyDeviceToDevice, s));
        return;
      }
      act_backward_kernel<T><<<blocks_for(rows * cols), kThreads, 0, s>>>(dzp, dap, zp, ap, rows * cols, kind, param);
      MC_CUDA_LAUNCH_CHECK();
      return;
    }
    // Two passes: chunks of rows -> partial column sums -> dbias. Chunks are sized so that the
    // grid has a few blocks per SM, each thread summing >= 8 rows.
    std::lock_guard<std::mutex> lock(scratch_mutex());
    const int64_t tiles = (cols + kTileCols - 1) / kTileCols;
    const int64_t want_blocks = int64_t(ctx().num_sms) * 8;
    int64_t chunks = std::max<int64_t>(1, std::min<int64_t>((rows + 63) / 64, (want_blocks + tiles - 1) / tiles));
    chunks = std::min<int64_t>(chunks, 65535);
    const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
    chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
    T* partial = static_cast<T*>(scratch(size_t(chunks * cols) * sizeof(T)));
    const dim3 block(kTileCols, kTileRows);
    act_backward_colsum_kernel<T><<<dim3(unsigned(tiles), unsigned(chunks)), block, 0, s>>>(
        dzp, partial, dap, zp, ap, rows, cols, rows_per_chunk, kind, param);
    MC_CUDA_LAUNCH_CHECK();
    colsum_finalize_kernel<T><<<unsigned(tiles), block, 0, s>>>(static_cast<T*>(dbias), partial, chunks, cols,
                                                               accumulate);
    MC_CUDA_LAUNCH_CHECK();
  });
}

const ActivationKernels kActivationCuda{&forward_cuda, &backward_cuda};

}  // namespace

const void* activation_kernels_cuda() { return &kActivationCuda; }

}  // namespace mc
