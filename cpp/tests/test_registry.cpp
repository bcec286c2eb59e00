// test_registry.cpp — the one registry of ops and kernel sets (registry.h): every OpKind has its
// OpDef, every kernel set is in the CPU backend's table, a backend that lacks a set fails loudly
// naming it, and the exhaustive dtype / loss tables.
#include <gtest/gtest.h>

#include <string>
#include <type_traits>

#include "ops/dropout.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

TEST(Registry, EveryOpKindHasItsOpDef) {
  const char* names[] = {
#define MC_X(name) #name,
      MC_FOR_OPS(MC_X)
#undef MC_X
  };
  ASSERT_EQ(sizeof(names) / sizeof(names[0]), size_t(kNumOps));
  for (int k = 0; k < kNumOps; ++k) {
    const OpDef& d = op_def(OpKind(k));
    EXPECT_STREQ(d.name, names[k]);
    EXPECT_TRUE(d.out_width && d.params && d.work && d.forward && d.backward) << d.name;
  }
  EXPECT_EQ(int(OpKind::linear), 0);  // the values are part of the Python API
  EXPECT_EQ(int(OpKind::residual_add), 4);
  EXPECT_THROW(op_def(OpKind(kNumOps)), ValueError);
  EXPECT_THROW(op_def(OpKind(-1)), ValueError);
}

TEST(Registry, TheCpuBackendHasEveryKernelSet) {
  const Backend& be = backend_for(Device::cpu);
  for (int s = 0; s < kNumKernelSets; ++s) EXPECT_NE(be.kernel_set(KernelSet(s)), nullptr) << kernel_set_name(KernelSet(s));
}

namespace {
// A backend with generic primitives only and an empty kernel table.
class BareBackend final : public Backend {
 public:
  Device device() const override { return Device::cuda; }
  void* alloc(size_t) override { return nullptr; }
  void free(void*) override {}
  void copy(void*, const void*, size_t) override {}
  void upload(void*, const void*, size_t) override {}
  void download(void*, const void*, size_t) override {}
  void fill(DType, void*, int64_t, double) override {}
  void gemm(DType, bool, bool, int64_t, int64_t, int64_t, double, const void*, int64_t, const void*, int64_t, double,
            void*, int64_t) override {}
  void gather_rows(DType, void*, const void*, const int64_t*, int64_t, int64_t) override {}
  void gather_labels(int32_t*, const int32_t*, const int64_t*, int64_t) override {}
  void mul(DType, void*, const void*, const void*, int64_t) override {}
  void add_inplace(DType, void*, const void*, int64_t) override {}
  bool all_finite(DType, const void*, int64_t) override { return true; }
};
}  // namespace

TEST(Registry, AMissingKernelSetFailsLoudlyByName) {
  BareBackend bare;
  DropoutState st;
  float x = 1, y = 0, m = 0;
  try {
    dropout_forward(bare, DType::f32, &y, &m, &x, 1, 0.5, st);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'dropout'"), std::string::npos) << what;
    EXPECT_NE(what.find("cuda"), std::string::npos) << what;
  }
  EXPECT_EQ(st.counter, 0u) << "nothing ran";
}

TEST(Registry, DtypeAndLossTablesAreExhaustive) {
  int seen = 0;
  dtype_dispatch(DType::f32, [&](auto t) { seen += std::is_same<decltype(t), float>::value; });
  dtype_dispatch(DType::f64, [&](auto t) { seen += 2 * std::is_same<decltype(t), double>::value; });
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::f64), 8u);
  EXPECT_THROW(dtype_dispatch(DType(7), [](auto) {}), std::runtime_error);
  EXPECT_TRUE(loss_def(LossKind::cross_entropy).labels);
  EXPECT_FALSE(loss_def(LossKind::mse).labels || loss_def(LossKind::bce_with_logits).labels);
  EXPECT_EQ(loss_divisor(LossKind::cross_entropy, 10, 3), 10.0);
  EXPECT_EQ(loss_divisor(LossKind::mse, 10, 3), 30.0);
  EXPECT_THROW(loss_def(LossKind(9)), ValueError);
}
