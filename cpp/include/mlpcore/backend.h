// mlpcore/backend.h — the one interface every device implements, and the one dispatch point.
//
// A Backend has two parts:
//  - generic primitives, virtual: memory, GEMM (and the fixed-order GEMM of batch-invariant
//    inference), row gathers, element-wise add / multiply, the finiteness scan;
//  - op kernels, found through a table: each op family (activation, dropout, maxout, losses,
//    optimizer updates — registry.h) declares a struct of function pointers in its header
//    (ops/<name>.h), and each backend holds one pointer per kernel set, filled when the backend is
//    built from that backend's twin files (ops/<name>.cpp for the CPU, cuda/<name>.cu). An op
//    fetches its kernels with kernels_of<K>(be); a backend that lacks a set fails loudly, naming
//    the set and the backend. So a new op adds no virtual here and no switch anywhere: it adds
//    its kernel struct and one registry line, and device dispatch stays where it was —
//    `backend_for(device)` (src/backend.cpp) picks the backend, the backend's table picks the
//    kernels. (This is ggml's per-backend op table, with the table indexed by kernel set.)
//
// Conventions shared by all backends:
//  - all matrices are row-major and contiguous; `gemm` computes
//        C[M,N] = alpha * op(A) * op(B) + beta * C,  op(X) = X or X^T,
//    with leading dimensions in row-major terms (lda = number of columns of A as stored);
//  - `dt` says whether pointers are float or double; labels are int32;
//  - pointers are device pointers of this backend; nothing here validates inputs.
#pragma once
#include "mlpcore/registry.h"
#include "mlpcore/tensor.h"

namespace mc {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // Memory.
  virtual void* alloc(size_t nbytes) = 0;
  virtual void free(void* p) = 0;
  virtual void copy(void* dst, const void* src, size_t nbytes) = 0;  // within the device
  virtual void upload(void* dst, const void* host, size_t nbytes) = 0;
  virtual void download(void* host, const void* src, size_t nbytes) = 0;
  virtual void fill(DType dt, void* p, int64_t n, double value) = 0;

  // C[M,N] = alpha * op(A) op(B) + beta * C (row-major, see above).
  virtual void gemm(DType dt, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                    const void* A, int64_t lda, const void* B, int64_t ldb, double beta, void* C,
                    int64_t ldc) = 0;
  // C[M,N] = A[M,K] · op(B), every row of C computed on its own with a summation order fixed by
  // K alone: row i of C is bitwise the same whatever the other rows, M and the thread count are
  // (batch-invariant inference). The default is plain gemm (not invariant): the CPU overrides it,
  // other backends document the mode as CPU-only.
  virtual void gemm_fixed_order(DType dt, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A,
                                int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc) {
    gemm(dt, false, trans_b, M, N, K, 1.0, A, lda, B, ldb, 0.0, C, ldc);
  }

  // out[i, :] = src[idx[i], :] for i < rows (mini-batch gather); gather_labels does the same for
  // int32 labels.
  virtual void gather_rows(DType dt, void* out, const void* src, const int64_t* idx, int64_t rows,
                           int64_t cols) = 0;
  virtual void gather_labels(int32_t* out, const int32_t* src, const int64_t* idx, int64_t rows) = 0;
  // y = a * b and y += x, element-wise over n values.
  virtual void mul(DType dt, void* y, const void* a, const void* b, int64_t n) = 0;
  virtual void add_inplace(DType dt, void* y, const void* x, int64_t n) = 0;
  // True when every value is finite.
  virtual bool all_finite(DType dt, const void* x, int64_t n) = 0;

  // The kernels of set `s` on this backend (a pointer to the set's struct), or null.
  const void* kernel_set(KernelSet s) const { return kernels_[int(s)]; }

 protected:
  const void* kernels_[kNumKernelSets] = {};
};

[[noreturn]] void kernels_missing(const Backend& be, KernelSet s);

// The kernels of set K::set on `be`: K is the set's struct of function pointers (ops/<name>.h).
template <class K>
const K& kernels_of(const Backend& be) {
  const void* k = be.kernel_set(K::set);
  if (!k) kernels_missing(be, K::set);
  return *static_cast<const K*>(k);
}

// The single dispatch point: the backend of a device. Throws RuntimeError for "cuda" in a build
// without CUDA, or on a machine without a usable GPU.
Backend& backend_for(Device device);
bool cuda_available();
std::string cuda_unavailable_reason();

}  // namespace mc
