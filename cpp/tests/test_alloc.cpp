// test_alloc.cpp — proves that a steady-state training step makes zero heap allocations
// in one process. Its own executable, because it replaces the allocator for the whole
// process: malloc, calloc, realloc, free, posix_memalign, aligned_alloc, memalign and every
// operator new / delete are defined here, count their calls while counting is on, and forward
// to glibc's __libc_* entry points. Definitions in the executable interpose on the shared
// libraries too (libstdc++, OpenBLAS), so allocations anywhere in the process are seen; a sanity
// test checks that the counters do see them.
//
// With more than one OpenBLAS thread, OpenBLAS itself mallocs and frees a job array on each GEMM
// it splits across threads; calls are attributed to their library (return address + dladdr), and
// only OpenBLAS's are tolerated there. With one thread the count must be exactly zero.
//
// Sanitizer builds (MLPCORE_SANITIZE): ASan/UBSan own malloc, so the interposers are left out
// and the tests skip.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "mlpcore/network.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(MLPCORE_SANITIZE_BUILD)
#define MC_ALLOC_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
#define MC_ALLOC_COUNTING 0
#endif
#endif
#ifndef MC_ALLOC_COUNTING
#define MC_ALLOC_COUNTING 1
#endif

namespace {
// Counters are plain atomics and a fixed array (no allocation, safe from OpenBLAS's threads).
// Each counted call also records its return address, so that a count can be attributed to the
// library that made it (dladdr, after counting stops).
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_mallocs{0}, g_frees{0}, g_news{0}, g_deletes{0};
constexpr int kMaxCallers = 1 << 14;
void* g_callers[kMaxCallers];
std::atomic<int> g_ncallers{0};

inline void count(std::atomic<int64_t>& c, void* caller) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  c.fetch_add(1, std::memory_order_relaxed);
  const int i = g_ncallers.fetch_add(1, std::memory_order_relaxed);
  if (i < kMaxCallers) g_callers[i] = caller;
}

struct Counts {
  int64_t mallocs = 0, frees = 0, news = 0, deletes = 0;
  int64_t from_blas = 0;  // calls whose caller lies in the OpenBLAS shared library
  std::string others;     // "library:symbol" of the first few other callers
  int64_t total() const { return mallocs + frees + news + deletes; }
  int64_t not_blas() const { return total() - from_blas; }
  std::string str() const {
    std::ostringstream os;
    os << mallocs << " mallocs, " << frees << " frees, " << news << " news, " << deletes << " deletes; "
       << from_blas << " of them from OpenBLAS" << (others.empty() ? "" : "; others from: " + others);
    return os.str();
  }
};
void counting_start() {
  g_mallocs = 0, g_frees = 0, g_news = 0, g_deletes = 0, g_ncallers = 0;
  g_counting.store(true);
}
Counts counting_stop() {
  g_counting.store(false);
  Counts c;
  c.mallocs = g_mallocs.load(), c.frees = g_frees.load(), c.news = g_news.load(), c.deletes = g_deletes.load();
  const int n = std::min(g_ncallers.load(), kMaxCallers);
  int listed = 0;
  for (int i = 0; i < n; ++i) {
    Dl_info info{};
    const bool found = dladdr(g_callers[i], &info) != 0 && info.dli_fname;
    if (found && std::strstr(info.dli_fname, "openblas")) {
      ++c.from_blas;
    } else if (listed < 5) {
      ++listed;
      c.others += std::string(found ? info.dli_fname : "?") + ":" + (found && info.dli_sname ? info.dli_sname : "?") + " ";
    }
  }
  return c;
}
}  // namespace

#if MC_ALLOC_COUNTING
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

void* malloc(size_t n) {
  count(g_mallocs, __builtin_return_address(0));
  return __libc_malloc(n);
}
void* calloc(size_t k, size_t n) {
  count(g_mallocs, __builtin_return_address(0));
  return __libc_calloc(k, n);
}
void* realloc(void* p, size_t n) {
  count(g_mallocs, __builtin_return_address(0));
  return __libc_realloc(p, n);
}
void free(void* p) {
  if (p) count(g_frees, __builtin_return_address(0));
  __libc_free(p);
}
int posix_memalign(void** out, size_t align, size_t n) {
  count(g_mallocs, __builtin_return_address(0));
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void* aligned_alloc(size_t align, size_t n) {
  count(g_mallocs, __builtin_return_address(0));
  return __libc_memalign(align, n);
}
void* memalign(size_t align, size_t n) {
  count(g_mallocs, __builtin_return_address(0));
  return __libc_memalign(align, n);
}
}  // extern "C"

// operator new/delete: counted separately from malloc (they call __libc_* directly, so one
// `new` is one count).
static void* new_impl(size_t n, size_t align, void* caller) {
  count(g_news, caller);
  void* p = align > alignof(std::max_align_t) ? __libc_memalign(align, n ? n : 1) : __libc_malloc(n ? n : 1);
  return p;
}
static void delete_impl(void* p, void* caller) {
  if (p) count(g_deletes, caller);
  __libc_free(p);
}
void* operator new(size_t n) {
  void* p = new_impl(n, 0, __builtin_return_address(0));
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n) {
  void* p = new_impl(n, 0, __builtin_return_address(0));
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new(size_t n, std::align_val_t a) {
  void* p = new_impl(n, size_t(a), __builtin_return_address(0));
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n, std::align_val_t a) {
  void* p = new_impl(n, size_t(a), __builtin_return_address(0));
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new(size_t n, const std::nothrow_t&) noexcept { return new_impl(n, 0, __builtin_return_address(0)); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return new_impl(n, 0, __builtin_return_address(0)); }
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return new_impl(n, size_t(a), __builtin_return_address(0)); }
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return new_impl(n, size_t(a), __builtin_return_address(0)); }
void operator delete(void* p) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete[](void* p) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete(void* p, size_t) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete[](void* p, size_t) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete(void* p, std::align_val_t) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete[](void* p, std::align_val_t) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete(void* p, const std::nothrow_t&) noexcept { delete_impl(p, __builtin_return_address(0)); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { delete_impl(p, __builtin_return_address(0)); }
#endif  // MC_ALLOC_COUNTING

using namespace mc;
using namespace mc_test;

#define SKIP_WITHOUT_COUNTING()                                                                 \
  do {                                                                                          \
    if (!MC_ALLOC_COUNTING) GTEST_SKIP() << "sanitizer build: the sanitizer owns malloc, not us"; \
  } while (0)

// The counters must see allocations from this executable (new, malloc) and from shared
// libraries (libc's strdup, libstdc++'s std::string growth), or a zero below would prove nothing.
TEST(AllocCounter, SeesAllocationsEverywhere) {
  SKIP_WITHOUT_COUNTING();
  counting_start();
  int* a = new int[100];
  void* m = std::malloc(64);
  char* s = strdup("counted in libc");
  void* al = nullptr;
  const int rc = posix_memalign(&al, 64, 256);
  std::vector<double>* v = new std::vector<double>(1000);
  Counts c = counting_stop();
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(c.from_blas, 0) << c.str();
  EXPECT_GE(c.news, 2);     // new int[], new vector, and the vector's storage
  EXPECT_GE(c.mallocs, 3);  // malloc, strdup's malloc inside libc, posix_memalign
  delete v;
  std::free(al);
  std::free(s);
  std::free(m);
  delete[] a;
  counting_start();
  std::string grown;
  for (int i = 0; i < 100; ++i) grown += "more than the small-string buffer ";
  c = counting_stop();
  EXPECT_GT(c.news, 0) << "libstdc++'s allocations must be counted";
}

namespace {

struct Config {
  const char* name;
  std::vector<int64_t> sizes;
  Activation act;
  double dropout;  // 0: none; else Dropout(p) after each hidden activation
  LossSpec loss;   // its class_weight / pos_weight set by the test when class_weights / pos_weights
  OptimParams opt;
  DType dt;
  bool sample_weights = false, class_weights = false, pos_weights = false;
  char norm = 0;       // 'b': BatchNorm1d after each hidden Linear, 'l': LayerNorm; 0: none
  double clip = -1;    // >= 0: gradient clipping to that norm in every step
};

OptimParams make_opt(OptimKind k, double lr, double momentum = 0.0, bool nesterov = false, double wd = 0.0) {
  OptimParams p;
  p.kind = k, p.lr = lr, p.momentum = momentum, p.nesterov = nesterov, p.weight_decay = wd;
  return p;
}

// An MLP with its arena, initialised; hidden layers get `act` and optional dropout.
struct Model {
  std::shared_ptr<ParamArena> arena;
  std::unique_ptr<Network> net;
};
Model build(const Config& c) {
  std::vector<OpSpec> ops;
  int64_t numel = 0;
  for (size_t l = 0; l + 1 < c.sizes.size(); ++l) numel += c.sizes[l] * c.sizes[l + 1] + c.sizes[l + 1];
  for (size_t l = 1; l + 1 < c.sizes.size(); ++l) numel += c.norm ? 4 * c.sizes[l] + 1 : 0;
  Model m;
  m.arena = std::make_shared<ParamArena>(Device::cpu, c.dt, numel);
  int64_t off = 0;
  for (size_t l = 0; l + 1 < c.sizes.size(); ++l) {
    OpSpec lin;
    lin.kind = OpKind::linear, lin.in_features = c.sizes[l], lin.out_features = c.sizes[l + 1];
    lin.weight_off = off;
    init_fill(c.dt, m.arena->param_at(off), c.sizes[l] * c.sizes[l + 1], InitKind::he_uniform, c.sizes[l],
              c.sizes[l + 1], 1 + l);
    off += c.sizes[l] * c.sizes[l + 1];
    lin.bias_off = off;
    off += c.sizes[l + 1];
    ops.push_back(lin);
    if (l + 2 < c.sizes.size() && c.norm) {
      const int64_t w = c.sizes[l + 1];
      OpSpec nrm;
      nrm.kind = c.norm == 'b' ? OpKind::batch_norm : OpKind::layer_norm;
      nrm.in_features = w;
      nrm.attrs = c.norm == 'b' ? std::vector<double>{1e-5, 0.1} : std::vector<double>{1e-5};
      nrm.weight_off = off, nrm.bias_off = off + w;
      dtype_dispatch(c.dt, [&](auto t) {  // weight 1 (the arena starts at 0: bias 0, running statistics 0)
        using T = decltype(t);
        std::fill_n(static_cast<T*>(m.arena->param_at(off)), w, T(1));
      });
      off += 2 * w;
      if (c.norm == 'b') nrm.state_off = off;
      off += 2 * w + 1;
      ops.push_back(nrm);
    }
    if (l + 2 < c.sizes.size()) {
      OpSpec a;
      a.kind = OpKind::activation, a.act = c.act;
      ops.push_back(a);
      if (c.dropout > 0) {
        OpSpec d;
        d.kind = OpKind::dropout, d.p = c.dropout, d.dropout = std::make_shared<DropoutState>();
        d.dropout->seed = 77;
        ops.push_back(d);
      }
    }
  }
  m.net = std::make_unique<Network>(m.arena, ops, c.sizes[0]);
  return m;
}

// Data: n rows of X and the matching targets (labels for CE, rows otherwise), sample weights (W,
// empty without) and the loss's weight vectors (V: class or positive weights), as raw bytes.
struct Data {
  std::vector<char> X, Y, W, V;
};
template <class T>
std::vector<char> bytes_of(const std::vector<T>& v) {
  return std::vector<char>(reinterpret_cast<const char*>(v.data()), reinterpret_cast<const char*>(v.data() + v.size()));
}
template <class T>
Data make_data(const Config& c, int64_t n) {
  Data d;
  const std::vector<T> x = uniform<T>(n * c.sizes[0], 3);
  d.X.assign(reinterpret_cast<const char*>(x.data()), reinterpret_cast<const char*>(x.data() + x.size()));
  if (c.sample_weights) d.W = bytes_of(uniform<T>(n, 5, 0.0, 2.0));
  if (c.class_weights || c.pos_weights) d.V = bytes_of(uniform<T>(c.sizes.back(), 6, 0.5, 2.0));
  if (c.loss.kind == LossKind::cross_entropy) {
    const std::vector<int32_t> y = labels(n, c.sizes.back(), 4);
    d.Y.assign(reinterpret_cast<const char*>(y.data()), reinterpret_cast<const char*>(y.data() + y.size()));
  } else {
    const std::vector<T> y = uniform<T>(n * c.sizes.back(), 4, 0.0, 1.0);
    d.Y.assign(reinterpret_cast<const char*>(y.data()), reinterpret_cast<const char*>(y.data() + y.size()));
  }
  return d;
}

class ZeroAlloc : public ::testing::TestWithParam<std::tuple<Config, int>> {};

}  // namespace

// After warm-up (a few train_steps and one shuffled train_epoch, which size the workspace, the
// permutation buffer and OpenBLAS's own buffers and threads), 20 train_steps, a shuffled
// train_epoch with a ragged last batch, evaluate and predict, and forward + backward (the module
// path through the network) make zero calls to any allocation or deallocation function, with 1
// and 2 OpenBLAS threads; also with BatchNorm / LayerNorm, gradient clipping and the running
// outputs of train_epoch.
TEST_P(ZeroAlloc, SteadyStateTrainingMakesNoHeapAllocation) {
  SKIP_WITHOUT_COUNTING();
  const Config& c = std::get<0>(GetParam());
  const int threads = std::get<1>(GetParam());
  cpu_set_num_threads(threads);
  const int64_t n = 500, B = 64;  // 500 = 7 x 64 + 52: the epoch ends with a smaller batch
  Data d = c.dt == DType::f32 ? make_data<float>(c, n) : make_data<double>(c, n);
  Model m = build(c);
  Optimizer opt(Device::cpu, c.dt, c.opt, {{m.arena->params(), m.arena->grads(), m.arena->numel()}});
  std::vector<char> out(size_t(n * c.sizes.back()) * dtype_size(c.dt));
  int64_t correct = 0;
  LossSpec loss = c.loss;
  if (c.class_weights) loss.class_weight = d.V.data();
  if (c.pos_weights) loss.pos_weight = d.V.data();
  const void* W = d.W.empty() ? nullptr : d.W.data();

  std::vector<char> outputs(size_t(n * c.sizes.back()) * dtype_size(c.dt));  // running metrics' outputs
  for (int i = 0; i < 3; ++i) m.net->train_step(opt, loss, d.X.data(), d.Y.data(), B, false, W, c.clip);
  m.net->train_epoch(opt, loss, d.X.data(), d.Y.data(), n, B, true, 1, 0, true, 0, -1, W, c.clip, outputs.data());
  m.net->evaluate(loss, d.X.data(), d.Y.data(), n, B, &correct, W);
  m.net->predict(out.data(), d.X.data(), n, B);
  // The module path through the network: forward (keeps its state), backward (adds gradients).
  std::vector<char> dy(size_t(B * c.sizes.back()) * dtype_size(c.dt), 0), dx(size_t(B * c.sizes[0]) * dtype_size(c.dt));
  m.net->forward_to_host(out.data(), d.X.data(), B);
  m.net->backward_to_host(dx.data(), dy.data(), B);

  counting_start();
  double acc = 0;
  for (int i = 0; i < 20; ++i) acc += m.net->train_step(opt, loss, d.X.data(), d.Y.data(), B, false, W, c.clip);
  const Counts steps = counting_stop();
  counting_start();
  acc += m.net->train_epoch(opt, loss, d.X.data(), d.Y.data(), n, B, true, 2, 1, true, 0, -1, W, c.clip,
                            outputs.data()).loss;
  const Counts epoch = counting_stop();
  counting_start();
  acc += m.net->evaluate(loss, d.X.data(), d.Y.data(), n, B, &correct, W);
  m.net->predict(out.data(), d.X.data(), n, B);
  const Counts infer = counting_stop();
  counting_start();
  for (int i = 0; i < 5; ++i) {
    m.net->forward_to_host(out.data(), d.X.data(), B);
    m.net->backward_to_host(dx.data(), dy.data(), B);
  }
  const Counts module = counting_stop();

  EXPECT_TRUE(std::isfinite(acc));
  const std::pair<const char*, const Counts*> phases[] = {{"20 x train_step", &steps},
                                                          {"train_epoch", &epoch},
                                                          {"evaluate + predict", &infer},
                                                          {"5 x forward + backward", &module}};
  for (const auto& [what, counts] : phases) {
    if (threads == 1) {
      EXPECT_EQ(counts->total(), 0) << what << ": " << counts->str();
    } else {
      // OpenBLAS's threaded level-3 driver (driver/level3/level3_thread.c) mallocs and frees its
      // job array on every GEMM it splits across threads (USE_ALLOC_HEAP, set because the wheel's
      // MAX_CPU_NUMBER exceeds BLAS3_MEM_ALLOC_THRESHOLD). That is outside mlpcore; everything
      // else must still allocate nothing, and OpenBLAS must give back all it took.
      EXPECT_EQ(counts->not_blas(), 0) << what << ": " << counts->str();
      EXPECT_EQ(counts->mallocs, counts->frees) << what << ": " << counts->str();
      std::printf("[ info ] %s with %d threads: %s\n", what, threads, counts->str().c_str());
    }
  }
  cpu_set_num_threads(1);
}

Config config_sgd() {
  return {"relu_ce_sgd_momentum_f32", {64, 128, 128, 10}, {ActKind::relu, 0}, 0.0, LossKind::cross_entropy,
          make_opt(OptimKind::sgd, 0.05, 0.9), DType::f32};
}
Config config_adam() {
  return {"relu_ce_adam_f32", {64, 128, 128, 10}, {ActKind::relu, 0}, 0.0, LossKind::cross_entropy,
          make_opt(OptimKind::adam, 1e-3), DType::f32};
}
Config config_adamw_dropout() {
  return {"gelu_dropout_mse_adamw_f64", {64, 128, 128, 10}, {ActKind::gelu, 0}, 0.2, LossKind::mse,
          make_opt(OptimKind::adamw, 1e-3, 0, false, 0.01), DType::f64};
}
Config config_batch_norm_clip() {
  Config c{"batchnorm_clip_ce_sgd_f32", {64, 128, 128, 10}, {ActKind::relu, 0}, 0.0, LossKind::cross_entropy,
           make_opt(OptimKind::sgd, 0.05, 0.9), DType::f32};
  c.norm = 'b', c.clip = 1.0;
  return c;
}
Config config_layer_norm() {
  Config c{"layernorm_mse_adam_f64", {64, 128, 128, 10}, {ActKind::gelu, 0}, 0.0, LossKind::mse,
           make_opt(OptimKind::adam, 1e-3), DType::f64};
  c.norm = 'l';
  return c;
}
Config config_nesterov() {
  return {"tanh_bce_nesterov_wd_f32", {64, 128, 128, 10}, {ActKind::tanh, 0}, 0.0, LossKind::bce_with_logits,
          make_opt(OptimKind::sgd, 0.05, 0.9, true, 1e-4), DType::f32};
}

// Losses with parameters and sample weights: the weights gathered with the rows, the divisor
// summed first, the vectors read in place.
Config config_ce_weighted() {
  Config c{"relu_ce_classweight_smoothing_sampleweight_sgd_f32", {64, 128, 128, 10}, {ActKind::relu, 0}, 0.0,
           LossKind::cross_entropy, make_opt(OptimKind::sgd, 0.05, 0.9), DType::f32, true, true};
  c.loss.label_smoothing = 0.1;
  return c;
}
Config config_huber_weighted() {
  Config c{"tanh_huber_sampleweight_adam_f64", {64, 128, 128, 10}, {ActKind::tanh, 0}, 0.0, LossKind::huber,
           make_opt(OptimKind::adam, 1e-3), DType::f64, true};
  c.loss.delta = 0.5;
  return c;
}
Config config_bce_pos_weight() {
  return {"relu_bce_posweight_sampleweight_sgd_f32", {64, 128, 128, 10}, {ActKind::relu, 0}, 0.0,
          LossKind::bce_with_logits, make_opt(OptimKind::sgd, 0.05), DType::f32, true, false, true};
}
Config config_poisson() {
  return {"tanh_poisson_adam_f32", {64, 128, 128, 10}, {ActKind::tanh, 0}, 0.0, LossKind::poisson_nll,
          make_opt(OptimKind::adam, 1e-3), DType::f32};
}

// Every configuration on 1 thread; SGD and Adam also on 2 (slow on a loaded machine: OpenBLAS's
// threads spin while they wait).
INSTANTIATE_TEST_SUITE_P(
    Networks, ZeroAlloc,
    ::testing::Values(std::make_tuple(config_sgd(), 1), std::make_tuple(config_adam(), 1),
                      std::make_tuple(config_adamw_dropout(), 1), std::make_tuple(config_nesterov(), 1),
                      std::make_tuple(config_ce_weighted(), 1), std::make_tuple(config_huber_weighted(), 1),
                      std::make_tuple(config_bce_pos_weight(), 1), std::make_tuple(config_poisson(), 1),
                      std::make_tuple(config_batch_norm_clip(), 1), std::make_tuple(config_layer_norm(), 1),
                      std::make_tuple(config_sgd(), 2), std::make_tuple(config_adam(), 2)),
    [](const ::testing::TestParamInfo<ZeroAlloc::ParamType>& info) {
      return std::string(std::get<0>(info.param).name) + "_threads" + std::to_string(std::get<1>(info.param));
    });
