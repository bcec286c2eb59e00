// ops/activation.cpp — the activation op (element-wise activations and row-wise softmax): its
// free functions, its OpDef, and its CPU kernels (CUDA twin: cuda/activation.cu). The kernels
// fuse the bias of a preceding linear into the forward pass and the bias gradient into the
// backward pass. Formulas: mlpcore/activations.h; float32 transcendental functions through
// cpu/vmath.h (vectorised), float64 through libm.
//
// Every kernel treats rows independently and an element's value does not depend on where it sits
// in the row (the vectorised body and the scalar tail evaluate the same expressions), so batch
// composition never changes an output row (batch-invariant inference relies on it).
#include "ops/activation.h"

#include <algorithm>
#include <cstring>

#include "cpu/vmath.h"

namespace mc {

const char* act_name(ActKind k) {
  switch (k) {
    case ActKind::identity: return "identity";
    case ActKind::relu: return "relu";
    case ActKind::leaky_relu: return "leaky_relu";
    case ActKind::sigmoid: return "sigmoid";
    case ActKind::tanh: return "tanh";
    case ActKind::elu: return "elu";
    case ActKind::gelu: return "gelu";
    case ActKind::silu: return "silu";
    case ActKind::softmax: return "softmax";
  }
  return "?";
}

void activation_forward(Backend& be, DType dt, const Activation& act, void* a, void* z, const void* bias,
                        int64_t rows, int64_t cols) {
  kernels_of<ActivationKernels>(be).forward(dt, act, a, z, bias, rows, cols);
}

void activation_backward(Backend& be, DType dt, const Activation& act, void* dz, void* dbias, const void* da,
                         const void* z, const void* a, bool accumulate, int64_t rows, int64_t cols) {
  kernels_of<ActivationKernels>(be).backward(dt, act, dz, dbias, da, z, a, accumulate, rows, cols);
}

namespace {

// ---- CPU kernels ------------------------------------------------------------------------------

// out[c] = f(in[c]) for c < n. The network runs some activations in place (out == in); with two
// pointers that may alias, GCC versions the loop on an overlap check that fails for out == in
// and falls back to scalar code, so the in-place case gets its own single-pointer loop.
template <class T, class F>
inline void map_row(T* out, const T* in, int64_t n, F f) {
  if (out == in)
    for (int64_t c = 0; c < n; ++c) out[c] = f(out[c]);
  else
    for (int64_t c = 0; c < n; ++c) out[c] = f(in[c]);
}

// z (rows, cols) += bias; a = act(z). Softmax is per row with the max subtracted.
template <class T>
void forward_cpu_t(const Activation& act, T* a, T* z, const T* bias, int64_t rows, int64_t cols) {
  const T param = T(act.param);
  for (int64_t r = 0; r < rows; ++r) {
    T* zr = z + r * cols;
    T* ar = a + r * cols;
    if (bias)
      for (int64_t c = 0; c < cols; ++c) zr[c] += bias[c];
    switch (act.kind) {
      case ActKind::identity:
        if (ar != zr) std::memcpy(ar, zr, sizeof(T) * cols);
        break;
      case ActKind::relu:
        // The network runs relu in place (a == z): one pointer lets the loop vectorise without
        // the overlap check, which fails for a == z and falls back to scalar code.
        if (ar == zr)
          for (int64_t c = 0; c < cols; ++c) zr[c] = zr[c] > T(0) ? zr[c] : T(0);
        else
          for (int64_t c = 0; c < cols; ++c) ar[c] = zr[c] > T(0) ? zr[c] : T(0);
        break;
      case ActKind::softmax: {
        T m = zr[0];
        for (int64_t c = 1; c < cols; ++c) m = std::max(m, zr[c]);
        for (int64_t c = 0; c < cols; ++c) ar[c] = vexp(zr[c] - m);  // vectorised; the sum stays in order
        T s = 0;
        for (int64_t c = 0; c < cols; ++c) s += ar[c];
        const T inv = T(1) / s;
        for (int64_t c = 0; c < cols; ++c) ar[c] *= inv;
        break;
      }
      // Transcendental activations through vmath.h (vectorised in float32; libm in float64).
      case ActKind::leaky_relu: map_row(ar, zr, cols, [param](T x) { return x > T(0) ? x : param * x; }); break;
      case ActKind::elu: map_row(ar, zr, cols, [param](T x) { return x > T(0) ? x : param * vexpm1(x); }); break;
      case ActKind::sigmoid: map_row(ar, zr, cols, [](T x) { return vsigmoid(x); }); break;
      case ActKind::silu: map_row(ar, zr, cols, [](T x) { return x * vsigmoid(x); }); break;
      case ActKind::tanh: map_row(ar, zr, cols, [](T x) { return vtanh(x); }); break;
      case ActKind::gelu:
        map_row(ar, zr, cols, [](T x) { return T(0.5) * x * (T(1) + verf(x * T(0.70710678118654752440))); });
        break;
    }
  }
}

// dz = da * act'(z, a); dbias (+)= column sums of dz.
template <class T>
void backward_cpu_t(const Activation& act, T* dz, T* dbias, const T* da, const T* z, const T* a, bool accumulate,
                    int64_t rows, int64_t cols) {
  const T param = T(act.param);
  if (dbias && !accumulate) std::fill(dbias, dbias + cols, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    T* dzr = dz + r * cols;
    const T* dar = da + r * cols;
    const T* ar = a ? a + r * cols : nullptr;
    const T* zr = z ? z + r * cols : nullptr;
    switch (act.kind) {
      case ActKind::identity:
        if (dzr != dar) std::memcpy(dzr, dar, sizeof(T) * cols);
        break;
      // relu, sigmoid, tanh: the network calls these in place (dz == da); see forward_cpu_t.
      case ActKind::relu:
        if (dzr == dar) {
          for (int64_t c = 0; c < cols; ++c) dzr[c] = ar[c] > T(0) ? dzr[c] : T(0);
        } else {
          // Both loads unconditional: with `ar[c] > 0 ? dar[c] : 0` the load of dar[c] is
          // conditional and GCC keeps a branchy scalar loop; this form vectorises (10x at 512x4096).
          for (int64_t c = 0; c < cols; ++c) {
            const T d = dar[c], av = ar[c];
            dzr[c] = av > T(0) ? d : T(0);
          }
        }
        break;
      case ActKind::sigmoid:
        if (dzr == dar)
          for (int64_t c = 0; c < cols; ++c) dzr[c] *= ar[c] * (T(1) - ar[c]);
        else
          for (int64_t c = 0; c < cols; ++c) dzr[c] = dar[c] * (ar[c] * (T(1) - ar[c]));
        break;
      case ActKind::tanh:
        if (dzr == dar)
          for (int64_t c = 0; c < cols; ++c) dzr[c] *= T(1) - ar[c] * ar[c];
        else
          for (int64_t c = 0; c < cols; ++c) dzr[c] = dar[c] * (T(1) - ar[c] * ar[c]);
        break;
      case ActKind::softmax: {
        T dot = 0;
        for (int64_t c = 0; c < cols; ++c) dot += dar[c] * ar[c];
        for (int64_t c = 0; c < cols; ++c) dzr[c] = ar[c] * (dar[c] - dot);
        break;
      }
      case ActKind::silu:
        for (int64_t c = 0; c < cols; ++c) {
          const T x = zr[c], sg = vsigmoid(x);
          dzr[c] = dar[c] * (sg * (T(1) + x * (T(1) - sg)));
        }
        break;
      case ActKind::gelu:
        for (int64_t c = 0; c < cols; ++c) {
          const T x = zr[c];
          const T cdf = T(0.5) * (T(1) + verf(x * T(0.70710678118654752440)));
          const T pdf = vexp(T(-0.5) * x * x) * T(0.39894228040143267794);
          dzr[c] = dar[c] * (cdf + x * pdf);
        }
        break;
      case ActKind::leaky_relu:
        for (int64_t c = 0; c < cols; ++c) {
          const T x = zr[c], d = dar[c];
          dzr[c] = x > T(0) ? d : d * param;
        }
        break;
      case ActKind::elu:
        for (int64_t c = 0; c < cols; ++c) {
          const T x = zr[c], d = dar[c], e = param * vexp(x);
          dzr[c] = x > T(0) ? d : d * e;
        }
        break;
    }
    if (dbias)
      for (int64_t c = 0; c < cols; ++c) dbias[c] += dzr[c];
  }
}

void forward_cpu(DType dt, const Activation& act, void* a, void* z, const void* bias, int64_t rows, int64_t cols) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    forward_cpu_t<T>(act, static_cast<T*>(a), static_cast<T*>(z), static_cast<const T*>(bias), rows, cols);
  });
}
void backward_cpu(DType dt, const Activation& act, void* dz, void* dbias, const void* da, const void* z,
                  const void* a, bool accumulate, int64_t rows, int64_t cols) {
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    backward_cpu_t<T>(act, static_cast<T*>(dz), static_cast<T*>(dbias), static_cast<const T*>(da),
                      static_cast<const T*>(z), static_cast<const T*>(a), accumulate, rows, cols);
  });
}

const ActivationKernels kActivationCpu{&forward_cpu, &backward_cpu};

// ---- the op -----------------------------------------------------------------------------------

int64_t out_width(const OpSpec&, int64_t in_w, int64_t) { return in_w; }
OpParams params(const OpSpec&, int64_t, int64_t) { return {}; }
OpWork work(const OpSpec&, int64_t, int64_t, DType) { return {}; }  // backward reads x and y

void forward(const OpCall& c) {
  activation_forward(c.be, c.dt, c.spec.act, c.y, const_cast<void*>(c.x), nullptr, c.rows, c.out_w);
}
void backward(const OpCall& c, const OpGrads& g) {
  if (g.dx) activation_backward(c.be, c.dt, c.spec.act, g.dx, nullptr, g.dy, c.x, c.y, false, c.rows, c.out_w);
}

}  // namespace

const void* activation_kernels_cpu() { return &kActivationCpu; }

extern const OpDef activation_op{"activation", &out_width, &params, &work, nullptr, &forward, &backward};

}  // namespace mc
