// cuda/loss.cu — the CUDA kernels of the losses and the arg-max count (CPU twin: ops/loss.cpp).
// The value is reduced in two fixed-order passes (per-block partial sums in double, then one
// block) and ADDED to the device LossSums, as the CPU adds its terms; the element-wise losses
// evaluate loss.h's formulas. A weighted call (sample or class weights) first adds up its divisor
// Σ w n in one block (weight_total_kernel) into device memory, which the loss kernel reads: no
// synchronisation, no host round trip.
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

// sums += (Σ partial[0..n), own ? *own : own_host) — one block, fixed order (the last pass of a
// loss call).
__global__ void add_partials_kernel(LossSums* sums, const double* partial, int n, const double* own, double own_host) {
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) {
    sums->value += s;
    sums->weight += own ? *own : own_host;
  }
}

// own[0] = Σ_r w_r n_r, n_r = cw[labels[r]] or per_row (one block, fixed order).
// CPU twin: ops/loss.cpp weight_total.
template <class T>
__global__ void weight_total_kernel(double* own, const T* w, const int32_t* labels, const T* cw, double per_row,
                                    int64_t rows) {
  double s = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    s += (w ? double(w[r]) : 1.0) * (cw ? double(cw[labels[r]]) : per_row);
  s = block_sum(s);
  if (threadIdx.x == 0) own[0] = s;
}

// The gradient factor of a row: `scale` when the divisor is known on the host (no sample or class
// weights); else w_r * (1 / D) (1 / D without sample weights), D = `given` when > 0, else this call's
// own Σ w n, which weight_total_kernel left in device memory. CPU twin: the `rs` of ops/loss.cpp.
template <class T>
struct RowScale {
  T scale;
  double given;
  const double* own;  // null: `scale` for every row
  __device__ double divisor() const { return given > 0 ? given : *own; }
  __device__ T row(const T* w, int64_t r, double d) const {
    if (!own) return scale;
    return w ? w[r] * loss_scale<T>(d) : loss_scale<T>(d);
  }
};

// Softmax cross-entropy value and gradient, one warp per row of pred[rows, cols]; labels int32;
// optional sample weights w (rows,), class weights cw (cols,), label smoothing ls. Per row:
// grad = rs (a_sum softmax - a), v = Σ_c a_c (-log softmax_c) (mlpcore/loss.h);
// partial[blockIdx.x] = Σ w_r v_r of the block's rows (double). CPU twin: ops/loss.cpp
// cross_entropy_row / cross_entropy_cpu.
template <class T>
__global__ void cross_entropy_kernel(double* partial, T* grad, const T* pred, const int32_t* labels, const T* w,
                                     const T* cw, T ls, RowScale<T> sc, int64_t rows, int64_t cols) {
  const int lane = threadIdx.x & 31;
  const double d = sc.own ? sc.divisor() : 0.0;
  double total = 0;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows;
       r += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const T* pr = pred + r * cols;
    T* gr = grad + r * cols;
    if (w && w[r] == T(0)) {  // the same for the whole warp: a row of weight 0 is not there
      for (int64_t c = lane; c < cols; c += 32) gr[c] = T(0);
      continue;
    }
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
    const T log_s = std::log(s);
    const T wy = cw ? cw[y] : T(1);
    T v = wy * (log_s - (pr[y] - m));
    T a_sum = wy, spread = 0;
    if (ls > T(0)) {
      spread = ls / T(cols);
      T sl = 0, sw = 0;
      for (int64_t c = lane; c < cols; c += 32) {
        const T wc = cw ? cw[c] : T(1);
        sl += wc * (log_s - (pr[c] - m));
        sw += wc;
      }
      sl = warp_sum(sl);
      sw = warp_sum(sw);
      v = (T(1) - ls) * v + spread * sl;
      a_sum = (T(1) - ls) * wy + spread * sw;
    }
    const T rs = sc.row(w, r, d);
    const T k = rs * a_sum / s;
    const T hit = rs * wy * (T(1) - ls);
    for (int64_t c = lane; c < cols; c += 32) {
      T g = c == y ? gr[c] * k - hit : gr[c] * k;
      if (ls > T(0)) g -= rs * spread * (cw ? cw[c] : T(1));
      gr[c] = g;
    }
    if (lane == 0) total += w ? double(w[r]) * double(v) : double(v);
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Element-wise loss f over n = rows*cols values: grad = f.grad times the row's factor, and
// per-block partial sums of w_r f.value (double). kRows: the row (sample weights) or the column
// (per-column parameters) of each element is needed. CPU twin: ops/loss.cpp elementwise_cpu.
template <class F, class T, bool kRows>
__global__ void elementwise_loss_kernel(double* partial, F f, T* grad, const T* pred, const T* t, const T* w,
                                        RowScale<T> sc, int64_t n, int64_t cols) {
  const double d = sc.own ? sc.divisor() : 0.0;
  double total = 0;
  for (int64_t i = grid_index(); i < n; i += grid_stride()) {
    int64_t c = 0;
    T s = sc.scale;
    double wr = 1;
    if (kRows) {
      const int64_t r = i / cols;
      c = i - r * cols;
      if (w) {
        if (w[r] == T(0)) {
          grad[i] = T(0);
          continue;
        }
        wr = double(w[r]);
      }
      s = sc.row(w, r, d);
    }
    total += wr * double(f.value(pred[i], t[i], c));
    grad[i] = f.grad(pred[i], t[i], c) * s;
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

void forward_backward_cuda(DType dt, const LossSpec& loss, LossSums* sums, void* grad, const void* pred,
                           const void* target, const void* sample_weight, int64_t rows, int64_t cols, double divisor) {
  std::lock_guard<std::mutex> lock(scratch_mutex());
  cudaStream_t s = stream();
  dtype_dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    T* g = static_cast<T*>(grad);
    const T* p = static_cast<const T*>(pred);
    const T* t = static_cast<const T*>(target);
    const T* w = static_cast<const T*>(sample_weight);
    const bool ce = loss.kind == LossKind::cross_entropy;
    const int32_t* labels = ce ? static_cast<const int32_t*>(target) : nullptr;
    const T* cw = ce ? static_cast<const T*>(loss.class_weight) : nullptr;
    const int64_t n = rows * cols;
    const unsigned blocks = std::min(ce ? blocks_for(rows, kWarps) : blocks_for(n), 1024u);
    double* partial = static_cast<double*>(scratch((blocks + 1) * sizeof(double)));
    RowScale<T> sc{T(0), divisor, nullptr};
    double own_host = 0;
    if (loss.plain(sample_weight)) {
      own_host = loss_divisor(loss.kind, rows, cols);
      sc.scale = loss_scale<T>(divisor > 0 ? divisor : own_host);
    } else {
      sc.own = partial + blocks;
      weight_total_kernel<T><<<1, kThreads, 0, s>>>(partial + blocks, w, labels, cw, ce ? 1.0 : double(cols), rows);
      MC_CUDA_LAUNCH_CHECK();
    }
    auto elementwise = [&](auto f) {
      using F = decltype(f);
      if (w || F::kPerColumn)
        elementwise_loss_kernel<F, T, true><<<blocks, kThreads, 0, s>>>(partial, f, g, p, t, w, sc, n, cols);
      else
        elementwise_loss_kernel<F, T, false><<<blocks, kThreads, 0, s>>>(partial, f, g, p, t, w, sc, n, cols);
    };
    switch (loss.kind) {
      case LossKind::cross_entropy:
        cross_entropy_kernel<T><<<blocks, kThreads, 0, s>>>(partial, g, p, labels, w, cw, T(loss.label_smoothing), sc,
                                                             rows, cols);
        break;
      case LossKind::mse: elementwise(MseFormula<T>{}); break;
      case LossKind::l1: elementwise(L1Formula<T>{}); break;
      case LossKind::huber: elementwise(HuberFormula<T>{T(loss.delta)}); break;
      case LossKind::smooth_l1:
        if (loss.beta == 0) elementwise(L1Formula<T>{});  // PyTorch's beta = 0 is l1
        else elementwise(SmoothL1Formula<T>{T(loss.beta)});
        break;
      case LossKind::bce_with_logits:
        if (loss.pos_weight) elementwise(BcePosWeightFormula<T>{static_cast<const T*>(loss.pos_weight)});
        else elementwise(BceWithLogitsFormula<T>{});
        break;
      case LossKind::poisson_nll: elementwise(PoissonNllFormula<T>{loss.log_input, loss.full, T(loss.eps)}); break;
    }
    MC_CUDA_LAUNCH_CHECK();
    add_partials_kernel<<<1, kThreads, 0, s>>>(sums, partial, int(blocks), sc.own, own_host);
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
