// ops/maxout.cpp — the maxout op (the max over groups of `pieces` consecutive inputs; Python
// lowers Maxout to a linear of units*pieces outputs followed by this op): its free functions, its
// OpDef and its CPU kernels (CUDA twin: cuda/maxout.cu).
#include "ops/maxout.h"

#include <algorithm>

namespace mc {

void maxout_forward(Backend& be, DType dt, void* y, int32_t* idx, const void* x, int64_t rows, int64_t cols,
                    int64_t pieces) {
  kernels_of<MaxoutKernels>(be).forward(dt, y, idx, x, rows, cols, pieces);
}
void maxout_backward(Backend& be, DType dt, void* dx, const void* dy, const int32_t* idx, int64_t rows,
                     int64_t cols, int64_t pieces) {
  kernels_of<MaxoutKernels>(be).backward(dt, dx, dy, idx, rows, cols, pieces);
}

namespace {

void forward_cpu(DType dt, void* y, int32_t* idx, const void* x, int64_t rows, int64_t cols, int64_t pieces) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    for (int64_t i = 0; i < rows * cols; ++i) {
      const T* g = xs + i * pieces;
      int32_t best = 0;
      for (int32_t k = 1; k < pieces; ++k)
        if (g[k] > g[best]) best = k;
      ys[i] = g[best];
      idx[i] = best;
    }
  });
}
void backward_cpu(DType dt, void* dx, const void* dy, const int32_t* idx, int64_t rows, int64_t cols,
                  int64_t pieces) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    T* dxs = static_cast<T*>(dx);
    const T* dys = static_cast<const T*>(dy);
    std::fill(dxs, dxs + rows * cols * pieces, T(0));
    for (int64_t i = 0; i < rows * cols; ++i) dxs[i * pieces + idx[i]] = dys[i];
  });
}

const MaxoutKernels kMaxoutCpu{&forward_cpu, &backward_cpu};

int64_t out_width(const OpSpec& s, int64_t in_w, int64_t) {
  MC_CHECK_VALUE(s.pieces >= 1 && in_w % s.pieces == 0, "Network: maxout width ", in_w,
                 " is not a multiple of pieces=", s.pieces);
  return in_w / s.pieces;
}
OpParams params(const OpSpec&, int64_t, int64_t) { return {}; }
OpWork work(const OpSpec&, int64_t, int64_t out_w, DType) { return {out_w * int64_t(sizeof(int32_t)), 0}; }

void forward(const OpCall& c) {
  maxout_forward(c.be, c.dt, c.y, static_cast<int32_t*>(c.saved), c.x, c.rows, c.out_w, c.spec.pieces);
}
void backward(const OpCall& c, const OpGrads& g) {
  if (g.dx)
    maxout_backward(c.be, c.dt, g.dx, g.dy, static_cast<const int32_t*>(c.saved), c.rows, c.out_w, c.spec.pieces);
}

}  // namespace

const void* maxout_kernels_cpu() { return &kMaxoutCpu; }

extern const OpDef maxout_op{"maxout", &out_width, &params, &work, nullptr, &forward, &backward};

}  // namespace mc
