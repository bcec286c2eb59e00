// cuda/loss.cu — the CUDA kernels of the losses and the arg-max count (CPU twin: ops/loss.cpp).
// The value is reduced in two fixed-order passes (per-block partial sums in double, then one
// block) and ADDED to the device double `sum`, as the CPU adds its terms; the element-wise losses
// evaluate loss.h's formulas.
#include <algorithm>
#include <climits>

#include "cuda/common.cuh"
#include "ops/loss.h"

namespace mc {
namespace {

using namespace gpu;

// Sum of one value per thread over a block of kThreads threads, in a fixed order; the result is
// valid in thread 0.
__device__ double block_sum(double v) {
  __shared__ double warp_part[kWarps];
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  double s = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kWarps; ++w) s += warp_part[w];
  return s;
}

// sum[0] += the sum of partial[0..n) — one block, fixed order (second pass of the loss value).
__global__ void add_partials_kernel(double* sum, const double* partial, int n) {
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) sum[0] += s;
}

// Softmax cross-entropy value and gradient, one warp per row of pred[rows, cols]; labels int32.
// grad = (softmax(pred) - onehot) / rows_total; partial[blockIdx.x] = sum of the block's row
// losses (double). CPU twin: ops/loss.cpp cross_entropy_cpu.
template <class T>
__global__ void cross_entropy_kernel(double* partial, T* grad, const T* pred, const int32_t* labels, int64_t rows,
                                     int64_t cols, T inv_b) {
  const int lane = threadIdx.x & 31;
  double total = 0;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* pr = pred + r * cols;
    T* gr = grad + r * cols;
    T m = -INFINITY;
    for (int64_t c = lane; c < cols; c += 32) m = max(m, pr[c]);
    m = warp_max(m);
    T s = 0;
    for (int64_t c = lane; c < cols; c += 32) {
      gr[c] = std::exp(pr[c] - m);
      s += gr[c];
    }
    s = warp_sum(s);
    // log(s) - (x_y - m), as the CPU twin: (m + log s) - x_y loses log s next to a huge m.
    const int32_t y = labels[r];
    if (lane == 0) total += double(std::log(s) - (pr[y] - m));
    const T scale = inv_b / s;
    for (int64_t c = lane; c < cols; c += 32) gr[c] = c == y ? gr[c] * scale - inv_b : gr[c] * scale;
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Element-wise loss F over n = rows*cols values: grad = F::grad and per-block partial sums of
// F::value (double). CPU twin: ops/loss.cpp elementwise_cpu.
template <class F, class T>
__global__ void elementwise_loss_kernel(double* partial, T* grad, const T* pred, const T* t, int64_t n, T scale) {
  double total = 0;
  for (int64_t i = grid_index(); i < n; i += grid_stride()) {
    total += double(F::value(pred[i], t[i]));
    grad[i] = F::grad(pred[i], t[i], scale);
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// count += number of rows of pred[rows, cols] whose first arg-max equals the label, one warp per
// row. CPU twin: ops/loss.cpp count_correct_cpu (std::max_element: the first maximum wins).
template <class T>
__global__ void count_correct_kernel(unsigned long long* count, const T* pred, const int32_t* labels, int64_t rows,
                                     int64_t cols) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* pr = pred + r * cols;
    T best = 0;
    int64_t arg = LLONG_MAX;  // none yet
    for (int64_t c = lane; c < cols; c += 32)
      if (arg == LLONG_MAX || pr[c] > best) best = pr[c], arg = c;
    for (int o = 16; o > 0; o >>= 1) {
      const T ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int64_t oa = __shfl_xor_sync(0xffffffffu, arg, o);
      if (oa != LLONG_MAX && (arg == LLONG_MAX || ob > best || (ob == best && oa < arg))) best = ob, arg = oa;
    }
    if (lane == 0 && arg == labels[r]) atomicAdd(count, 1ull);
  }
}

void forward_backward_cuda(DType dt, LossKind kind, double* sum, void* grad, const void* pred, const void* target,
                           int64_t rows, int64_t cols, int64_t rows_total) {
  std::lock_guard<std::mutex> lock(scratch_mutex());
  cudaStream_t s = stream();
  dtype_dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* g = static_cast<T*>(grad);
    const T* p = static_cast<const T*>(pred);
    const T* t = static_cast<const T*>(target);
    const T scale = T(1) / T(loss_divisor(kind, rows_total, cols));
    const int64_t n = rows * cols;
    unsigned blocks = 1;
    double* partial = nullptr;
    switch (kind) {
      case LossKind::cross_entropy:
        blocks = std::min(blocks_for(rows, kWarps), 1024u);
        partial = static_cast<double*>(scratch(blocks * sizeof(double)));
        cross_entropy_kernel<T><<<blocks, kThreads, 0, s>>>(partial, g, p, static_cast<const int32_t*>(target), rows,
                                                             cols, T(1) / T(rows_total));
        break;
      case LossKind::mse:
        blocks = std::min(blocks_for(n), 1024u);
        partial = static_cast<double*>(scratch(blocks * sizeof(double)));
        elementwise_loss_kernel<MseFormula, T><<<blocks, kThreads, 0, s>>>(partial, g, p, t, n, scale);
        break;
      case LossKind::bce_with_logits:
        blocks = std::min(blocks_for(n), 1024u);
        partial = static_cast<double*>(scratch(blocks * sizeof(double)));
        elementwise_loss_kernel<BceWithLogitsFormula, T><<<blocks, kThreads, 0, s>>>(partial, g, p, t, n, scale);
        break;
    }
    MC_CUDA_LAUNCH_CHECK();
    add_partials_kernel<<<1, kThreads, 0, s>>>(sum, partial, int(blocks));
    MC_CUDA_LAUNCH_CHECK();
  });
}

int64_t count_correct_cuda(DType dt, const void* pred, const int32_t* labels, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return 0;
  std::lock_guard<std::mutex> lock(scratch_mutex());
  cudaStream_t s = stream();
  auto* count = static_cast<unsigned long long*>(small_buffer());
  MC_CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof(*count), s));
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    count_correct_kernel<T><<<blocks_for(rows, kWarps), kThreads, 0, s>>>(count, static_cast<const T*>(pred), labels,
                                                                          rows, cols);
  });
  MC_CUDA_LAUNCH_CHECK();
  unsigned long long k = 0;
  MC_CUDA_CHECK(cudaMemcpyAsync(&k, count, sizeof(k), cudaMemcpyDeviceToHost, s));
  MC_CUDA_CHECK(cudaStreamSynchronize(s));
  return int64_t(k);
}

const LossKernels kLossCuda{&forward_backward_cuda, &count_correct_cuda};

}  // namespace

const void* loss_kernels_cuda() { return &kLossCuda; }

}  // namespace mc
