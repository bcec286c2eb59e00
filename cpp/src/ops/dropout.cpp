// ops/dropout.cpp — the dropout op (inverted dropout from a counter-based RNG): its free
// functions, its OpDef and its CPU kernel (CUDA twin: cuda/dropout.cu). The mask of element i of
// a call is a pure function of (seed, counter + i), so the module path, the compiled network and
// both backends draw the same masks.
#include "ops/dropout.h"

#include "mlpcore/rng.h"

namespace mc {

void dropout_forward(Backend& be, DType dt, void* y, void* mask, const void* x, int64_t n, double p,
                     DropoutState& st) {
  kernels_of<DropoutKernels>(be).forward(dt, y, mask, x, n, p, st.seed, st.counter);
  st.counter += uint64_t(n);
}

void dropout_backward(Backend& be, DType dt, void* dx, const void* dy, const void* mask, int64_t n) {
  be.mul(dt, dx, dy, mask, n);
}

namespace {

void forward_cpu(DType dt, void* y, void* mask, const void* x, int64_t n, double p, uint64_t seed, uint64_t offset) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    const T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
    T* m = static_cast<T*>(mask);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    const uint64_t key = splitmix64(seed);
    for (int64_t i = 0; i < n; ++i) {
      m[i] = u01(splitmix64(key ^ (offset + uint64_t(i)))) >= p ? scale : T(0);
      ys[i] = xs[i] * m[i];
    }
  });
}

const DropoutKernels kDropoutCpu{&forward_cpu};

int64_t out_width(const OpSpec& s, int64_t in_w, int64_t i) {
  MC_CHECK_VALUE(s.dropout && s.p >= 0.0 && s.p < 1.0, "Network: op ", i,
                 " dropout needs its RNG state and p in [0, 1), got p=", s.p);
  return in_w;
}
OpParams params(const OpSpec&, int64_t, int64_t) { return {}; }
OpWork work(const OpSpec&, int64_t, int64_t out_w, DType dt) { return {out_w * int64_t(dtype_size(dt)), 0}; }

bool active(const OpCall& c) { return c.training && c.spec.p > 0; }

void forward(const OpCall& c) {
  const int64_t n = c.rows * c.out_w;
  if (active(c)) {
    // The masks of rows [row0, row0 + rows) of the whole batch; the stream then moves past the
    // whole batch (OpCall: a rank of a data-parallel step runs only its rows).
    DropoutState& st = *c.spec.dropout;
    const uint64_t base = st.counter;
    st.counter = base + uint64_t(c.row0 * c.out_w);
    dropout_forward(c.be, c.dt, c.y, c.saved, c.x, n, c.spec.p, st);
    st.counter = base + uint64_t(c.whole_rows() * c.out_w);
  } else
    c.be.copy(c.y, c.x, size_t(n) * dtype_size(c.dt));
}
void backward(const OpCall& c, const OpGrads& g) {
  if (!g.dx) return;
  const int64_t n = c.rows * c.out_w;
  if (active(c))
    dropout_backward(c.be, c.dt, g.dx, g.dy, c.saved, n);
  else
    c.be.copy(g.dx, g.dy, size_t(n) * dtype_size(c.dt));
}

}  // namespace

const void* dropout_kernels_cpu() { return &kDropoutCpu; }

extern const OpDef dropout_op{"dropout", &out_width, &params, &work, nullptr, &forward, &backward};

}  // namespace mc
