// ops/residual.cpp — the residual add y = x + skip (the skip is an earlier value of the network,
// OpSpec.skip; the network sends the output gradient to it). Backend primitives only.
#include "mlpcore/ops.h"

namespace mc {

void residual_forward(Backend& be, DType dt, void* y, const void* x, const void* skip, int64_t n) {
  be.copy(y, x, size_t(n) * dtype_size(dt));
  be.add_inplace(dt, y, skip, n);
}
void residual_backward(Backend& be, DType dt, void* dx, const void* dy, int64_t n) {
  be.copy(dx, dy, size_t(n) * dtype_size(dt));
}

namespace {

int64_t out_width(const OpSpec& s, int64_t in_w, int64_t i) {
  MC_CHECK_VALUE(s.skip >= 0, "Network: op ", i, " (residual_add) needs a skip value");
  return in_w;
}
OpParams params(const OpSpec&, int64_t, int64_t) { return {}; }
OpWork work(const OpSpec&, int64_t, int64_t, DType) { return {}; }

void forward(const OpCall& c) { residual_forward(c.be, c.dt, c.y, c.x, c.skip, c.rows * c.out_w); }
void backward(const OpCall& c, const OpGrads& g) {
  if (g.dx) residual_backward(c.be, c.dt, g.dx, g.dy, c.rows * c.out_w);
}

}  // namespace

extern const OpDef residual_add_op{"residual_add", &out_width, &params, &work, nullptr, &forward, &backward};

}  // namespace mc
