// bindings/module.cpp — the pybind11 module mlpcore._core: its definition (the exception
// translation, the enums, the runtime switches) and the calls that bind the rest by job:
//   input.cpp        the input policy (every array checked and converted once, at the edge)
//   loss.cpp         LossSpec (a loss and its parameters) and the sample-weight policy
//   kernels.cpp      the module-path kernels (numpy in, new numpy out)
//   network.cpp      ParamArena, Optimizer, OpSpec, EpochResult, Network
//   device_data.cpp  the CUDA data-set cache and staging buffers
//   comm.cpp         Communicator: the local and the MPI communicator (data-parallel training)
// The bindings hold no math: they validate, convert, release the GIL and call the core.
#include <pybind11/stl.h>

#include "cpu/cpu_backend.h"
#include "input.h"
#include "interrupt.h"
#include "mlpcore/arena.h"
#include "mlpcore/network.h"
#include "mlpcore/rng.h"

namespace mc_py {
void bind_params(py::module_& m);
void bind_kernels(py::module_& m);
void bind_loss(py::module_& m);
void bind_network(py::module_& m);
void bind_comm(py::module_& m);

namespace {
// A Python int of any size (numpy ints too) reduced modulo 2^64, as the Python layer's seeds are.
uint64_t as_u64(py::handle h) {
  const py::int_ v(py::reinterpret_borrow<py::object>(h));
  const py::int_ mask(~0ull);
  return py::reinterpret_steal<py::int_>(PyNumber_And(v.ptr(), mask.ptr())).cast<uint64_t>();
}
}  // namespace
}  // namespace mc_py

using namespace mc_py;

PYBIND11_MODULE(_core, m) {
  m.doc() = "mlpcore C++ core (private: use the mlpcore package)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mc::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const mc::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });

  py::enum_<ActKind>(m, "ActKind")
      .value("identity", ActKind::identity).value("relu", ActKind::relu).value("leaky_relu", ActKind::leaky_relu)
      .value("sigmoid", ActKind::sigmoid).value("tanh", ActKind::tanh).value("elu", ActKind::elu)
      .value("gelu", ActKind::gelu).value("silu", ActKind::silu).value("softmax", ActKind::softmax);
  py::enum_<LossKind>(m, "LossKind")
      .value("mse", LossKind::mse).value("cross_entropy", LossKind::cross_entropy)
      .value("bce_with_logits", LossKind::bce_with_logits).value("l1", LossKind::l1).value("huber", LossKind::huber)
      .value("smooth_l1", LossKind::smooth_l1).value("poisson_nll", LossKind::poisson_nll);
  py::enum_<OptimKind>(m, "OptimKind")
      .value("sgd", OptimKind::sgd).value("adam", OptimKind::adam).value("adamw", OptimKind::adamw)
      .value("rmsprop", OptimKind::rmsprop);
  py::enum_<InitKind>(m, "InitKind")
      .value("zeros", InitKind::zeros).value("he_uniform", InitKind::he_uniform).value("he_normal", InitKind::he_normal)
      .value("xavier_uniform", InitKind::xavier_uniform).value("xavier_normal", InitKind::xavier_normal);
  py::enum_<OpKind> op_kind(m, "OpKind");  // one value per op of registry.h
#define MC_X(name) op_kind.value(#name, OpKind::name);
  MC_FOR_OPS(MC_X)
#undef MC_X

  // ---- runtime configuration ----
  m.def("set_num_threads", [](std::optional<int> n) {
    if (n && *n < 1) throw mc::ValueError("n: expected a thread count >= 1 or None, got " + std::to_string(*n));
    cpu_set_num_threads(n ? *n : 0);
  }, py::arg("n"),
     "Pin n OpenBLAS threads for every GEMM; None: the automatic default (one thread for GEMMs too small to "
     "split, OpenBLAS's default count for larger ones).");
  m.def("get_num_threads", &cpu_get_num_threads, "The pinned count, else the count large GEMMs use.");
  m.def("num_threads_pinned", &cpu_num_threads_pinned,
        "True after set_num_threads(n) or with OPENBLAS_NUM_THREADS set; False under the automatic policy.");
  m.def("blas_info", &cpu_blas_info);
  m.def("set_batch_invariant", &mc::set_batch_invariant, py::arg("enabled"),
        "Process-wide: predict, evaluate and eval-mode forward of CPU networks give every output row bitwise "
        "independent of its batch, the batch size and the thread count (a fixed-order GEMM instead of BLAS). "
        "Training is unaffected; CUDA networks ignore it.");
  m.def("get_batch_invariant", &mc::get_batch_invariant);
  m.def("permutation", [](int64_t n, uint64_t seed) {
    if (n < 0) throw mc::ValueError("n: expected >= 0, got " + std::to_string(n));
    py::array_t<int64_t> out(n);
    permutation_fill(out.mutable_data(), n, seed);
    return out;
  }, py::arg("n"), py::arg("seed"), "The shuffling order Network.train_epoch uses for (n, seed): int64 (n,).");
  m.def("epoch_seed", [](py::handle seed, py::handle epoch) {
    return mc::epoch_seed(as_u64(seed), as_u64(epoch));
  }, py::arg("seed"), py::arg("epoch"),
     "The shuffle seed of epoch `epoch` (0-based) of a run seeded with `seed` (ints, taken modulo 2**64): a hash "
     "of (seed, epoch) only, so a resumed run draws the same orders as an uninterrupted one.");
  m.def("cuda_available", &mc::cuda_available);
  m.def("cuda_unavailable_reason", &mc::cuda_unavailable_reason);

  init_sigint_watch();
  bind_input(m);
  bind_params(m);
  bind_loss(m);
  bind_kernels(m);
  bind_comm(m);
  bind_network(m);
}
