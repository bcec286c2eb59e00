// mlpcore/activations.h — the activation functions and their derivatives, as scalar formulas
// shared by every backend (MC_HD makes them callable from CUDA kernels too), so that the CPU
// reference and the GPU kernels evaluate literally the same expressions.
//
// GELU is the exact erf form, 0.5 x (1 + erf(x / sqrt 2)), as PyTorch's default.
// Softmax is row-wise and is handled by the kernels' row loops, not by these scalar helpers.
// The activation op (ops/activation.cpp, cuda/activation.cu) applies them.
#pragma once
#include <cmath>

#include "mlpcore/check.h"
#include "mlpcore/hd.h"

namespace mc {

enum class ActKind : int {
  identity = 0,
  relu = 1,
  leaky_relu = 2,
  sigmoid = 3,
  tanh = 4,
  elu = 5,
  gelu = 6,
  silu = 7,
  softmax = 8,
};

struct Activation {
  ActKind kind = ActKind::identity;
  double param = 0.0;  // leaky_relu: negative slope; elu: alpha

  // Whether the backward pass needs the pre-activation z (otherwise the output a suffices).
  bool needs_input() const {
    return kind == ActKind::leaky_relu || kind == ActKind::elu || kind == ActKind::gelu ||
           kind == ActKind::silu;
  }
};

const char* act_name(ActKind k);

// Numerically stable logistic function: never evaluates exp of a large positive number.
template <class T>
MC_HD T sigmoid_stable(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}

// y = act(x) for the element-wise activations.
template <class T>
MC_HD T act_apply(ActKind k, T param, T x) {
  switch (k) {
    case ActKind::relu: return x > T(0) ? x : T(0);
    case ActKind::leaky_relu: return x > T(0) ? x : param * x;
    case ActKind::sigmoid: return sigmoid_stable(x);
    case ActKind::tanh: return std::tanh(x);
    case ActKind::elu: return x > T(0) ? x : param * std::expm1(x);
    case ActKind::gelu: return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
    case ActKind::silu: return x * sigmoid_stable(x);
    default: return x;
  }
}

// d act / d x at x (the pre-activation) with output a = act(x).
template <class T>
MC_HD T act_derivative(ActKind k, T param, T x, T a) {
  switch (k) {
    case ActKind::relu: return a > T(0) ? T(1) : T(0);
    case ActKind::leaky_relu: return x > T(0) ? T(1) : param;
    case ActKind::sigmoid: return a * (T(1) - a);
    case ActKind::tanh: return T(1) - a * a;
    case ActKind::elu: return x > T(0) ? T(1) : param * std::exp(x);
    case ActKind::gelu: {
      T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
      T pdf = std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
      return cdf + x * pdf;
    }
    case ActKind::silu: {
      T s = sigmoid_stable(x);
      return s * (T(1) + x * (T(1) - s));
    }
    default: return T(1);
  }
}

}  // namespace mc
