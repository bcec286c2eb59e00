// test_cuda_norms.cpp — the CUDA kernels of layer_norm, batch_norm and gradient clipping against
// their CPU twins (the reference), both dtypes. Built only with the CUDA backend; every test skips
// when no usable GPU is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda_test_util.h"
#include "mlpcore/backend.h"
#include "mlpcore/optim.h"
#include "ops/batch_norm.h"
#include "ops/layer_norm.h"
#include "test_util.h"

using namespace mc;
using namespace mc_test;

namespace {

template <class T>
class CudaNorms : public ::testing::Test {};
TYPED_TEST_SUITE(CudaNorms, FloatTypes);

TYPED_TEST(CudaNorms, LayerNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{33, 300}, {5, 7}}) {
    auto x = uniform<T>(rows * cols, 1, -2, 3), w = uniform<T>(cols, 2, 0.5, 1.5), b = uniform<T>(cols, 3);
    auto dy = uniform<T>(rows * cols, 4);
    std::vector<T> y(x.size()), st(2 * rows), dx(x.size()), dw(cols), db(cols);
    layer_norm_forward(cpu(), dt, y.data(), st.data(), x.data(), w.data(), b.data(), rows, cols, 1e-5);
    layer_norm_backward(cpu(), dt, dx.data(), dw.data(), db.data(), dy.data(), x.data(), st.data(), w.data(), rows,
                        cols, false, false);
    Dev<T> gx(x), gw(w), gb(b), gdy(dy), gy(y), gst(st), gdx(dx), gdw(dw), gdb(db);
    layer_norm_forward(gpu(), dt, gy.p(), gst.p(), gx.p(), gw.p(), gb.p(), rows, cols, 1e-5);
    layer_norm_backward(gpu(), dt, gdx.p(), gdw.p(), gdb.p(), gdy.p(), gx.p(), gst.p(), gw.p(), rows, cols, false,
                        false);
    EXPECT_LE(max_rel_err(gy.host(), y), tol<T>());
    EXPECT_LE(max_rel_err(gdx.host(), dx), tol<T>() * 10);
    EXPECT_LE(max_rel_err(gdw.host(), dw), tol<T>());
    EXPECT_LE(max_rel_err(gdb.host(), db), tol<T>());
  }
}

TYPED_TEST(CudaNorms, BatchNormMatchesCpuInTrainAndEvalMode) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  const int64_t rows = 130, cols = 45;
  auto x = uniform<T>(rows * cols, 5, -1, 4), w = uniform<T>(cols, 6, 0.5, 1.5), b = uniform<T>(cols, 7);
  auto dy = uniform<T>(rows * cols, 8);
  for (bool batch : {true, false}) {
    std::vector<T> state(2 * cols + 1, T(0.5)), y(x.size()), st(4 * cols), dx(x.size()), dw(cols), db(cols);
    Dev<T> gstate(state), gx(x), gw(w), gb(b), gdy(dy), gy(y), gst(st), gdx(dx), gdw(dw), gdb(db);
    batch_norm_forward(cpu(), dt, y.data(), st.data(), state.data(), x.data(), w.data(), b.data(), rows, cols, 1e-5,
                       -1.0, batch);
    batch_norm_backward(cpu(), dt, dx.data(), dw.data(), db.data(), st.data(), dy.data(), x.data(), w.data(), rows,
                        cols, batch, false, false);
    batch_norm_forward(gpu(), dt, gy.p(), gst.p(), gstate.p(), gx.p(), gw.p(), gb.p(), rows, cols, 1e-5, -1.0, batch);
    batch_norm_backward(gpu(), dt, gdx.p(), gdw.p(), gdb.p(), gst.p(), gdy.p(), gx.p(), gw.p(), rows, cols, batch,
                        false, false);
    EXPECT_LE(max_rel_err(gy.host(), y), tol<T>()) << batch;
    EXPECT_LE(max_rel_err(gdx.host(), dx), tol<T>() * 10) << batch;
    EXPECT_LE(max_rel_err(gdw.host(), dw), tol<T>()) << batch;
    EXPECT_LE(max_rel_err(gdb.host(), db), tol<T>()) << batch;
    EXPECT_LE(max_rel_err(gstate.host(), state), tol<T>()) << batch;
  }
}

TYPED_TEST(CudaNorms, ClipGradNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const DType dt = dtype_of<T>();
  auto g = uniform<T>(100000, 11, -1, 1);
  std::vector<T> p(g.size());
  Dev<T> gg(g), gp(p);
  Buffer sum(Device::cuda, sizeof(double));
  double host_sum = 0;
  std::vector<OptimSegment> cs{{p.data(), g.data(), 40000, true}, {p.data() + 40000, g.data() + 40000, 60000, true}};
  std::vector<OptimSegment> gs{{gp.p(), gg.p(), 40000, true}, {gp.p() + 40000, gg.p() + 40000, 60000, true}};
  const double nc = clip_grad_norm(cpu(), dt, cs, 1.0, &host_sum);
  const double ng = clip_grad_norm(gpu(), dt, gs, 1.0, static_cast<double*>(sum.data()));
  EXPECT_NEAR(ng, nc, 1e-12 * nc);
  EXPECT_LE(max_rel_err(gg.host(), g), tol<T>());
}

}  // namespace
