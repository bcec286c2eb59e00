// cpu/cpu_backend.cpp — CPU implementation of the Backend interface.
// Row-major GEMM convention: cblas is called with CblasRowMajor directly, so C = op(A)·op(B)
// with the shapes of backend.h and no transposition tricks.
#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "cpu/blas.h"
#include "cpu/vmath.h"
#include "mlpcore/rng.h"

#define MC_RESTRICT __restrict__

namespace mc {
namespace {


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
void bias_act_forward_cpu(const Activation& act, T* z, T* a, const T* bias, int64_t rows, int64_t cols) {
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
      default:
        for (int64_t c = 0; c < cols; ++c) ar[c] = act_apply<T>(act.kind, param, zr[c]);
    }
  }
}

// dz = da * act'(z, a); dbias (+)= column sums of dz.
template <class T>
void act_backward_bias_grad_cpu(const Activation& act, T* dz, const T* da, const T* z, const T* a, T* dbias,
                                bool accumulate, int64_t rows, int64_t cols) {
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
      // relu, sigmoid, tanh: the network calls these in place (dz == da); see bias_act_forward_cpu.
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
      default:
        for (int64_t c = 0; c < cols; ++c)
          dzr[c] = dar[c] * act_derivative<T>(act.kind, param, zr[c], ar ? ar[c] : T(0));
    }
    if (dbias)
      for (int64_t c = 0; c < cols; ++c) dbias[c] += dzr[c];
  }
}

template <class T>
double loss_cpu(LossKind kind, T* grad, const T* pred, const void* target, int64_t rows, int64_t cols,
                int64_t rows_total) {
  double total = 0;
  if (kind == LossKind::cross_entropy) {
    const int32_t* labels = static_cast<const int32_t*>(target);
    const T inv_b = T(1) / T(rows_total);
    for (int64_t r = 0; r < rows; ++r) {
      const T* pr = pred + r * cols;
      T* gr = grad + r * cols;
      T m = pr[0];
      for (int64_t c = 1; c < cols; ++c) m = std::max(m, pr[c]);
      for (int64_t c = 0; c < cols; ++c) gr[c] = vexp(pr[c] - m);  // vectorised; the sum stays in order
      T s = 0;
      for (int64_t c = 0; c < cols; ++c) s += gr[c];
      // -log_softmax[y] = log(s) - (x_y - m): shifting by the max first keeps the small log(s)
      // exact; (m + log(s)) - x_y would lose it next to a huge m (log 3 -> 0 at m = -1e300).
      const int32_t y = labels[r];
      total += double(std::log(s) - (pr[y] - m));
      const T scale = inv_b / s;
      for (int64_t c = 0; c < cols; ++c) gr[c] *= scale;
      gr[y] -= inv_b;
    }
    return total / double(rows_total);
  }
  const T* t = static_cast<const T*>(target);
  const int64_t n = rows * cols;
  const T inv_n = T(1) / T(rows_total * cols);
  if (kind == LossKind::mse) {
    for (int64_t i = 0; i < n; ++i) {
      const T d = pred[i] - t[i];
      total += double(d * d);
      grad[i] = T(2) * d * inv_n;
    }
  } else {  // bce_with_logits: stable for any x
    for (int64_t i = 0; i < n; ++i) {
      const T x = pred[i];
      total += double(std::max(x, T(0)) - x * t[i] + std::log1p(std::exp(-std::abs(x))));
      grad[i] = (sigmoid_stable(x) - t[i]) * inv_n;
    }
  }
  return total / double(rows_total * cols);
}

// SGD loop with every branch resolved at compile time, so the loop body is straight-line and
// vectorises (one pass: read w, g, buf; write w, buf).
template <class T, bool WD, bool MOM, bool FIRST, bool NESTEROV>
void sgd_loop(T* MC_RESTRICT w, const T* MC_RESTRICT g, T* MC_RESTRICT buf, int64_t n, T lr, T wd, T mom) {
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (WD) d += wd * w[i];
    if (MOM) {
      const T b = FIRST ? d : mom * buf[i] + d;
      buf[i] = b;
      d = NESTEROV ? d + mom * b : b;
    }
    w[i] -= lr * d;
  }
}

template <class T, bool WD>
void sgd_dispatch(const OptimParams& p, T* w, const T* g, T* buf, int64_t n) {
  const T lr = T(p.lr), wd = T(p.weight_decay), mom = T(p.momentum);
  const bool first = p.step <= 1;
  if (mom == T(0)) return sgd_loop<T, WD, false, false, false>(w, g, buf, n, lr, wd, mom);
  if (first)
    return p.nesterov ? sgd_loop<T, WD, true, true, true>(w, g, buf, n, lr, wd, mom)
                      : sgd_loop<T, WD, true, true, false>(w, g, buf, n, lr, wd, mom);
  return p.nesterov ? sgd_loop<T, WD, true, false, true>(w, g, buf, n, lr, wd, mom)
                    : sgd_loop<T, WD, true, false, false>(w, g, buf, n, lr, wd, mom);
}

// Adam / AdamW (DECOUPLED) with PyTorch's update order: m = lerp(m, g, 1-b1),
// v = b2 v + (1-b2) g^2, p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
template <class T, bool WD, bool DECOUPLED>
void adam_loop(const OptimParams& p, T* MC_RESTRICT w, const T* MC_RESTRICT g, T* MC_RESTRICT m,
               T* MC_RESTRICT v, int64_t n) {
  const T lr = T(p.lr), wd = T(p.weight_decay), b1 = T(p.beta1), b2 = T(p.beta2), eps = T(p.eps);
  const T bc1 = T(1) - T(std::pow(p.beta1, double(p.step)));
  const T bc2_sqrt = T(std::sqrt(1.0 - std::pow(p.beta2, double(p.step))));
  const T step_size = lr / bc1, decay = T(1) - lr * wd;
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    T wi = w[i];
    if (DECOUPLED && WD) wi *= decay;
    if (!DECOUPLED && WD) d += wd * wi;
    const T mi = m[i] + (d - m[i]) * (T(1) - b1);
    const T vi = v[i] * b2 + (T(1) - b2) * d * d;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
  }
}

template <class T>
void rmsprop_loop(const OptimParams& p, T* w, const T* g, T* state, int64_t n) {
  T* sq = state;
  T* buf = state + n;
  T* mean = state + 2 * n;
  const T lr = T(p.lr), wd = T(p.weight_decay), alpha = T(p.alpha), eps = T(p.eps), mom = T(p.momentum);
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (wd != T(0)) d += wd * w[i];
    sq[i] = sq[i] * alpha + (T(1) - alpha) * d * d;
    T avg;
    if (p.centered) {
      mean[i] += (d - mean[i]) * (T(1) - alpha);
      avg = std::sqrt(sq[i] - mean[i] * mean[i]) + eps;
    } else {
      avg = std::sqrt(sq[i]) + eps;
    }
    if (mom > T(0)) {
      buf[i] = buf[i] * mom + d / avg;
      w[i] -= lr * buf[i];
    } else {
      w[i] -= lr * (d / avg);
    }
  }
}

template <class T>
void optim_step_cpu(const OptimParams& p, T* w, const T* g, T* state, int64_t n) {
  const bool wd = p.weight_decay != 0.0;
  switch (p.kind) {
    case OptimKind::sgd:
      return wd ? sgd_dispatch<T, true>(p, w, g, state, n) : sgd_dispatch<T, false>(p, w, g, state, n);
    case OptimKind::adam:
      return wd ? adam_loop<T, true, false>(p, w, g, state, state + n, n)
                : adam_loop<T, false, false>(p, w, g, state, state + n, n);
    case OptimKind::adamw:
      return wd ? adam_loop<T, true, true>(p, w, g, state, state + n, n)
                : adam_loop<T, false, true>(p, w, g, state, state + n, n);
    case OptimKind::rmsprop: return rmsprop_loop<T>(p, w, g, state, n);
  }
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu; }

  void* alloc(size_t nbytes) override {
    // 64-byte aligned so vector loads and BLAS packing see aligned rows.
    void* p = nullptr;
    if (posix_memalign(&p, 64, std::max<size_t>(nbytes, 64)) != 0) throw std::bad_alloc();
    return p;
  }
  void free(void* p) override { std::free(p); }
  void copy(void* dst, const void* src, size_t n) override {
    if (n) std::memmove(dst, src, n);
  }
  void upload(void* dst, const void* host, size_t n) override { copy(dst, host, n); }
  void download(void* host, const void* src, size_t n) override { copy(host, src, n); }
  void fill(DType dt, void* p, int64_t n, double value) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      std::fill(static_cast<T*>(p), static_cast<T*>(p) + n, T(value));
    });
  }

  void gemm(DType dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const void* A,
            int64_t lda, const void* B, int64_t ldb, double beta, void* C, int64_t ldc) override {
    // One-row or one-column products (batch-1 inference, a single output unit) go to GEMV: GEMM
    // would pack the whole weight matrix for one row (90% of a batch-1 forward was packing);
    // GEMV streams it once. The output is zeroed first when beta == 0 so that NaN in C is never
    // read, whatever the BLAS's scal does with a zero factor.
    if (M == 1 || N == 1) {
      if (beta == 0.0) {
        const size_t es = dtype_size(dt);
        if (M == 1)
          std::memset(C, 0, size_t(N) * es);
        else
          for (int64_t i = 0; i < M; ++i) std::memset(static_cast<char*>(C) + size_t(i * ldc) * es, 0, es);
      }
      // M == 1: c (N) = op(B)ᵀ a, a = A's row (stride lda when A is stored (K, 1)).
      // N == 1: c (M, stride ldc) = op(A) b, b = B's column (stride ldb when B is stored (K, 1)).
      const bool row = M == 1;
      const void* mat = row ? B : A;
      const void* vec = row ? A : B;
      const int64_t ld = row ? ldb : lda;
      const bool mat_t = row ? !tb : ta;  // gemv op on the stored matrix
      const int64_t rows = row ? (tb ? N : K) : (ta ? K : M), cols = row ? (tb ? K : N) : (ta ? M : K);
      const int64_t incv = row ? (ta ? lda : 1) : (tb ? 1 : ldb), incc = row ? 1 : ldc;
      const auto op = mat_t ? CblasTrans : CblasNoTrans;
      const double b = beta == 0.0 ? 1.0 : beta;  // C was zeroed for beta == 0
      if (dt == DType::f32)
        MC_CBLAS(sgemv)(CblasRowMajor, op, blasint(rows), blasint(cols), float(alpha), static_cast<const float*>(mat),
                        blasint(ld), static_cast<const float*>(vec), blasint(incv), float(b), static_cast<float*>(C),
                        blasint(incc));
      else
        MC_CBLAS(dgemv)(CblasRowMajor, op, blasint(rows), blasint(cols), alpha, static_cast<const double*>(mat),
                        blasint(ld), static_cast<const double*>(vec), blasint(incv), b, static_cast<double*>(C),
                        blasint(incc));
      return;
    }
    const auto opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    if (dt == DType::f32)
      MC_CBLAS(sgemm)(CblasRowMajor, opa, opb, blasint(M), blasint(N), blasint(K), float(alpha),
                      static_cast<const float*>(A), blasint(lda), static_cast<const float*>(B), blasint(ldb),
                      float(beta), static_cast<float*>(C), blasint(ldc));
    else
      MC_CBLAS(dgemm)(CblasRowMajor, opa, opb, blasint(M), blasint(N), blasint(K), alpha,
                      static_cast<const double*>(A), blasint(lda), static_cast<const double*>(B), blasint(ldb),
                      beta, static_cast<double*>(C), blasint(ldc));
  }

  void bias_act_forward(DType dt, const Activation& act, void* z, void* a, const void* bias, int64_t rows,
                        int64_t cols) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      bias_act_forward_cpu<T>(act, static_cast<T*>(z), static_cast<T*>(a), static_cast<const T*>(bias), rows, cols);
    });
  }
  void act_backward_bias_grad(DType dt, const Activation& act, void* dz, const void* da, const void* z,
                              const void* a, void* dbias, bool accumulate, int64_t rows, int64_t cols) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      act_backward_bias_grad_cpu<T>(act, static_cast<T*>(dz), static_cast<const T*>(da), static_cast<const T*>(z),
                                    static_cast<const T*>(a), static_cast<T*>(dbias), accumulate, rows, cols);
    });
  }
  void loss_forward_backward(DType dt, LossKind kind, double* loss_out, void* grad, const void* pred,
                             const void* target, int64_t rows, int64_t cols, int64_t rows_total) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      *loss_out = loss_cpu<T>(kind, static_cast<T*>(grad), static_cast<const T*>(pred), target, rows, cols, rows_total);
    });
  }
  int64_t count_correct(DType dt, const void* pred, const int32_t* labels, int64_t rows,
                        int64_t cols) override {
    int64_t k = 0;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      const T* p = static_cast<const T*>(pred);
      for (int64_t r = 0; r < rows; ++r) {
        const T* pr = p + r * cols;
        k += (std::max_element(pr, pr + cols) - pr) == labels[r];
      }
    });
    return k;
  }
  void optim_step(DType dt, const OptimParams& p, void* param, const void* grad, void* state, int64_t n) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      optim_step_cpu<T>(p, static_cast<T*>(param), static_cast<const T*>(grad), static_cast<T*>(state), n);
    });
  }
  void gather_rows(DType dt, void* out, const void* src, const int64_t* idx, int64_t rows, int64_t cols) override {
    const size_t row_bytes = size_t(cols) * dtype_size(dt);
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(static_cast<char*>(out) + i * row_bytes, static_cast<const char*>(src) + idx[i] * row_bytes,
                  row_bytes);
  }
  void gather_labels(int32_t* out, const int32_t* src, const int64_t* idx, int64_t rows) override {
    for (int64_t i = 0; i < rows; ++i) out[i] = src[idx[i]];
  }
  void dropout_forward(DType dt, void* y, void* mask, const void* x, int64_t n, double p, uint64_t seed,
                       uint64_t offset) override {
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
  void mul(DType dt, void* y, const void* a, const void* b, int64_t n) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      for (int64_t i = 0; i < n; ++i) static_cast<T*>(y)[i] = static_cast<const T*>(a)[i] * static_cast<const T*>(b)[i];
    });
  }
  void add_inplace(DType dt, void* y, const void* x, int64_t n) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      for (int64_t i = 0; i < n; ++i) static_cast<T*>(y)[i] += static_cast<const T*>(x)[i];
    });
  }
  void maxout_forward(DType dt, void* y, int32_t* idx, const void* x, int64_t rows, int64_t cols,
                      int64_t pieces) override {
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
  void maxout_backward(DType dt, void* dx, const void* dy, const int32_t* idx, int64_t rows, int64_t cols,
                       int64_t pieces) override {
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      T* dxs = static_cast<T*>(dx);
      const T* dys = static_cast<const T*>(dy);
      std::fill(dxs, dxs + rows * cols * pieces, T(0));
      for (int64_t i = 0; i < rows * cols; ++i) dxs[i * pieces + idx[i]] = dys[i];
    });
  }
  bool all_finite(DType dt, const void* x, int64_t n) override {
    bool ok = true;
    dtype_dispatch(dt, [&](auto t) {
      using T = decltype(t);
      const T* xs = static_cast<const T*>(x);
      // |x| <= max is false exactly for NaN and +-inf. An integer OR reduction vectorises; a
      // floating-point sum would not (strict FP order makes it one serial chain of adds).
      const T big = std::numeric_limits<T>::max();
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) bad |= !(std::fabs(xs[i]) <= big);
      ok = bad == 0;
    });
    return ok;
  }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend be;
  return be;
}

void cpu_set_num_threads(int n) { MC_OPENBLAS(set_num_threads)(n); }
int cpu_get_num_threads() { return MC_OPENBLAS(get_num_threads)(); }
std::string cpu_blas_info() {
  return std::string(MC_OPENBLAS(get_config)()) + " core=" + MC_OPENBLAS(get_corename)();
}

}  // namespace mc
