// CUDA backend against the CPU backend (the reference), one primitive at a time, both dtypes
// (ggml's test-backend-ops in spirit). Built only with the CUDA backend; every test skips when no
// usable GPU is present (the reason is printed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda_test_util.h"
#include "mlpcore/backend.h"
#include "mlpcore/loss.h"
#include "mlpcore/ops.h"
#include "mlpcore/optim.h"
#include "mlpcore/rng.h"

using namespace mc;
using namespace mc_test;

namespace {

template <class T>
std::vector<T> randn(size_t n, uint64_t seed, double scale = 1.0) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = T(scale * (2.0 * u01(splitmix64(seed * 1000003 + i)) - 1.0));
  return v;
}

// max |a - b| / max(|b|, tiny): the error measure of mc.gradcheck.
template <class T>
double rel_err(const std::vector<T>& a, const std::vector<T>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / std::max(den, 1e-30);
}

template <class T>
double tol() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}
template <class T>
DType dtype() {
  return sizeof(T) == 4 ? DType::f32 : DType::f64;
}

// The op calls with explicit arguments (the CPU reference and the GPU take the same ones).
void dropout_at(Backend& be, DType dt, void* y, void* mask, const void* x, int64_t n, double p, uint64_t seed,
                uint64_t offset) {
  DropoutState st{seed, offset};
  dropout_forward(be, dt, y, mask, x, n, p, st);
}
void optim_step(Backend& be, DType dt, const OptimParams& p, void* param, const void* grad, void* state, int64_t n) {
  kernels_of<OptimKernels>(be).step(dt, p, param, grad, state, n);
}
// The loss sums of a batch that is part of a mean over rows_total rows; `sums` in be's memory.
void loss_sum(Backend& be, DType dt, LossKind kind, LossSums* sums, void* grad, const void* pred, const void* target,
              int64_t rows, int64_t cols, int64_t rows_total) {
  be.fill(DType::f64, sums, 2, 0.0);
  loss_forward_backward(be, dt, kind, sums, grad, pred, target, nullptr, rows, cols, loss_divisor(kind, rows_total, cols));
}

template <class T>
class CudaVsCpu : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CudaVsCpu, Types);

TYPED_TEST(CudaVsCpu, GemmAllTransposes) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const int64_t M = 37, N = 29, K = 45;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int64_t lda = ta ? M : K, ldb = tb ? K : N;
      auto A = randn<T>(M * K, 1), B = randn<T>(K * N, 2), C = randn<T>(M * N, 3);
      Dev<T> dA(A), dB(B), dC(C);
      cpu().gemm(dtype<T>(), ta, tb, M, N, K, 0.7, A.data(), lda, B.data(), ldb, 0.3, C.data(), N);
      gpu().gemm(dtype<T>(), ta, tb, M, N, K, 0.7, dA.p(), lda, dB.p(), ldb, 0.3, dC.p(), N);
      EXPECT_LT(rel_err(dC.host(), C), tol<T>()) << "ta=" << ta << " tb=" << tb;
    }
  // K == 0: C = beta * C.
  auto C = randn<T>(M * N, 4);
  Dev<T> dC(C);
  gpu().gemm(dtype<T>(), false, false, M, N, 0, 1.0, dC.p(), 1, dC.p(), N, 0.5, dC.p(), N);
  for (auto& c : C) c *= T(0.5);
  EXPECT_LT(rel_err(dC.host(), C), tol<T>());
}

const ActKind kActs[] = {ActKind::identity, ActKind::relu, ActKind::leaky_relu, ActKind::sigmoid, ActKind::tanh,
                         ActKind::elu,      ActKind::gelu, ActKind::silu,       ActKind::softmax};

TYPED_TEST(CudaVsCpu, BiasActForwardEveryActivation) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const int64_t rows = 67, cols = 45;  // > one 32-column tile, not a multiple of a warp
  for (ActKind k : kActs)
    for (int with_bias = 0; with_bias < 2; ++with_bias)
      for (int alias = 0; alias < 2; ++alias) {
        const Activation act{k, k == ActKind::elu ? 0.7 : 0.05};
        auto z = randn<T>(rows * cols, 5, 3.0), bias = randn<T>(cols, 6), a(z);
        Dev<T> dz(z), dbias(bias), da(rows * cols);
        T* ap = alias ? z.data() : a.data();
        activation_forward(cpu(), dtype<T>(), act, ap, z.data(), with_bias ? bias.data() : nullptr, rows, cols);
        activation_forward(gpu(), dtype<T>(), act, alias ? dz.p() : da.p(), dz.p(), with_bias ? dbias.p() : nullptr, rows, cols);
        const std::vector<T> out_cpu(ap, ap + rows * cols);
        EXPECT_LT(rel_err(alias ? dz.host() : da.host(), out_cpu), tol<T>())
            << act_name(k) << " bias=" << with_bias << " alias=" << alias;
        if (!alias) EXPECT_LT(rel_err(dz.host(), z), tol<T>()) << act_name(k) << ": z after the bias";
      }
}

TYPED_TEST(CudaVsCpu, ActBackwardBiasGradEveryActivation) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  for (int64_t rows : {1, 67, 3000})  // one chunk; several; many chunks
    for (ActKind k : kActs)
      for (int mode = 0; mode < 3; ++mode) {  // 0: no dbias, 1: dbias overwritten, 2: accumulated
        const int64_t cols = 45;
        const Activation act{k, k == ActKind::elu ? 0.7 : 0.05};
        auto z = randn<T>(rows * cols, 7, 2.0), a(z), da = randn<T>(rows * cols, 8), db = randn<T>(cols, 9);
        activation_forward(cpu(), dtype<T>(), act, a.data(), z.data(), nullptr, rows, cols);
        Dev<T> dz(z), dA(a), dda(da), ddb(db), ddz(rows * cols);
        std::vector<T> dz_cpu(rows * cols);
        T* dbp = mode ? db.data() : nullptr;
        activation_backward(cpu(), dtype<T>(), act, dz_cpu.data(), dbp, da.data(), z.data(), a.data(), mode == 2, rows, cols);
        activation_backward(gpu(), dtype<T>(), act, ddz.p(), mode ? ddb.p() : nullptr, dda.p(), dz.p(), dA.p(), mode == 2, rows, cols);
        EXPECT_LT(rel_err(ddz.host(), dz_cpu), tol<T>()) << act_name(k) << " rows=" << rows << " mode=" << mode;
        if (mode) EXPECT_LT(rel_err(ddb.host(), db), 10 * tol<T>()) << act_name(k) << " dbias rows=" << rows;
      }
  // dz aliasing da (what the network does), relu with a bias gradient.
  const int64_t rows = 130, cols = 70;
  const Activation relu{ActKind::relu, 0};
  auto a = randn<T>(rows * cols, 10), da = randn<T>(rows * cols, 11);
  std::vector<T> db(cols);
  Dev<T> dA(a), dda(da), ddb(cols);
  activation_backward(cpu(), dtype<T>(), relu, da.data(), db.data(), da.data(), nullptr, a.data(), false, rows, cols);
  activation_backward(gpu(), dtype<T>(), relu, dda.p(), ddb.p(), dda.p(), nullptr, dA.p(), false, rows, cols);
  EXPECT_LT(rel_err(dda.host(), da), tol<T>());
  EXPECT_LT(rel_err(ddb.host(), db), 10 * tol<T>());
}

TYPED_TEST(CudaVsCpu, LossValueAndGradient) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  for (LossKind kind : {LossKind::cross_entropy, LossKind::mse, LossKind::bce_with_logits})
    for (int64_t rows : {1, 33, 2500}) {
      const int64_t cols = kind == LossKind::cross_entropy ? 37 : 3, rows_total = rows + 5;
      auto pred = randn<T>(rows * cols, 12, 4.0);
      std::vector<int32_t> labels(rows);
      for (int64_t r = 0; r < rows; ++r) labels[r] = int32_t(splitmix64(r) % uint64_t(cols));
      auto t = randn<T>(rows * cols, 13);
      for (auto& v : t) v = kind == LossKind::bce_with_logits ? (v + T(1)) / T(2) : v;  // BCE targets in [0, 1]
      const void* target_cpu = kind == LossKind::cross_entropy ? static_cast<const void*>(labels.data()) : t.data();
      Dev<T> dpred(pred), dt(t), dgrad(rows * cols);
      Dev<int32_t> dlab(labels);
      Dev<double> dloss(2);
      std::vector<T> grad(rows * cols);
      LossSums sums;
      loss_sum(cpu(), dtype<T>(), kind, &sums, grad.data(), pred.data(), target_cpu, rows, cols, rows_total);
      const double loss = sums.value;
      loss_sum(gpu(), dtype<T>(), kind, reinterpret_cast<LossSums*>(dloss.p()), dgrad.p(), dpred.p(),
               kind == LossKind::cross_entropy ? static_cast<const void*>(dlab.p()) : dt.p(), rows, cols, rows_total);
      EXPECT_LT(std::abs(dloss.host()[0] - loss) / std::abs(loss), tol<T>()) << loss_name(kind) << " rows=" << rows;
      EXPECT_LT(rel_err(dgrad.host(), grad), tol<T>()) << loss_name(kind) << " rows=" << rows;
    }
}

// Every loss setting (parameters, class / positive weights, sample weights with zeros, all-zero
// weights) on the GPU against the CPU: the sums (value and weight) and the gradient.
TYPED_TEST(CudaVsCpu, LossesWithParametersAndSampleWeights) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  struct K {
    LossSpec s;
    bool cw = false, pw = false;
  };
  std::vector<K> ks;
  for (LossKind k : {LossKind::mse, LossKind::l1, LossKind::huber, LossKind::smooth_l1, LossKind::bce_with_logits,
                     LossKind::poisson_nll, LossKind::cross_entropy})
    ks.push_back({LossSpec(k)});
  ks.push_back({LossSpec(LossKind::bce_with_logits), false, true});
  ks.push_back({LossSpec(LossKind::cross_entropy), true});
  LossSpec s(LossKind::huber);
  s.delta = 0.4;
  ks.push_back({s});
  s = LossSpec(LossKind::smooth_l1);
  s.beta = 0;
  ks.push_back({s});
  s = LossSpec(LossKind::poisson_nll);
  s.log_input = false, s.full = true, s.eps = 0.01;
  ks.push_back({s});
  s = LossSpec(LossKind::cross_entropy);
  s.label_smoothing = 0.3;
  ks.push_back({s});
  ks.push_back({s, true});
  for (const K& k : ks)
    for (int weights : {0, 1, 2})  // none, with zeros among them, all zero
      for (int64_t rows : {1, 33, 2500}) {
        const bool ce = k.s.kind == LossKind::cross_entropy;
        const int64_t cols = ce ? 37 : 5;
        auto pred = randn<T>(rows * cols, 21, 3.0);
        if (k.s.kind == LossKind::poisson_nll && !k.s.log_input)
          for (auto& v : pred) v = std::abs(v) + T(0.05);
        auto t = randn<T>(rows * cols, 22);
        for (auto& v : t)
          v = k.s.kind == LossKind::bce_with_logits ? (v + T(1)) / T(2)
              : k.s.kind == LossKind::poisson_nll   ? std::floor((v + T(1)) * T(3))
                                                    : v;
        std::vector<int32_t> labels(rows);
        for (int64_t r = 0; r < rows; ++r) labels[r] = int32_t(splitmix64(r + 5) % uint64_t(cols));
        auto w = randn<T>(rows, 23);
        for (int64_t r = 0; r < rows; ++r) w[r] = weights == 2 || r % 4 == 1 ? T(0) : std::abs(w[r]) + T(0.1);
        auto vec = randn<T>(cols, 24);
        for (auto& v : vec) v = std::abs(v) + T(0.2);
        LossSpec hs = k.s, ds = k.s;
        Dev<T> dpred(pred), dt(t), dgrad(rows * cols), dw(w), dvec(vec);
        Dev<int32_t> dlab(labels);
        if (k.cw) hs.class_weight = vec.data(), ds.class_weight = dvec.p();
        if (k.pw) hs.pos_weight = vec.data(), ds.pos_weight = dvec.p();
        std::vector<T> grad(rows * cols);
        LossSums sums;
        const void* target_cpu = ce ? static_cast<const void*>(labels.data()) : t.data();
        const void* target_gpu = ce ? static_cast<const void*>(dlab.p()) : dt.p();
        loss_forward_backward(cpu(), dtype<T>(), hs, &sums, grad.data(), pred.data(), target_cpu,
                              weights ? w.data() : nullptr, rows, cols);
        Dev<double> dsums(2);
        gpu().fill(DType::f64, dsums.p(), 2, 0.0);
        loss_forward_backward(gpu(), dtype<T>(), ds, reinterpret_cast<LossSums*>(dsums.p()), dgrad.p(), dpred.p(),
                              target_gpu, weights ? dw.p() : nullptr, rows, cols);
        const auto got = dsums.host();
        const auto what = ::testing::Message() << loss_name(k.s.kind) << " cw=" << k.cw << " pw=" << k.pw
                                               << " weights=" << weights << " rows=" << rows;
        EXPECT_LE(std::abs(got[0] - sums.value), tol<T>() * std::max(1.0, std::abs(sums.value))) << what;
        EXPECT_LE(std::abs(got[1] - sums.weight), 1e-12 * std::max(1.0, std::abs(sums.weight))) << what;
        if (weights == 2) {
          for (T g : dgrad.host()) EXPECT_EQ(g, T(0)) << what;
        } else {
          EXPECT_LT(rel_err(dgrad.host(), grad), tol<T>() * 4) << what;
        }
      }
}

TYPED_TEST(CudaVsCpu, CountCorrectFirstMaximumWins) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const int64_t rows = 1000, cols = 70;
  auto pred = randn<T>(rows * cols, 14);
  for (int64_t r = 0; r < rows; r += 3) pred[r * cols + 5] = pred[r * cols + 40] = T(7);  // ties: 5 wins
  std::vector<int32_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r) labels[r] = r % 3 == 0 ? (r % 2 ? 5 : 40) : int32_t(splitmix64(r) % 70);
  Dev<T> dpred(pred);
  Dev<int32_t> dlab(labels);
  const int64_t want = count_correct(cpu(), dtype<T>(), pred.data(), labels.data(), rows, cols);
  EXPECT_EQ(count_correct(gpu(), dtype<T>(), dpred.p(), dlab.p(), rows, cols), want);
  EXPECT_GT(want, rows / 6 - 5);
}

TYPED_TEST(CudaVsCpu, OptimizerSteps) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  std::vector<OptimParams> cases;
  auto add = [&](OptimKind k, double mom, bool nest, double wd, bool centered) {
    OptimParams p;
    p.kind = k, p.lr = 0.05, p.momentum = mom, p.nesterov = nest, p.weight_decay = wd, p.centered = centered;
    cases.push_back(p);
  };
  add(OptimKind::sgd, 0, false, 0, false);
  add(OptimKind::sgd, 0.9, false, 0.01, false);
  add(OptimKind::sgd, 0.9, true, 0.01, false);
  add(OptimKind::adam, 0, false, 0, false);
  add(OptimKind::adam, 0, false, 0.01, false);
  add(OptimKind::adamw, 0, false, 0.01, false);
  add(OptimKind::rmsprop, 0, false, 0, false);
  add(OptimKind::rmsprop, 0.9, false, 0.01, true);
  const int64_t n = 5000;
  for (OptimParams p : cases) {
    auto w = randn<T>(n, 15);
    std::vector<T> state(size_t(optim_state_slots(p)) * n, T(0));
    Dev<T> dw(w), dstate(state);
    for (int step = 1; step <= 3; ++step) {
      p.step = step;
      auto g = randn<T>(n, 16 + step);
      Dev<T> dg(g);
      optim_step(cpu(), dtype<T>(), p, w.data(), g.data(), state.data(), n);
      optim_step(gpu(), dtype<T>(), p, dw.p(), dg.p(), dstate.p(), n);
    }
    EXPECT_LT(rel_err(dw.host(), w), tol<T>()) << "optimizer kind " << int(p.kind) << " momentum " << p.momentum;
    EXPECT_LT(rel_err(dstate.host(), state), 10 * tol<T>()) << "optimizer state, kind " << int(p.kind);
  }
}

TYPED_TEST(CudaVsCpu, GatherDropoutMaxoutElementwise) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const int64_t rows = 300, cols = 13, n = rows * cols;
  // gather_rows / gather_labels: exact.
  auto src = randn<T>(n, 20);
  std::vector<int64_t> idx(rows);
  for (int64_t i = 0; i < rows; ++i) idx[i] = int64_t(splitmix64(i + 99) % uint64_t(rows));
  std::vector<int32_t> lab(rows), lab_out(rows);
  for (int64_t i = 0; i < rows; ++i) lab[i] = int32_t(i * 7 % 11);
  std::vector<T> out(n);
  Dev<T> dsrc(src), dout(n);
  Dev<int64_t> didx(idx);
  Dev<int32_t> dlab(lab), dlab_out(rows);
  cpu().gather_rows(dtype<T>(), out.data(), src.data(), idx.data(), rows, cols);
  gpu().gather_rows(dtype<T>(), dout.p(), dsrc.p(), didx.p(), rows, cols);
  EXPECT_EQ(dout.host(), out);
  cpu().gather_labels(lab_out.data(), lab.data(), idx.data(), rows);
  gpu().gather_labels(dlab_out.p(), dlab.p(), didx.p(), rows);
  EXPECT_EQ(dlab_out.host(), lab_out);
  // Dropout: the same counter-based stream, so identical masks (exact).
  std::vector<T> y(n), mask(n);
  Dev<T> dy(n), dmask(n);
  dropout_at(cpu(), dtype<T>(), y.data(), mask.data(), src.data(), n, 0.3, 1234, 777);
  dropout_at(gpu(), dtype<T>(), dy.p(), dmask.p(), dsrc.p(), n, 0.3, 1234, 777);
  EXPECT_EQ(dmask.host(), mask);
  EXPECT_EQ(dy.host(), y);
  // mul / add_inplace: exact.
  cpu().mul(dtype<T>(), y.data(), src.data(), mask.data(), n);
  gpu().mul(dtype<T>(), dy.p(), dsrc.p(), dmask.p(), n);
  EXPECT_EQ(dy.host(), y);
  cpu().add_inplace(dtype<T>(), y.data(), src.data(), n);
  gpu().add_inplace(dtype<T>(), dy.p(), dsrc.p(), n);
  EXPECT_EQ(dy.host(), y);
  // Maxout forward / backward: exact (ties resolved to the first piece on both).
  const int64_t pieces = 3, units = 5;
  auto x = randn<T>(rows * units * pieces, 21);
  for (int64_t i = 0; i < rows * units; i += 4) x[i * pieces + 2] = x[i * pieces];  // ties
  std::vector<T> my(rows * units), mdx(rows * units * pieces);
  std::vector<int32_t> midx(rows * units);
  Dev<T> dx(x), dmy(rows * units), dmdx(rows * units * pieces);
  Dev<int32_t> dmidx(rows * units);
  maxout_forward(cpu(), dtype<T>(), my.data(), midx.data(), x.data(), rows, units, pieces);
  maxout_forward(gpu(), dtype<T>(), dmy.p(), dmidx.p(), dx.p(), rows, units, pieces);
  EXPECT_EQ(dmy.host(), my);
  EXPECT_EQ(dmidx.host(), midx);
  auto g = randn<T>(rows * units, 22);
  Dev<T> dg(g);
  maxout_backward(cpu(), dtype<T>(), mdx.data(), g.data(), midx.data(), rows, units, pieces);
  maxout_backward(gpu(), dtype<T>(), dmdx.p(), dg.p(), dmidx.p(), rows, units, pieces);
  EXPECT_EQ(dmdx.host(), mdx);
}

TYPED_TEST(CudaVsCpu, FillCopyAllFinite) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const int64_t n = 100000;
  Dev<T> a(n), b(n);
  gpu().fill(dtype<T>(), a.p(), n, 0.0);
  EXPECT_EQ(a.host(), std::vector<T>(n, T(0)));
  gpu().fill(dtype<T>(), a.p(), n, 2.5);
  EXPECT_EQ(a.host(), std::vector<T>(n, T(2.5)));
  gpu().copy(b.p(), a.p(), n * sizeof(T));
  EXPECT_EQ(b.host(), std::vector<T>(n, T(2.5)));
  EXPECT_TRUE(gpu().all_finite(dtype<T>(), a.p(), n));
  for (T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                -std::numeric_limits<T>::infinity()}) {
    auto h = a.host();
    h[n - 3] = bad;
    Dev<T> c(h);
    EXPECT_FALSE(gpu().all_finite(dtype<T>(), c.p(), n));
    EXPECT_FALSE(cpu().all_finite(dtype<T>(), h.data(), n));
  }
}

TEST(CudaBackend, AvailabilityIsConsistent) {
  // Runs everywhere: without a GPU, asking for the device throws a clear error, never crashes.
  if (cuda_available()) {
    EXPECT_EQ(backend_for(Device::cuda).device(), Device::cuda);
  } else {
    EXPECT_FALSE(cuda_unavailable_reason().empty());
    EXPECT_THROW(backend_for(Device::cuda), std::runtime_error);
    EXPECT_THROW(Buffer(Device::cuda, 16), std::runtime_error);
  }
}

}  // namespace
