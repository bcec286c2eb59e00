// bench_micro.cpp — C++ microbenchmarks of the CPU backend (Google Benchmark): the GEMM shapes of
// two training steps, linear forward/backward, every activation kernel, every loss, the
// optimizer step and whole training steps. Every benchmark reports items/s and GFLOP/s; the
// element-wise kernels also report bytes/s, which is what bounds them.
//
// FLOP counts: GEMM 2·M·N·K; a training step 6·B·Σ in·out (forward 2, backward 4: dW and dx,
// the first layer's dx included, as the end-to-end benchmark counts it). Element-wise kernels
// use the nominal per-element counts in the tables below (exp, erf, tanh, sqrt count as one).
//
// Threads: 1 by default (pinned through cpu_set_num_threads); --threads=N or the environment
// variable MLPCORE_BENCH_THREADS=N changes it. Example:
//   build/bench/mlpcore_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "mlpcore/network.h"
#include "mlpcore/rng.h"

using namespace mc;

namespace {

Backend& be() { return backend_for(Device::cpu); }

int g_threads = 1;  // OpenBLAS threads for this run

// Microsecond units; wall-clock time when OpenBLAS runs several threads (the main thread's CPU
// time would miss the workers), the main thread's CPU time otherwise, which keeps 1-thread
// figures honest on a machine shared with other jobs.
void configure(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMicrosecond);
  if (g_threads > 1) b->UseRealTime();
}

std::vector<float> uniform(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = float(lo + (hi - lo) * u01(splitmix64(seed * 1000003ull + uint64_t(i))));
  return v;
}

std::vector<int32_t> labels(int64_t n, int64_t classes, uint64_t seed) {
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[i] = int32_t(splitmix64(seed * 7919ull + uint64_t(i)) % uint64_t(classes));
  return y;
}

// items/s, GFLOP/s (and bytes/s when given) from per-iteration amounts.
void report(benchmark::State& st, double items, double flops, double bytes = 0) {
  st.SetItemsProcessed(int64_t(items * double(st.iterations())));
  if (bytes > 0) st.SetBytesProcessed(int64_t(bytes * double(st.iterations())));
  st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9 * double(st.iterations()), benchmark::Counter::kIsRate);
}

// ---- GEMM ------------------------------------------------------------------------------------

// C[M,N] = op(A) op(B) in float32, row-major, as the network calls it.
void bm_gemm(benchmark::State& st, bool ta, bool tb, int64_t M, int64_t N, int64_t K) {
  const std::vector<float> A = uniform(M * K, 1), B = uniform(K * N, 2);
  std::vector<float> C(static_cast<size_t>(M * N));
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  for (auto _ : st) {
    be().gemm(DType::f32, ta, tb, M, N, K, 1.0, A.data(), lda, B.data(), ldb, 0.0, C.data(), N);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  report(st, double(M) * N, 2.0 * M * N * K);
}

// The GEMMs of one training step of an MLP at batch B (linear.h's calls): forward z = x·Wᵀ (NT,
// M=B, N=out, K=in), dW = dzᵀ·x (TN, M=out, N=in, K=B), dx = dz·W (NN, M=B, N=in, K=out) for
// every layer but the first.
void register_step_gemms(const std::string& tag, const std::vector<int64_t>& sizes, int64_t B) {
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    const int64_t in = sizes[l], out = sizes[l + 1];
    const std::string layer = tag + "/l" + std::to_string(l + 1);
    auto name = [](const std::string& s, int64_t M, int64_t N, int64_t K) {
      return s + "/M" + std::to_string(M) + "_N" + std::to_string(N) + "_K" + std::to_string(K);
    };
    benchmark::RegisterBenchmark(name("gemm/" + layer + "_fwd_NT", B, out, in).c_str(), bm_gemm, false, true, B, out, in)
        ->Apply(configure);
    benchmark::RegisterBenchmark(name("gemm/" + layer + "_dW_TN", out, in, B).c_str(), bm_gemm, true, false, out, in, B)
        ->Apply(configure);
    if (l > 0)
      benchmark::RegisterBenchmark(name("gemm/" + layer + "_dx_NN", B, in, out).c_str(), bm_gemm, false, false, B, in, out)
          ->Apply(configure);
  }
}

// ---- Linear ------------------------------------------------------------------------------------

// Forward: z = x·Wᵀ + b (GEMM, then the bias pass). Backward: db = Σ dz, dW = dzᵀ·x, dx = dz·W.
void bm_linear_forward(benchmark::State& st, int64_t B, int64_t in, int64_t out) {
  const std::vector<float> x = uniform(B * in, 1), w = uniform(out * in, 2), b = uniform(out, 3);
  std::vector<float> z(static_cast<size_t>(B * out));
  const Activation id{ActKind::identity, 0};
  for (auto _ : st) {
    linear_forward(be(), DType::f32, z.data(), x.data(), w.data(), B, in, out, false);
    activation_forward(be(), DType::f32, id, z.data(), z.data(), b.data(), B, out);
    benchmark::DoNotOptimize(z.data());
  }
  report(st, double(B), 2.0 * B * in * out + double(B) * out);
}

void bm_linear_backward(benchmark::State& st, int64_t B, int64_t in, int64_t out) {
  const std::vector<float> x = uniform(B * in, 1), w = uniform(out * in, 2), dz = uniform(B * out, 3);
  std::vector<float> dx(static_cast<size_t>(B * in)), dw(static_cast<size_t>(out * in)), db(static_cast<size_t>(out));
  const Activation id{ActKind::identity, 0};
  for (auto _ : st) {
    activation_backward(be(), DType::f32, id, const_cast<float*>(dz.data()), db.data(), dz.data(), nullptr, dz.data(), false, B, out);
    linear_backward(be(), DType::f32, dx.data(), dw.data(), dz.data(), x.data(), w.data(), B, in, out, false, false);
    benchmark::DoNotOptimize(dw.data());
    benchmark::DoNotOptimize(dx.data());
  }
  report(st, double(B), 4.0 * B * in * out + double(B) * out);
}

// ---- activations -------------------------------------------------------------------------------

struct ActInfo {
  Activation act;
  double fwd_flops, bwd_flops;  // nominal, per element: forward includes the bias add,
                                // backward the bias-gradient add
};
const ActInfo kActs[] = {
    {{ActKind::identity, 0}, 1, 1}, {{ActKind::relu, 0}, 2, 2},  {{ActKind::leaky_relu, 0.01}, 3, 3},
    {{ActKind::sigmoid, 0}, 5, 4},  {{ActKind::tanh, 0}, 2, 4},  {{ActKind::elu, 1.0}, 4, 4},
    {{ActKind::gelu, 0}, 6, 9},     {{ActKind::silu, 0}, 6, 8},  {{ActKind::softmax, 0}, 5, 5},
};

// a = act(z + bias) over (rows, cols) into a separate output (as the network runs activations
// whose backward needs z). The bias is zero so that z, updated in place, stays the same from one
// iteration to the next; the add costs the same. Bytes: read z, write z and a.
void bm_act_forward(benchmark::State& st, ActInfo info, int64_t rows, int64_t cols) {
  const std::vector<float> bias(static_cast<size_t>(cols), 0.0f);
  std::vector<float> z = uniform(rows * cols, 1, -3.0, 3.0), a(static_cast<size_t>(rows * cols));
  for (auto _ : st) {
    activation_forward(be(), DType::f32, info.act, a.data(), z.data(), bias.data(), rows, cols);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  const double n = double(rows) * cols;
  report(st, n, info.fwd_flops * n, 3.0 * sizeof(float) * n);
}

// dz = da * act'(z, a) and db = column sums, with dz separate from da (the network runs it in place,
// dz == da; repeated in-place calls here would shrink da towards denormals for sigmoid and tanh).
// Bytes: read da, a (and z when needed), write dz.
void bm_act_backward(benchmark::State& st, ActInfo info, int64_t rows, int64_t cols) {
  const std::vector<float> z = uniform(rows * cols, 1, -3.0, 3.0), da = uniform(rows * cols, 3);
  std::vector<float> a(z.size()), zz = z, dz(z.size()), db(static_cast<size_t>(cols));
  activation_forward(be(), DType::f32, info.act, a.data(), zz.data(), nullptr, rows, cols);
  for (auto _ : st) {
    activation_backward(be(), DType::f32, info.act, dz.data(), db.data(), da.data(), info.act.needs_input() ? z.data() : nullptr, a.data(), false, rows, cols);
    benchmark::DoNotOptimize(dz.data());
  }
  const double n = double(rows) * cols;
  report(st, n, info.bwd_flops * n, (info.act.needs_input() ? 4.0 : 3.0) * sizeof(float) * n);
}

// ---- losses -----------------------------------------------------------------------------------------

// Value and gradient in one pass. Nominal FLOPs per element: mse 4, cross-entropy 5 (max, sub, exp,
// add, scale), bce_with_logits 10.
void bm_loss(benchmark::State& st, LossKind kind, int64_t rows, int64_t cols) {
  const std::vector<float> pred = uniform(rows * cols, 1, -3.0, 3.0), tgt = uniform(rows * cols, 2, 0.0, 1.0);
  const std::vector<int32_t> y = labels(rows, cols, 3);
  std::vector<float> grad(pred.size());
  const void* target = kind == LossKind::cross_entropy ? static_cast<const void*>(y.data()) : tgt.data();
  LossSums sums;
  for (auto _ : st) {
    sums = LossSums{};
    loss_forward_backward(be(), DType::f32, kind, &sums, grad.data(), pred.data(), target, nullptr, rows, cols);  // the batch mean
    benchmark::DoNotOptimize(sums.value);
    benchmark::DoNotOptimize(grad.data());
  }
  const double n = double(rows) * cols;
  const double per = kind == LossKind::mse ? 4 : (kind == LossKind::cross_entropy ? 5 : 10);
  report(st, double(rows), per * n, (kind == LossKind::cross_entropy ? 2.0 : 3.0) * sizeof(float) * n);
}

// ---- optimizer step ---------------------------------------------------------------------------------

// One step over a flat arena of n parameters. Nominal FLOPs per parameter: SGD with momentum 4,
// Adam 13. Bytes: SGD reads p, g, buf and writes p, buf; Adam reads p, g, m, v and writes p, m, v.
void bm_optim(benchmark::State& st, OptimParams p, int64_t n) {
  std::vector<float> w = uniform(n, 1), g = uniform(n, 2, -1e-3, 1e-3);
  std::vector<float> state(static_cast<size_t>(optim_state_slots(p) * n), 0.0f);
  for (auto _ : st) {
    p.step += 1;
    kernels_of<OptimKernels>(be()).step(DType::f32, p, w.data(), g.data(), state.data(), n);
    benchmark::DoNotOptimize(w.data());
  }
  const bool sgd = p.kind == OptimKind::sgd;
  report(st, double(n), (sgd ? 4.0 : 13.0) * n, (sgd ? 5.0 : 7.0) * sizeof(float) * n);
}

// ---- whole training step ------------------------------------------------------------------------------

// Network::train_step on a fixed batch: forward, loss, backward, SGD with momentum (float32, relu
// hidden layers, he_uniform init).
void bm_train_step(benchmark::State& st, std::vector<int64_t> sizes, int64_t B, LossKind loss) {
  std::vector<OpSpec> ops;
  int64_t numel = 0;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) numel += sizes[l] * sizes[l + 1] + sizes[l + 1];
  auto arena = std::make_shared<ParamArena>(Device::cpu, DType::f32, numel);
  int64_t off = 0;
  double macs = 0;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    OpSpec lin;
    lin.kind = OpKind::linear, lin.in_features = sizes[l], lin.out_features = sizes[l + 1];
    lin.weight_off = off;
    init_fill(DType::f32, arena->param_at(off), sizes[l] * sizes[l + 1], InitKind::he_uniform, sizes[l], sizes[l + 1],
              l + 1);
    off += sizes[l] * sizes[l + 1];
    lin.bias_off = off;
    off += sizes[l + 1];
    ops.push_back(lin);
    macs += double(sizes[l]) * double(sizes[l + 1]);
    if (l + 2 < sizes.size()) {
      OpSpec a;
      a.kind = OpKind::activation, a.act = Activation{ActKind::relu, 0};
      ops.push_back(a);
    }
  }
  Network net(arena, ops, sizes[0]);
  OptimParams p;
  p.kind = OptimKind::sgd, p.lr = 0.01, p.momentum = 0.9;
  Optimizer opt(Device::cpu, DType::f32, p, {{arena->params(), arena->grads(), arena->numel()}});
  const std::vector<float> x = uniform(B * sizes[0], 7);
  const std::vector<int32_t> y = labels(B, sizes.back(), 8);
  const std::vector<float> t = uniform(B * sizes.back(), 9);
  const void* target = loss == LossKind::cross_entropy ? static_cast<const void*>(y.data()) : t.data();
  double value = 0;
  for (auto _ : st) {
    value = net.train_step(opt, loss, x.data(), target, B);
    benchmark::DoNotOptimize(value);
  }
  report(st, double(B), 6.0 * double(B) * macs);
}

std::string shape_name(const std::vector<int64_t>& sizes, int64_t B) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? "," : "") + std::to_string(sizes[i]);
  return s + "]_B" + std::to_string(B);
}

void register_all() {
  const std::vector<int64_t> mnist = {784, 256, 256, 10}, big = {1024, 4096, 4096, 1024};
  register_step_gemms("mlp784_B128", mnist, 128);
  register_step_gemms("mlp1024x4096_B512", big, 512);

  for (auto [B, in, out] : {std::tuple<int64_t, int64_t, int64_t>{128, 784, 256}, {128, 256, 256}, {512, 4096, 4096}}) {
    const std::string s = "B" + std::to_string(B) + "_in" + std::to_string(in) + "_out" + std::to_string(out);
    benchmark::RegisterBenchmark(("linear_forward/" + s).c_str(), bm_linear_forward, B, in, out)->Apply(configure);
    benchmark::RegisterBenchmark(("linear_backward/" + s).c_str(), bm_linear_backward, B, in, out)->Apply(configure);
  }

  for (const ActInfo& a : kActs)
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{128, 256}, {512, 4096}}) {
      const std::string s = std::string(act_name(a.act.kind)) + "/" + std::to_string(rows) + "x" + std::to_string(cols);
      benchmark::RegisterBenchmark(("act_forward/" + s).c_str(), bm_act_forward, a, rows, cols)->Apply(configure);
      benchmark::RegisterBenchmark(("act_backward/" + s).c_str(), bm_act_backward, a, rows, cols)->Apply(configure);
    }

  for (LossKind k : {LossKind::mse, LossKind::cross_entropy, LossKind::bce_with_logits})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{128, 10}, {512, 1024}})
      benchmark::RegisterBenchmark(
          (std::string("loss/") + loss_name(k) + "/" + std::to_string(rows) + "x" + std::to_string(cols)).c_str(), bm_loss,
          k, rows, cols)
          ->Apply(configure);

  // The parameter arena of [784,256,256,10]: 269,322 values.
  const int64_t arena_n = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10;
  OptimParams sgd, adam;
  sgd.kind = OptimKind::sgd, sgd.lr = 0.01, sgd.momentum = 0.9;
  adam.kind = OptimKind::adam, adam.lr = 1e-3;
  benchmark::RegisterBenchmark(("optim/sgd_momentum/n" + std::to_string(arena_n)).c_str(), bm_optim, sgd, arena_n)
      ->Apply(configure);
  benchmark::RegisterBenchmark(("optim/adam/n" + std::to_string(arena_n)).c_str(), bm_optim, adam, arena_n)
      ->Apply(configure);

  const std::tuple<std::vector<int64_t>, int64_t, LossKind> steps[] = {
      {{2, 16, 16, 2}, 64, LossKind::cross_entropy},
      {{64, 64, 64, 1}, 32, LossKind::mse},
      {mnist, 128, LossKind::cross_entropy}};
  for (const auto& [sizes, B, loss] : steps)
    benchmark::RegisterBenchmark(("train_step/" + shape_name(sizes, B) + "_" + loss_name(loss)).c_str(), bm_train_step,
                                 sizes, B, loss)
        ->Apply(configure);
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flag, removed before Google Benchmark parses the rest: --threads=N.
  int threads = 1;
  if (const char* env = std::getenv("MLPCORE_BENCH_THREADS")) threads = std::atoi(env);
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      threads = std::atoi(argv[i] + 10);
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  if (threads < 1) threads = 1;
  g_threads = threads;
  cpu_set_num_threads(threads);
  benchmark::AddCustomContext("mlpcore_threads", std::to_string(cpu_get_num_threads()));
  benchmark::AddCustomContext("mlpcore_timing", threads > 1 ? "wall clock" : "main-thread CPU time");
  benchmark::AddCustomContext("blas", cpu_blas_info());
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
