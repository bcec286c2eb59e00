// mlpcore/backend.h — the one interface every device implements.
// Layers, losses, optimizers and the network call only these primitives; `backend_for`
// (src/backend.cpp) is the single place that dispatches on the device.
//
// Conventions shared by all backends:
//  - all matrices are row-major and contiguous; `gemm` computes
//        C[M,N] = alpha * op(A) * op(B) + beta * C,  op(X) = X or X^T,
//    with leading dimensions in row-major terms (lda = number of columns of A as stored);
//  - `dt` says whether pointers are float or double; labels are int32;
//  - pointers are device pointers of this backend; nothing here validates inputs.
#pragma once
#include "mlpcore/activations.h"
#include "mlpcore/loss.h"
#include "mlpcore/optim.h"
#include "mlpcore/tensor.h"

namespace mc {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // Memory.
  virtual void* alloc(size_t nbytes) = 0;
  virtual void free(void* p) = 0;
  virtual void copy(void* dst, const void* src, size_t nbytes) = 0;   // within the device
  virtual void upload(void* dst, const void* host, size_t nbytes) = 0;
  virtual void download(void* host, const void* src, size_t nbytes) = 0;
  virtual void fill(DType dt, void* p, int64_t n, double value) = 0;
  virtual void synchronize() {}

  // C[M,N] = alpha * op(A) op(B) + beta * C (row-major, see above).
  virtual void gemm(DType dt, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                    const void* A, int64_t lda, const void* B, int64_t ldb, double beta, void* C,
                    int64_t ldc) = 0;

  // z[rows,cols] += bias[cols] (bias may be null); a = act(z). `a` may alias `z`.
  virtual void bias_act_forward(DType dt, const Activation& act, void* z, void* a, const void* bias,
                                int64_t rows, int64_t cols) = 0;
  // dz = da * act'(z, a); if dbias: dbias[cols] (+)= column sums of dz ("+=" when accumulate).
  // dz may alias da. z may be null when act.needs_input() is false.
  virtual void act_backward_bias_grad(DType dt, const Activation& act, void* dz, const void* da,
                                      const void* z, const void* a, void* dbias, bool accumulate,
                                      int64_t rows, int64_t cols) = 0;

  // Loss value and gradient in one pass (mean reduction). `target` is int32 labels (rows,) for
  // cross-entropy and a (rows, cols) array of dt otherwise. grad (rows, cols) = d(loss)/d(pred).
  // The value is written to *loss_out (a double in device memory); `rows_total` is the divisor
  // of the mean (the whole batch when a batch is processed in pieces).
  virtual void loss_forward_backward(DType dt, LossKind kind, double* loss_out, void* grad,
                                     const void* pred, const void* target, int64_t rows, int64_t cols,
                                     int64_t rows_total) = 0;
  // Number of rows whose arg-max equals the label (classification accuracy); synchronises.
  virtual int64_t count_correct(DType dt, const void* pred, const int32_t* labels, int64_t rows,
                                int64_t cols) = 0;

  // One optimizer step over n contiguous parameters. `state` holds optim_state_slots(p) * n values.
  virtual void optim_step(DType dt, const OptimParams& p, void* param, const void* grad, void* state,
                          int64_t n) = 0;

  // out[i, :] = src[idx[i], :] for i < rows (mini-batch gather); gather_labels does the same for
  // int32 labels.
  virtual void gather_rows(DType dt, void* out, const void* src, const int64_t* idx, int64_t rows,
                           int64_t cols) = 0;
  virtual void gather_labels(int32_t* out, const int32_t* src, const int64_t* idx, int64_t rows) = 0;

  // Inverted dropout: mask[i] = keep ? 1/(1-p) : 0 from a counter-based RNG (seed, offset + i);
  // y = x * mask. Backward is dx = dy * mask.
  virtual void dropout_forward(DType dt, void* y, void* mask, const void* x, int64_t n, double p,
                               uint64_t seed, uint64_t offset) = 0;
  virtual void mul(DType dt, void* y, const void* a, const void* b, int64_t n) = 0;
  // y += x (n elements).
  virtual void add_inplace(DType dt, void* y, const void* x, int64_t n) = 0;
  // Maxout: x (rows, cols*pieces) viewed as groups of `pieces` consecutive values;
  // y[r,c] = max over the group, argmax stored in idx (int32). Backward scatters dy to the winner.
  virtual void maxout_forward(DType dt, void* y, int32_t* idx, const void* x, int64_t rows, int64_t cols,
                              int64_t pieces) = 0;
  virtual void maxout_backward(DType dt, void* dx, const void* dy, const int32_t* idx, int64_t rows,
                               int64_t cols, int64_t pieces) = 0;
  // True when every value is finite.
  virtual bool all_finite(DType dt, const void* x, int64_t n) = 0;
};

// The single dispatch point: the backend of a device. Throws RuntimeError for "cuda" in a build
// without CUDA, or on a machine without a usable GPU.
Backend& backend_for(Device device);
bool cuda_available();
std::string cuda_unavailable_reason();

}  // namespace mc
