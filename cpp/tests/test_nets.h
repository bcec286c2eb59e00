// test_nets.h — small MLPs for the network tests: an arena and its op list, optimizers over
// the arena, and naive back-propagation in double (the reference of every network test).
#pragma once
#include <memory>
#include <vector>

#include "mlpcore/network.h"
#include "test_util.h"

namespace mc_test {

using namespace mc;


// An MLP sizes[0] -> ... -> sizes.back(): Linear, act, Linear, act, ..., Linear (no output
// activation). With `unfused`, a Dropout(p=0) sits between each Linear and its activation, which
// stops the network from fusing them while computing the same function.
struct Mlp {
  std::shared_ptr<ParamArena> arena;
  std::vector<OpSpec> ops;
  std::vector<int64_t> sizes;
  std::vector<int64_t> w_off, b_off;
};

inline Mlp make_mlp(DType dt, const std::vector<int64_t>& sizes, Activation act, uint64_t seed, bool unfused = false) {
  Mlp m;
  m.sizes = sizes;
  int64_t numel = 0;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    m.w_off.push_back(numel), numel += sizes[l] * sizes[l + 1];
    m.b_off.push_back(numel), numel += sizes[l + 1];
  }
  m.arena = std::make_shared<ParamArena>(Device::cpu, dt, numel);
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    // he_uniform weights and small non-zero biases, so bias paths are exercised.
    init_fill(dt, m.arena->param_at(m.w_off[l]), sizes[l] * sizes[l + 1], InitKind::he_uniform, sizes[l],
              sizes[l + 1], seed + l);
    init_fill(dt, m.arena->param_at(m.b_off[l]), sizes[l + 1], InitKind::xavier_uniform, sizes[l], sizes[l + 1],
              seed + 100 + l);
    OpSpec lin;
    lin.kind = OpKind::linear, lin.in_features = sizes[l], lin.out_features = sizes[l + 1];
    lin.weight_off = m.w_off[l], lin.bias_off = m.b_off[l];
    m.ops.push_back(lin);
    if (l + 2 < sizes.size()) {
      if (unfused) {
        OpSpec d;
        d.kind = OpKind::dropout, d.p = 0.0, d.dropout = std::make_shared<DropoutState>();
        m.ops.push_back(d);
      }
      OpSpec a;
      a.kind = OpKind::activation, a.act = act;
      m.ops.push_back(a);
    }
  }
  return m;
}

template <class T>
std::vector<T> arena_params(const ParamArena& a) {
  const T* p = static_cast<const T*>(a.params());
  return std::vector<T>(p, p + a.numel());
}
template <class T>
std::vector<T> arena_grads(const ParamArena& a) {
  const T* p = static_cast<const T*>(a.grads());
  return std::vector<T>(p, p + a.numel());
}

inline OptimParams sgd(double lr, double momentum = 0.0) {
  OptimParams p;
  p.kind = OptimKind::sgd, p.lr = lr, p.momentum = momentum;
  return p;
}
inline OptimParams adam(double lr) {
  OptimParams p;
  p.kind = OptimKind::adam, p.lr = lr;
  return p;
}

inline Optimizer make_optimizer(const Mlp& m, OptimParams p) {
  return Optimizer(Device::cpu, m.arena->dtype(), p, {{m.arena->params(), m.arena->grads(), m.arena->numel()}});
}

// Forward and backward of the MLP in double with naive loops: returns the loss and fills the
// gradient of every parameter in the arena's layout.
inline double naive_step(const Mlp& m, const std::vector<double>& params, Activation act, LossKind loss,
                  const std::vector<double>& x, const std::vector<double>& t, const std::vector<int32_t>& y,
                  int64_t B, std::vector<double>& grads, std::vector<double>* dx = nullptr) {
  const size_t L = m.sizes.size() - 1;
  std::vector<std::vector<double>> h(L + 1), z(L);
  h[0] = x;
  for (size_t l = 0; l < L; ++l) {
    const int64_t in = m.sizes[l], out = m.sizes[l + 1];
    z[l].assign(B * out, 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t o = 0; o < out; ++o) {
        double acc = params[m.b_off[l] + o];
        for (int64_t i = 0; i < in; ++i) acc += h[l][b * in + i] * params[m.w_off[l] + o * in + i];
        z[l][b * out + o] = acc;
      }
    h[l + 1] = z[l];
    if (l + 1 < L)
      for (double& v : h[l + 1]) v = act_apply<double>(act.kind, act.param, v);
  }
  const int64_t oc = m.sizes.back();
  const double value = loss_naive(loss, h[L], t, y, B, oc);
  std::vector<double> g = loss_grad_naive(loss, h[L], t, y, B, oc);  // d loss / d z[L-1]
  grads.assign(params.size(), 0.0);
  for (size_t l = L; l-- > 0;) {
    const int64_t in = m.sizes[l], out = m.sizes[l + 1];
    std::vector<double> gin(B * in, 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t o = 0; o < out; ++o) {
        const double go = g[b * out + o];
        grads[m.b_off[l] + o] += go;
        for (int64_t i = 0; i < in; ++i) {
          grads[m.w_off[l] + o * in + i] += go * h[l][b * in + i];
          gin[b * in + i] += go * params[m.w_off[l] + o * in + i];
        }
      }
    if (l > 0)  // through the activation of layer l-1
      for (int64_t k = 0; k < B * in; ++k)
        gin[k] *= act_derivative<double>(act.kind, act.param, z[l - 1][k], h[l][k]);
    g = std::move(gin);
  }
  if (dx) *dx = g;  // d loss / d x after the first layer
  return value;
}


}  // namespace mc_test
