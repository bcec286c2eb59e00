// ops/linear.cpp — the linear op: GEMMs through the backend, bias and activation through the
// activation kernels (a linear absorbs the activation that follows it). No kernels of its own.
#include "mlpcore/ops.h"

namespace mc {

// z (B,out) = x (B,in) · Wᵀ; W is (out,in), or (in,out) used as is when transposed.
void linear_forward(Backend& be, DType dt, void* z, const void* x, const void* weight, int64_t B, int64_t in,
                    int64_t out, bool transposed, bool fixed_order) {
  if (fixed_order)
    be.gemm_fixed_order(dt, !transposed, B, out, in, x, in, weight, transposed ? out : in, z, out);
  else if (!transposed)
    be.gemm(dt, false, true, B, out, in, 1.0, x, in, weight, in, 0.0, z, out);
  else
    be.gemm(dt, false, false, B, out, in, 1.0, x, in, weight, out, 0.0, z, out);
}

// dW (out,in) (+)= dzᵀ (out,B) · x (B,in); dx (B,in) = dz (B,out) · W (out,in).
// Transposed storage (in,out): dW' = xᵀ · dz, dx = dz · W'ᵀ.
void linear_backward(Backend& be, DType dt, void* dx, void* dweight, const void* dz, const void* x,
                     const void* weight, int64_t B, int64_t in, int64_t out, bool transposed, bool accumulate) {
  const double beta = accumulate ? 1.0 : 0.0;
  if (!transposed) {
    if (dweight) be.gemm(dt, true, false, out, in, B, 1.0, dz, out, x, in, beta, dweight, in);
    if (dx) be.gemm(dt, false, false, B, in, out, 1.0, dz, out, weight, in, 0.0, dx, in);
  } else {
    if (dweight) be.gemm(dt, true, false, in, out, B, 1.0, x, in, dz, out, beta, dweight, out);
    if (dx) be.gemm(dt, false, true, B, in, out, 1.0, dz, out, weight, out, 0.0, dx, in);
  }
}

namespace {

int64_t out_width(const OpSpec& s, int64_t in_w, int64_t i) {
  MC_CHECK_VALUE(s.in_features >= 1 && s.out_features >= 1, "Network: op ", i, " linear needs positive sizes");
  MC_CHECK_VALUE(s.in_features == in_w, "Network: layer ", i, " (linear) expects ", s.in_features,
                 " input features but receives ", in_w);
  return s.out_features;
}
OpParams params(const OpSpec& s, int64_t, int64_t) {
  return {s.in_features * s.out_features, s.has_bias ? s.out_features : 0, 0};
}
// The pre-activation z, when the fused activation's backward needs it (else z is computed in y).
OpWork work(const OpSpec& s, int64_t, int64_t out_w, DType dt) {
  return {s.act.needs_input() ? out_w * int64_t(dtype_size(dt)) : 0, 0};
}
bool absorb(OpSpec& s, const OpSpec& next) {
  if (s.act.kind != ActKind::identity || next.kind != OpKind::activation) return false;
  s.act = next.act;
  return true;
}

void forward(const OpCall& c) {
  const OpSpec& s = c.spec;
  void* z = c.saved ? c.saved : c.y;
  linear_forward(c.be, c.dt, z, c.x, c.weight, c.rows, s.in_features, s.out_features, s.transposed, c.fixed_order);
  activation_forward(c.be, c.dt, s.act, c.y, z, c.bias, c.rows, c.out_w);
}

// dy becomes dz in place (activation backward fused with the bias gradient), then the GEMMs.
void backward(const OpCall& c, const OpGrads& g) {
  const OpSpec& s = c.spec;
  activation_backward(c.be, c.dt, s.act, g.dy, g.dbias, g.dy, c.saved, c.y, g.acc_bias, c.rows, c.out_w);
  linear_backward(c.be, c.dt, g.dx, g.dweight, g.dy, c.x, c.weight, c.rows, s.in_features, s.out_features,
                  s.transposed, g.acc_weight);
}

}  // namespace

extern const OpDef linear_op{"linear", &out_width, &params, &work, &absorb, &forward, &backward};

}  // namespace mc
