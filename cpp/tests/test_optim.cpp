// test_optim.cpp — Backend::optim_step and Optimizer against a naive scalar reimplementation of
// PyTorch's update rules (torch/optim/{sgd,adam,adamw,rmsprop}.py, single-tensor path, no
// dampening, maximize=False), in float32 and float64, over several steps with changing gradients.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mlpcore/backend.h"
#include "mlpcore/optim.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

// PyTorch's formulas, one scalar at a time, in double. State slots follow optim.h's layout.
struct NaiveOptim {
  OptimParams p;
  std::vector<double> w, buf, m, v, sq, mean;
  int64_t step = 0;

  NaiveOptim(OptimParams params, std::vector<double> w0) : p(params), w(std::move(w0)) {
    const size_t n = w.size();
    buf.assign(n, 0), m.assign(n, 0), v.assign(n, 0), sq.assign(n, 0), mean.assign(n, 0);
  }
  void update(const std::vector<double>& grad) {
    ++step;
    for (size_t i = 0; i < w.size(); ++i) {
      double g = grad[i];
      switch (p.kind) {
        case OptimKind::sgd: {
          if (p.weight_decay != 0) g = g + p.weight_decay * w[i];
          if (p.momentum != 0) {
            buf[i] = step == 1 ? g : p.momentum * buf[i] + g;  // dampening = 0
            g = p.nesterov ? g + p.momentum * buf[i] : buf[i];
          }
          w[i] = w[i] - p.lr * g;
          break;
        }
        case OptimKind::adam:
        case OptimKind::adamw: {
          if (p.kind == OptimKind::adamw)
            w[i] = w[i] * (1 - p.lr * p.weight_decay);
          else if (p.weight_decay != 0)
            g = g + p.weight_decay * w[i];
          m[i] = m[i] + (g - m[i]) * (1 - p.beta1);  // exp_avg.lerp_(grad, 1 - beta1)
          v[i] = v[i] * p.beta2 + (1 - p.beta2) * g * g;
          const double bc1 = 1 - std::pow(p.beta1, double(step)), bc2 = 1 - std::pow(p.beta2, double(step));
          const double denom = std::sqrt(v[i]) / std::sqrt(bc2) + p.eps;
          w[i] = w[i] - (p.lr / bc1) * m[i] / denom;
          break;
        }
        case OptimKind::rmsprop: {
          if (p.weight_decay != 0) g = g + p.weight_decay * w[i];
          sq[i] = sq[i] * p.alpha + (1 - p.alpha) * g * g;
          double avg;
          if (p.centered) {
            mean[i] = mean[i] + (g - mean[i]) * (1 - p.alpha);  // grad_avg.lerp_(grad, 1 - alpha)
            avg = std::sqrt(sq[i] - mean[i] * mean[i]) + p.eps;
          } else {
            avg = std::sqrt(sq[i]) + p.eps;
          }
          if (p.momentum > 0) {
            buf[i] = buf[i] * p.momentum + g / avg;
            w[i] = w[i] - p.lr * buf[i];
          } else {
            w[i] = w[i] - p.lr * g / avg;
          }
          break;
        }
      }
    }
  }
  // The state buffer in optim.h's layout.
  std::vector<double> state() const {
    switch (p.kind) {
      case OptimKind::sgd: return buf;
      case OptimKind::rmsprop: {
        std::vector<double> s = sq;
        s.insert(s.end(), buf.begin(), buf.end());
        s.insert(s.end(), mean.begin(), mean.end());
        return s;
      }
      default: {
        std::vector<double> s = m;
        s.insert(s.end(), v.begin(), v.end());
        return s;
      }
    }
  }
};

struct Config {
  std::string name;
  OptimParams p;
};

std::vector<Config> configs() {
  auto sgd = [](double mom, bool nesterov, double wd) {
    OptimParams p;
    p.kind = OptimKind::sgd, p.lr = 0.1, p.momentum = mom, p.nesterov = nesterov, p.weight_decay = wd;
    return p;
  };
  auto adam = [](OptimKind k, double wd, double b1, double b2, double eps) {
    OptimParams p;
    p.kind = k, p.lr = 0.01, p.weight_decay = wd, p.beta1 = b1, p.beta2 = b2, p.eps = eps;
    return p;
  };
  auto rms = [](bool centered, double mom, double wd) {
    OptimParams p;
    p.kind = OptimKind::rmsprop, p.lr = 0.01, p.alpha = 0.9, p.eps = 1e-8, p.centered = centered, p.momentum = mom,
    p.weight_decay = wd;
    return p;
  };
  return {{"sgd", sgd(0, false, 0)},
          {"sgd_wd", sgd(0, false, 0.05)},
          {"sgd_momentum", sgd(0.9, false, 0)},
          {"sgd_momentum_wd", sgd(0.9, false, 0.05)},
          {"sgd_nesterov", sgd(0.9, true, 0)},
          {"sgd_nesterov_wd", sgd(0.8, true, 0.05)},
          {"adam", adam(OptimKind::adam, 0, 0.9, 0.999, 1e-8)},
          {"adam_wd", adam(OptimKind::adam, 0.1, 0.9, 0.999, 1e-8)},
          {"adam_betas_eps", adam(OptimKind::adam, 0, 0.8, 0.99, 1e-3)},
          {"adamw", adam(OptimKind::adamw, 0.1, 0.9, 0.999, 1e-8)},
          {"adamw_no_wd", adam(OptimKind::adamw, 0, 0.9, 0.999, 1e-8)},
          {"rmsprop", rms(false, 0, 0)},
          {"rmsprop_centered", rms(true, 0, 0)},
          {"rmsprop_momentum_wd", rms(false, 0.9, 0.05)},
          {"rmsprop_centered_momentum_wd", rms(true, 0.9, 0.05)}};
}

template <class T>
class Optim : public ::testing::Test {
 protected:
  Backend& be = backend_for(Device::cpu);
  static constexpr DType dt = dtype_of<T>();
};
TYPED_TEST_SUITE(Optim, FloatTypes);

}  // namespace

// Five steps with a new gradient each step; parameters and state after every step.
TYPED_TEST(Optim, StepMatchesPyTorchFormulas) {
  using T = TypeParam;
  const int64_t n = 257, steps = 5;
  for (const Config& c : configs()) {
    SCOPED_TRACE(c.name);
    std::vector<T> w = uniform<T>(n, 1, -2.0, 2.0), state(size_t(optim_state_slots(c.p) * n), T(0));
    NaiveOptim ref(c.p, to_double(w));
    OptimParams p = c.p;
    for (int64_t s = 1; s <= steps; ++s) {
      const std::vector<T> g = uniform<T>(n, 100 + uint64_t(s), -1.0, 1.0);
      p.step = s;
      optim_step(this->be, this->dt, p, w.data(), g.data(), state.data(), n);
      ref.update(to_double(g));
      EXPECT_LE(max_rel_err(w, ref.w), tol<T>()) << "params after step " << s;
      EXPECT_LE(max_rel_err(state, ref.state()), tol<T>() * 4) << "state after step " << s;
    }
  }
}

// Optimizer over two segments (one flat state buffer): step() increments the step count and
// updates each segment exactly as optim_step on that segment would; reset_state starts over.
TEST(Optimizer, SegmentsShareOneStateBufferAndMatchDirectCalls) {
  Backend& be = backend_for(Device::cpu);
  OptimParams p;
  p.kind = OptimKind::adam, p.lr = 0.05, p.weight_decay = 0.01;
  std::vector<double> w1 = uniform<double>(10, 1), w2 = uniform<double>(23, 2);
  std::vector<double> g1 = uniform<double>(10, 3), g2 = uniform<double>(23, 4);
  std::vector<double> r1 = w1, r2 = w2, s1(20, 0.0), s2(46, 0.0);
  Optimizer opt(Device::cpu, DType::f64, p, {{w1.data(), g1.data(), 10}, {w2.data(), g2.data(), 23}});
  EXPECT_EQ(opt.state_numel(), 2 * (10 + 23));
  for (int s = 1; s <= 3; ++s) {
    opt.step();
    EXPECT_EQ(opt.params().step, s);
    OptimParams q = p;
    q.step = s;
    optim_step(be, DType::f64, q, r1.data(), g1.data(), s1.data(), 10);
    optim_step(be, DType::f64, q, r2.data(), g2.data(), s2.data(), 23);
    EXPECT_EQ(w1, r1);
    EXPECT_EQ(w2, r2);
  }
  const double* st = static_cast<const double*>(opt.state().data());
  EXPECT_TRUE(std::equal(s1.begin(), s1.end(), st));
  EXPECT_TRUE(std::equal(s2.begin(), s2.end(), st + 20));
  opt.reset_state();
  EXPECT_EQ(opt.params().step, 0);
  for (int64_t i = 0; i < opt.state_numel(); ++i) EXPECT_EQ(st[i], 0.0);
}
