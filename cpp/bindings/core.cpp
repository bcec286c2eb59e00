// bindings/core.cpp — the pybind11 module mlpcore._core.
// It validates every array at the edge (type, dtype, ndim, shape, contiguity, finiteness, label
// range), converts to the C++ types, releases the GIL and calls the core. It holds no math.
// Policy for inputs: float32 and float64 arrays are accepted and converted to the model's dtype;
// non-contiguous or Fortran-ordered arrays are copied to C order; integers, float16, bool,
// complex and object arrays are refused with TypeError; NaN/Inf are refused with ValueError
// unless finiteness checks are switched off (set_check_finite(False)). Matrices are 2-D with at
// least one row and one column (ValueError otherwise). Targets of MSE / BCE may be 1-D (B,) when
// the prediction has one column; class ids are 1-D integers in [0, classes).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cmath>
#include <mutex>
#include <cstring>

#include "cpu/cpu_backend.h"
#include "mlpcore/layers.h"
#include "mlpcore/network.h"

namespace py = pybind11;
using namespace mc;

namespace {

std::atomic<bool> g_check_finite{true};

DType parse_dtype(py::handle h) {
  py::dtype d = py::dtype::from_args(py::reinterpret_borrow<py::object>(h));
  if (d.is(py::dtype::of<float>()) || (d.kind() == 'f' && d.itemsize() == 4)) return DType::f32;
  if (d.kind() == 'f' && d.itemsize() == 8) return DType::f64;
  throw mc::TypeError("dtype: expected float32 or float64, got " + std::string(py::str(d)));
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu;
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) return Device::cuda;
  throw mc::ValueError("device: expected 'cpu' or 'cuda', got '" + s + "'");
}

py::dtype np_dtype(DType dt) { return dt == DType::f32 ? py::dtype::of<float>() : py::dtype::of<double>(); }
// numpy's own equivalence (byte order included), not object identity.
bool same_dtype(const py::dtype& a, const py::dtype& b) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr());
}

std::string describe(py::handle obj) {
  if (py::isinstance<py::array>(obj)) {
    auto a = py::reinterpret_borrow<py::array>(obj);
    std::string shape = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) shape += std::to_string(a.shape(i)) + (a.ndim() == 1 || i + 1 < a.ndim() ? "," : "");
    shape += ")";
    return "array of dtype " + std::string(py::str(a.dtype())) + " and shape " + shape;
  }
  return std::string(py::str(py::type::handle_of(obj).attr("__name__")));
}

// float32 <-> float64 copy of a native, C-contiguous array. float64 values beyond float32's range
// become +-inf explicitly (a plain cast of them is undefined behaviour in C++).
py::array convert_float(const py::array& src, DType dt) {
  py::array out(np_dtype(dt), std::vector<py::ssize_t>(src.shape(), src.shape() + src.ndim()));
  const int64_t n = src.size();
  if (dt == DType::f32) {
    const double* s = static_cast<const double*>(src.data());
    float* d = static_cast<float*>(out.mutable_data());
    constexpr double kLimit = 0x1.ffffffp+127;  // FLT_MAX + half an ulp: from here on, round to inf
    for (int64_t i = 0; i < n; ++i)
      d[i] = std::fabs(s[i]) < kLimit || std::isnan(s[i]) ? float(s[i]) : s[i] > 0 ? INFINITY : -INFINITY;
  } else {
    const float* s = static_cast<const float*>(src.data());
    double* d = static_cast<double*>(out.mutable_data());
    for (int64_t i = 0; i < n; ++i) d[i] = double(s[i]);
  }
  return out;
}

// A float matrix argument: returns a C-contiguous array of dtype `dt`, shape (rows, cols)
// (`cols` = -1 accepts any). 1-D input is refused, not reshaped: the caller must say which.
// `check_values` = false skips the NaN/Inf scan (for a caller that already validated the data once,
// e.g. the Trainer calling train_epoch once per batch range).
py::array as_matrix(py::handle obj, const char* name, DType dt, int64_t cols = -1, int64_t rows = -1,
                    bool allow_empty = false, bool check_values = true) {
  py::array a = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj)
                                              : py::array::ensure(obj);
  if (!a) throw mc::TypeError(std::string(name) + ": expected a numpy array of float32 or float64, got " + describe(obj));
  const char kind = a.dtype().kind();
  if (kind != 'f' || (a.dtype().itemsize() != 4 && a.dtype().itemsize() != 8))
    throw mc::TypeError(std::string(name) + ": expected float32 or float64 values, got " + describe(a));
  if (a.ndim() != 2)
    throw mc::ValueError(std::string(name) + ": expected a 2-D array (batch, features), got " + describe(a));
  if (!allow_empty && a.shape(0) == 0) throw mc::ValueError(std::string(name) + ": empty batch (0 rows)");
  // Zero columns would leave row-wise kernels (softmax: max of the row) reading past the end.
  if (!allow_empty && a.shape(1) == 0)
    throw mc::ValueError(std::string(name) + ": expected at least 1 column, got " + describe(a));
  if (cols >= 0 && a.shape(1) != cols)
    throw mc::ValueError(std::string(name) + ": expected " + std::to_string(cols) + " columns, got " + describe(a));
  if (rows >= 0 && a.shape(0) != rows)
    throw mc::ValueError(std::string(name) + ": expected " + std::to_string(rows) + " rows, got " + describe(a));
  py::array out = py::array::ensure(a, py::array::c_style);  // the same array if already C-ordered
  const py::dtype want = np_dtype(dt);
  // Byte-swapped input: to native order first (same size, exact); then float32 <-> float64 in C++
  // (no numpy overflow warning; float64 beyond float32's range becomes +-inf, refused below).
  const py::dtype native = a.dtype().itemsize() == 4 ? py::dtype::of<float>() : py::dtype::of<double>();
  if (!same_dtype(out.dtype(), native)) out = py::array::ensure(out.attr("astype")(native), py::array::c_style);
  const bool converted = !same_dtype(native, want);
  if (converted) out = convert_float(out, dt);
  if (check_values && g_check_finite.load() && !cpu_backend().all_finite(dt, out.data(), out.size()))
    throw mc::ValueError(std::string(name) + ": contains NaN or Inf" +
                         (converted ? std::string(" after conversion to ") + dtype_name(dt) : std::string()) +
                         " (mlpcore.set_check_finite(False) skips this check)");
  return out;
}

// Integer class ids of shape (rows,) in [0, classes): returns an int32 copy. `rows_of` names
// what the labels must match ("the prediction", "X") in the length-mismatch message.
// `check_values` = false: an int32 C-contiguous (rows,) array is used as is (no copy); its range is
// still scanned (one compare per row), since an out-of-range id would index out of bounds.
py::array_t<int32_t> as_labels(py::handle obj, const char* name, int64_t rows, int64_t classes,
                               const char* rows_of = "the prediction", bool check_values = true) {
  py::array a = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
  if (!a) throw mc::TypeError(std::string(name) + ": expected a numpy array of integer class ids, got " + describe(obj));
  if (!check_values && a.dtype().is(py::dtype::of<int32_t>()) && a.ndim() == 1 && a.shape(0) == rows &&
      (a.flags() & py::array::c_style)) {
    const int32_t* v = static_cast<const int32_t*>(a.data());
    bool ok = true;
    for (int64_t i = 0; i < rows; ++i) ok &= (v[i] >= 0) & (v[i] < classes);
    if (ok) return py::reinterpret_borrow<py::array_t<int32_t>>(a);
    // fall through: the full path below names the first bad label
  }
  const char kind = a.dtype().kind();
  if (a.ndim() == 2 && a.shape(1) == classes && classes > 1)
    throw mc::ValueError(std::string(name) + ": expected class ids of shape (" + std::to_string(rows) +
                         ",), got " + describe(a) + "; this looks one-hot encoded: pass y.argmax(axis=1)");
  if (kind != 'i' && kind != 'u')
    throw mc::TypeError(std::string(name) + ": expected integer class ids, got " + describe(a));
  if (a.ndim() != 1)
    throw mc::ValueError(std::string(name) + ": expected a 1-D array of class ids, got " + describe(a));
  if (a.shape(0) != rows)
    throw mc::ValueError(std::string(name) + ": has " + std::to_string(a.shape(0)) + " labels but " + rows_of +
                         " has " + std::to_string(rows) + " rows");
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> wide(a);
  py::array_t<int32_t> out(rows);
  const int64_t* src = wide.data();
  int32_t* dst = out.mutable_data();
  for (int64_t i = 0; i < rows; ++i) {
    if (src[i] < 0 || src[i] >= classes)
      throw mc::ValueError(std::string(name) + ": label " + std::to_string(src[i]) + " at index " + std::to_string(i) +
                           " is out of range; expected class ids in [0, " + std::to_string(classes) + ")");
    dst[i] = int32_t(src[i]);
  }
  return out;
}

// The target of a loss for a prediction of shape (rows, cols): class ids for cross-entropy, else
// a float matrix shaped like the prediction ((rows,) is accepted when cols == 1, as MSELoss does).
py::array as_loss_target(LossKind loss, py::handle obj, const char* name, DType dt, int64_t rows, int64_t cols,
                         const char* rows_of, bool check_values = true) {
  if (loss == LossKind::cross_entropy) return as_labels(obj, name, rows, cols, rows_of, check_values);
  py::array t = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
  if (!t) return as_matrix(obj, name, dt, cols, rows);  // raises the TypeError
  if (t.ndim() >= 1 && t.shape(0) != rows && (t.ndim() == 1 || t.ndim() == 2))
    throw mc::ValueError(std::string(name) + ": expected " + std::to_string(rows) + " rows (one per row of " +
                         rows_of + "), got " + describe(t));
  if (t.ndim() == 1 && cols == 1) t = t.attr("reshape")(rows, 1);
  return as_matrix(t, name, dt, cols, rows, false, check_values);
}

py::array new_matrix(DType dt, int64_t rows, int64_t cols) {
  return py::array(np_dtype(dt), std::vector<py::ssize_t>{rows, cols});
}

// A writable float array that C++ writes into in place (a parameter's .grad view): must already
// be exactly right, since a silent copy would lose the write.
void* out_view(py::array a, const char* name, DType dt, int64_t numel) {
  if (!a.dtype().is(np_dtype(dt)) || a.size() != numel || !(a.flags() & py::array::c_style) || !a.writeable())
    throw mc::ValueError(std::string(name) + ": expected a writable C-contiguous " + dtype_name(dt) + " array of " +
                         std::to_string(numel) + " values, got " + describe(a));
  return a.mutable_data();
}

// A float array the module-path kernels read as is (a parameter view, a saved input): it must
// already be C-contiguous, of dtype `dt`, 2-D (rows, cols) or 1-D (cols,) when rows < 0; -1 in
// cols accepts any width. Validated because the private kernels are still callable from Python.
const void* in_view(const py::array& a, const char* name, DType dt, int64_t rows, int64_t cols) {
  const bool shape_ok = rows < 0 ? (a.ndim() == 1 && (cols < 0 || a.shape(0) == cols))
                                 : (a.ndim() == 2 && a.shape(0) == rows && (cols < 0 || a.shape(1) == cols));
  if (!a.dtype().is(np_dtype(dt)) || !(a.flags() & py::array::c_style) || !shape_ok)
    throw mc::ValueError(std::string(name) + ": expected a C-contiguous " + dtype_name(dt) + " array of shape (" +
                         (rows < 0 ? "" : std::to_string(rows) + ", ") + (cols < 0 ? "any" : std::to_string(cols)) +
                         "), got " + describe(a));
  return a.data();
}

// A weight matrix: 2-D of dtype dt, C-contiguous; returns (out, in) as used by linear_*.
std::pair<int64_t, int64_t> weight_dims(const py::array& w, DType dt, bool transposed) {
  if (w.ndim() != 2) throw mc::ValueError("weight: expected a 2-D array, got " + describe(w));
  in_view(w, "weight", dt, w.shape(0), w.shape(1));
  return transposed ? std::make_pair(int64_t(w.shape(1)), int64_t(w.shape(0)))
                    : std::make_pair(int64_t(w.shape(0)), int64_t(w.shape(1)));
}

Activation make_act(ActKind k, double param) { return Activation{k, param}; }

void check_batch_size(int64_t batch_size) {
  if (batch_size < 1) throw mc::ValueError("batch_size: expected >= 1, got " + std::to_string(batch_size));
}

struct PyOptimizer {
  std::vector<std::shared_ptr<ParamArena>> arenas;  // keeps the memory alive
  std::unique_ptr<Optimizer> opt;
};

// ---- data for networks on the GPU --------------------------------------------------------------
// A network whose arena lives on cuda computes on device memory, so the bindings copy its inputs
// to the device. Whole data sets (train_epoch, evaluate, predict) are uploaded once and cached per
// network — two entries, most recent first — keyed by the identity of the caller's numpy arrays:
// handing the same arrays in again (every epoch of a fit, the validation set after each epoch)
// reuses the device copy without validating or uploading again. The cache keeps those arrays
// alive; it does NOT see later in-place writes to them: call Network.release_device_data() after
// modifying a cached array (or to give the device memory back). Inputs that are not numpy arrays,
// and single batches (train_step, forward), are staged per call in reusable device buffers.

// What identifies an array's contents for the cache (besides its identity): data, shape, strides.
struct ArrayLayout {
  const void* data = nullptr;
  std::vector<py::ssize_t> shape, strides;
  py::object dtype = py::none();
  static ArrayLayout of(py::handle h) {
    ArrayLayout l;
    if (!py::isinstance<py::array>(h)) return l;
    auto a = py::reinterpret_borrow<py::array>(h);
    l.data = a.data();
    l.shape.assign(a.shape(), a.shape() + a.ndim());
    l.strides.assign(a.strides(), a.strides() + a.ndim());
    l.dtype = a.dtype();
    return l;
  }
  bool same(const ArrayLayout& o) const {
    return data == o.data && shape == o.shape && strides == o.strides &&
           (dtype.is_none() ? o.dtype.is_none() : (!o.dtype.is_none() && dtype.equal(o.dtype)));
  }
};

enum class YKind : int { none = 0, labels = 1, values = 2 };

struct DeviceData {
  py::object x_obj, y_obj;  // the caller's objects (y_obj None without targets)
  ArrayLayout x_layout, y_layout;
  YKind ykind = YKind::none;
  int64_t n = 0;
  Buffer X, Y;  // device copies: X (n, in) in the network's dtype; Y int32 labels or (n, out)
};

struct PyNetwork : Network {
  using Network::Network;
  std::shared_ptr<DeviceData> cache[2];  // most recently used first
  std::mutex stage_mutex;                // staging buffers: one call at a time
  Buffer stage_x, stage_y, stage_out;
};

bool on_cuda(const Network& net) { return net.arena()->device() == Device::cuda; }

// Device memory of at least `nbytes` in `b` (allocated on first use, grown when needed).
void* stage(Buffer& b, size_t nbytes) {
  if (b.device() != Device::cuda || !b.data())
    b = Buffer(Device::cuda, nbytes);
  else
    b.reserve(nbytes);
  return b.data();
}

// Validates y for `net` and loss kind: int32 labels, or a float (n, out) matrix ((n,) for one
// output). `validate` = false skips the value scans (NaN/Inf, label range), as as_matrix /
// as_labels do. `rows_of` names the input y must match in length errors.
py::array as_targets(const Network& net, py::handle Y_, YKind ykind, int64_t n, bool validate = true,
                     const char* rows_of = "X") {
  return as_loss_target(ykind == YKind::labels ? LossKind::cross_entropy : LossKind::mse, Y_, "y",
                        net.arena()->dtype(), n, net.out_features(), rows_of, validate);
}

YKind ykind_of(LossKind loss) { return loss == LossKind::cross_entropy ? YKind::labels : YKind::values; }

// The device copy of (X, Y) for a network on cuda: from the cache, or validated and uploaded.
// A cache hit is neither validated nor uploaded again (it was both when it was cached).
std::shared_ptr<DeviceData> device_data(PyNetwork& net, py::handle X_, py::handle Y_, YKind ykind,
                                        bool validate = true) {
  const ArrayLayout xl = ArrayLayout::of(X_), yl = ArrayLayout::of(Y_);
  for (int i = 0; i < 2; ++i) {
    auto e = net.cache[i];
    if (e && e->ykind == ykind && e->x_obj.is(X_) && e->y_obj.is(Y_) && e->x_layout.same(xl) && e->y_layout.same(yl)) {
      if (i == 1) std::swap(net.cache[0], net.cache[1]);
      return e;
    }
  }
  const DType dt = net.arena()->dtype();
  py::array X = as_matrix(X_, "X", dt, net.in_features(), -1, false, validate);
  const int64_t n = X.shape(0);
  py::array Y;
  if (ykind != YKind::none) Y = as_targets(net, Y_, ykind, n, validate);
  const bool cacheable = py::isinstance<py::array>(X_) && (ykind == YKind::none || py::isinstance<py::array>(Y_));
  // Evict the least recently used entry first; its device memory is reused when no other call
  // still holds it (a loop of train_on_batch calls then allocates nothing after the first).
  std::shared_ptr<DeviceData> old;
  if (cacheable) old = std::move(net.cache[1]);
  auto d = std::make_shared<DeviceData>();
  d->x_obj = py::reinterpret_borrow<py::object>(X_);
  d->y_obj = ykind == YKind::none ? py::object(py::none()) : py::reinterpret_borrow<py::object>(Y_);
  d->x_layout = xl;
  d->y_layout = yl;
  d->ykind = ykind;
  d->n = n;
  {
    py::gil_scoped_release nogil;
    Backend& be = backend_for(Device::cuda);
    const size_t xb = size_t(X.nbytes()), yb = ykind == YKind::none ? 0 : size_t(Y.nbytes());
    if (old && old.use_count() == 1) {
      d->X = std::move(old->X);
      d->Y = std::move(old->Y);
    }
    try {
      stage(d->X, xb);
      if (yb) stage(d->Y, yb);
    } catch (const std::exception& e) {
      throw std::runtime_error("the data set (" + std::to_string((xb + yb) >> 20) +
                               " MiB) does not fit in GPU memory next to the model; pass fewer rows per call: " +
                               e.what());
    }
    be.upload(d->X.data(), X.data(), xb);
    if (yb) be.upload(d->Y.data(), Y.data(), yb);
  }
  if (cacheable) {
    net.cache[1] = std::move(net.cache[0]);
    net.cache[0] = d;
  }
  return d;
}

}  // namespace

void bind_comm(py::module_& m);  // bindings/comm.cpp

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
      .value("bce_with_logits", LossKind::bce_with_logits);
  py::enum_<OptimKind>(m, "OptimKind")
      .value("sgd", OptimKind::sgd).value("adam", OptimKind::adam).value("adamw", OptimKind::adamw)
      .value("rmsprop", OptimKind::rmsprop);
  py::enum_<InitKind>(m, "InitKind")
      .value("zeros", InitKind::zeros).value("he_uniform", InitKind::he_uniform).value("he_normal", InitKind::he_normal)
      .value("xavier_uniform", InitKind::xavier_uniform).value("xavier_normal", InitKind::xavier_normal);
  py::enum_<OpKind>(m, "OpKind")
      .value("linear", OpKind::linear).value("activation", OpKind::activation).value("dropout", OpKind::dropout)
      .value("maxout", OpKind::maxout).value("residual_add", OpKind::residual_add);

  bind_comm(m);

  // ---- runtime configuration ----
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw mc::ValueError("n: expected a thread count >= 1, got " + std::to_string(n));
    cpu_set_num_threads(n);
  }, py::arg("n"));
  m.def("get_num_threads", &cpu_get_num_threads);
  m.def("blas_info", &cpu_blas_info);
  m.def("set_check_finite", [](bool on) { g_check_finite = on; }, py::arg("enabled"));
  m.def("get_check_finite", []() { return g_check_finite.load(); });
  m.def("permutation", [](int64_t n, uint64_t seed) {
    if (n < 0) throw mc::ValueError("n: expected >= 0, got " + std::to_string(n));
    py::array_t<int64_t> out(n);
    permutation_fill(out.mutable_data(), n, seed);
    return out;
  }, py::arg("n"), py::arg("seed"), "The shuffling order Network.train_epoch uses for (n, seed): int64 (n,).");
  m.def("cuda_available", &mc::cuda_available);
  m.def("cuda_unavailable_reason", &mc::cuda_unavailable_reason);
  m.def("_as_matrix", [](py::handle x, const std::string& name, py::handle dtype, int64_t cols) {
    return as_matrix(x, name.c_str(), parse_dtype(dtype), cols);
  }, py::arg("x"), py::arg("name"), py::arg("dtype"), py::arg("cols") = -1,
     "Validate/convert a float matrix argument exactly as the core does (used by the Python layer).");
  m.def("_as_labels", [](py::handle y, const std::string& name, int64_t rows, int64_t classes) {
    return as_labels(y, name.c_str(), rows, classes);
  }, py::arg("y"), py::arg("name"), py::arg("rows"), py::arg("classes"));

  // ---- parameter arena ----
  py::class_<DropoutState, std::shared_ptr<DropoutState>>(m, "DropoutState")
      .def(py::init([](uint64_t seed) { auto s = std::make_shared<DropoutState>(); s->seed = seed; return s; }),
           py::arg("seed"))
      .def_readwrite("seed", &DropoutState::seed)
      .def_readwrite("counter", &DropoutState::counter);

  py::class_<ParamArena, std::shared_ptr<ParamArena>>(m, "ParamArena")
      .def(py::init([](const std::string& device, py::handle dtype, int64_t numel) {
             if (numel < 0) throw mc::ValueError("numel must be >= 0");
             return std::make_shared<ParamArena>(parse_device(device), parse_dtype(dtype), numel);
           }), py::arg("device"), py::arg("dtype"), py::arg("numel"))
      .def_property_readonly("numel", &ParamArena::numel)
      .def_property_readonly("device", [](const ParamArena& a) { return std::string(device_name(a.device())); })
      .def_property_readonly("dtype", [](const ParamArena& a) { return np_dtype(a.dtype()); })
      .def("zero_grad", [](ParamArena& a) { py::gil_scoped_release nogil; a.zero_grad(); })
      // Zero-copy numpy views (CPU only): the view's base is the arena, which it keeps alive.
      .def("view", [](std::shared_ptr<ParamArena> a, bool grad, int64_t offset, std::vector<py::ssize_t> shape) {
             if (a->device() != Device::cpu)
               throw std::runtime_error("arena lives on cuda: numpy views exist only for cpu memory (use read())");
             py::ssize_t n = 1;
             for (auto s : shape) n *= s;
             if (offset < 0 || offset + n > a->numel()) throw mc::ValueError("view outside the arena");
             void* p = grad ? a->grad_at(offset) : a->param_at(offset);
             std::vector<py::ssize_t> strides(shape.size());
             py::ssize_t st = py::ssize_t(dtype_size(a->dtype()));
             for (size_t i = shape.size(); i-- > 0;) { strides[i] = st; st *= shape[i]; }
             return py::array(np_dtype(a->dtype()), shape, strides, p, py::cast(a));
           }, py::arg("grad"), py::arg("offset"), py::arg("shape"))
      // Copies in and out (any device).
      .def("read", [](ParamArena& a, bool grad, int64_t offset, int64_t n) {
             if (offset < 0 || n < 0 || offset + n > a.numel()) throw mc::ValueError("read outside the arena");
             py::array out(np_dtype(a.dtype()), std::vector<py::ssize_t>{n});
             backend_for(a.device()).download(out.mutable_data(), grad ? a.grad_at(offset) : a.param_at(offset),
                                              size_t(n) * dtype_size(a.dtype()));
             return out;
           }, py::arg("grad"), py::arg("offset"), py::arg("n"))
      .def("write", [](ParamArena& a, bool grad, int64_t offset, py::array values) {
             py::array v = py::array::ensure(values.attr("astype")(np_dtype(a.dtype())), py::array::c_style);
             if (offset < 0 || offset + v.size() > a.numel()) throw mc::ValueError("write outside the arena");
             backend_for(a.device()).upload(grad ? a.grad_at(offset) : a.param_at(offset), v.data(),
                                            size_t(v.size()) * dtype_size(a.dtype()));
           }, py::arg("grad"), py::arg("offset"), py::arg("values"))
      .def("init", [](ParamArena& a, int64_t offset, int64_t n, InitKind kind, int64_t fan_in, int64_t fan_out,
                      uint64_t seed) {
             if (offset < 0 || n < 0 || offset + n > a.numel()) throw mc::ValueError("init outside the arena");
             std::vector<char> host(size_t(n) * dtype_size(a.dtype()));
             init_fill(a.dtype(), host.data(), n, kind, fan_in, fan_out, seed);
             backend_for(a.device()).upload(a.param_at(offset), host.data(), host.size());
           }, py::arg("offset"), py::arg("n"), py::arg("kind"), py::arg("fan_in"), py::arg("fan_out"), py::arg("seed"))
      // Copy every parameter and gradient from another arena of the same size (device moves).
      .def("copy_from", [](ParamArena& a, const ParamArena& b) {
             if (a.numel() != b.numel() || a.dtype() != b.dtype()) throw mc::ValueError("copy_from: arenas differ");
             const size_t nb = size_t(a.numel()) * dtype_size(a.dtype());
             std::vector<char> host(nb);
             backend_for(b.device()).download(host.data(), b.params(), nb);
             backend_for(a.device()).upload(a.params(), host.data(), nb);
             backend_for(b.device()).download(host.data(), b.grads(), nb);
             backend_for(a.device()).upload(a.grads(), host.data(), nb);
           });

  // ---- module-by-module kernels (numpy in, new numpy out) ----
  m.def("linear_forward", [](py::handle x_, py::array weight, py::object bias, bool transposed, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    const auto [out, in] = weight_dims(weight, dt, transposed);
    py::array x = as_matrix(x_, "x", dt, in);
    const int64_t B = x.shape(0);
    py::array z = new_matrix(dt, B, out);
    const void* b = bias.is_none() ? nullptr : in_view(py::cast<py::array>(bias), "bias", dt, -1, out);
    {
      py::gil_scoped_release nogil;
      Backend& be = cpu_backend();
      linear_forward(be, dt, z.mutable_data(), x.data(), weight.data(), B, in, out, transposed);
      if (b) be.bias_act_forward(dt, Activation{}, z.mutable_data(), z.mutable_data(), b, B, out);
    }
    return py::make_tuple(z, x);
  }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("transposed"), py::arg("dtype"));

  // Accumulates dW (and db) into the given gradient views, returns dx (or None).
  m.def("linear_backward", [](py::handle dz_, py::array x, py::array weight, py::array dweight, py::object dbias,
                              bool need_dx, bool transposed, py::handle dtype) -> py::object {
    const DType dt = parse_dtype(dtype);
    const auto [out, in] = weight_dims(weight, dt, transposed);
    if (x.ndim() != 2) throw mc::ValueError("x: expected a 2-D array, got " + describe(x));
    const int64_t B = x.shape(0);
    in_view(x, "x", dt, B, in);
    py::array dz = as_matrix(dz_, "grad_output", dt, out, B);
    void* dw = out_view(dweight, "weight.grad", dt, in * out);
    void* db = dbias.is_none() ? nullptr : out_view(py::cast<py::array>(dbias), "bias.grad", dt, out);
    py::array dx;
    if (need_dx) dx = new_matrix(dt, B, in);
    {
      py::gil_scoped_release nogil;
      Backend& be = cpu_backend();
      void* dzp = const_cast<void*>(dz.data());  // identity backward with dz == da writes nothing
      if (db) be.act_backward_bias_grad(dt, Activation{}, dzp, dzp, nullptr, nullptr, db, true, B, out);
      linear_backward(be, dt, need_dx ? dx.mutable_data() : nullptr, dw, dz.data(), x.data(), weight.data(), B, in,
                      out, transposed, true);
    }
    if (!need_dx) return py::none();
    return std::move(dx);
  }, py::arg("grad_output"), py::arg("x"), py::arg("weight"), py::arg("dweight"), py::arg("dbias"),
     py::arg("need_dx"), py::arg("transposed"), py::arg("dtype"));

  m.def("act_forward", [](ActKind kind, double param, py::handle x_, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    py::array x = as_matrix(x_, "x", dt);
    py::array a = new_matrix(dt, x.shape(0), x.shape(1));
    {
      py::gil_scoped_release nogil;
      cpu_backend().bias_act_forward(dt, make_act(kind, param), const_cast<void*>(x.data()), a.mutable_data(), nullptr,
                                     x.shape(0), x.shape(1));
    }
    return a;
  }, py::arg("kind"), py::arg("param"), py::arg("x"), py::arg("dtype"));

  m.def("act_backward", [](ActKind kind, double param, py::handle g_, py::array x, py::array a, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    if (a.ndim() != 2) throw mc::ValueError("a: expected a 2-D array, got " + describe(a));
    in_view(a, "a", dt, a.shape(0), a.shape(1));
    in_view(x, "x", dt, a.shape(0), a.shape(1));
    py::array g = as_matrix(g_, "grad_output", dt, a.shape(1), a.shape(0));
    py::array dx = new_matrix(dt, a.shape(0), a.shape(1));
    {
      py::gil_scoped_release nogil;
      cpu_backend().act_backward_bias_grad(dt, make_act(kind, param), dx.mutable_data(), g.data(), x.data(), a.data(),
                                           nullptr, false, a.shape(0), a.shape(1));
    }
    return dx;
  }, py::arg("kind"), py::arg("param"), py::arg("grad_output"), py::arg("x"), py::arg("a"), py::arg("dtype"));

  m.def("loss_forward_backward", [](LossKind kind, py::handle pred_, py::handle target_, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    py::array pred = as_matrix(pred_, "pred", dt);
    const int64_t B = pred.shape(0), C = pred.shape(1);
    if (C == 0) throw mc::ValueError("pred: expected at least 1 column, got " + describe(pred));
    py::array target = as_loss_target(kind, target_, "target", dt, B, C, "the prediction");
    py::array grad = new_matrix(dt, B, C);
    double value = 0;
    {
      py::gil_scoped_release nogil;
      cpu_backend().loss_forward_backward(dt, kind, &value, grad.mutable_data(), pred.data(), target.data(), B, C, B);
    }
    return py::make_tuple(value, grad);
  }, py::arg("kind"), py::arg("pred"), py::arg("target"), py::arg("dtype"));

  m.def("dropout_forward", [](py::handle x_, double p, DropoutState& st, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    py::array x = as_matrix(x_, "x", dt);
    py::array y = new_matrix(dt, x.shape(0), x.shape(1)), mask = new_matrix(dt, x.shape(0), x.shape(1));
    const int64_t n = x.size();
    {
      py::gil_scoped_release nogil;
      cpu_backend().dropout_forward(dt, y.mutable_data(), mask.mutable_data(), x.data(), n, p, st.seed, st.counter);
    }
    st.counter += uint64_t(n);
    return py::make_tuple(y, mask);
  }, py::arg("x"), py::arg("p"), py::arg("state"), py::arg("dtype"));

  m.def("mul", [](py::handle a_, py::array b, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    if (b.ndim() != 2) throw mc::ValueError("b: expected a 2-D array, got " + describe(b));
    in_view(b, "b", dt, b.shape(0), b.shape(1));
    py::array a = as_matrix(a_, "grad_output", dt, b.shape(1), b.shape(0));
    py::array y = new_matrix(dt, b.shape(0), b.shape(1));
    cpu_backend().mul(dt, y.mutable_data(), a.data(), b.data(), b.size());
    return y;
  }, py::arg("a"), py::arg("b"), py::arg("dtype"));

  m.def("maxout_forward", [](py::handle x_, int64_t pieces, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    py::array x = as_matrix(x_, "x", dt);
    if (pieces < 1 || x.shape(1) % pieces) throw mc::ValueError("maxout: width is not a multiple of pieces");
    const int64_t B = x.shape(0), C = x.shape(1) / pieces;
    py::array y = new_matrix(dt, B, C);
    py::array_t<int32_t> idx(std::vector<py::ssize_t>{B, C});
    {
      py::gil_scoped_release nogil;
      cpu_backend().maxout_forward(dt, y.mutable_data(), idx.mutable_data(), x.data(), B, C, pieces);
    }
    return py::make_tuple(y, idx);
  }, py::arg("x"), py::arg("pieces"), py::arg("dtype"));

  m.def("maxout_backward", [](py::handle g_, py::array_t<int32_t, py::array::c_style | py::array::forcecast> idx,
                              int64_t pieces, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    if (idx.ndim() != 2 || pieces < 1) throw mc::ValueError("idx: expected the 2-D argmax array of maxout_forward");
    const int64_t B = idx.shape(0), C = idx.shape(1);
    for (int64_t i = 0; i < B * C; ++i)  // the winners index into groups of `pieces`
      if (idx.data()[i] < 0 || idx.data()[i] >= pieces) throw mc::ValueError("idx: winner index out of range");
    py::array g = as_matrix(g_, "grad_output", dt, C, B);
    py::array dx = new_matrix(dt, B, C * pieces);
    {
      py::gil_scoped_release nogil;
      cpu_backend().maxout_backward(dt, dx.mutable_data(), g.data(), idx.data(), B, C, pieces);
    }
    return dx;
  }, py::arg("grad_output"), py::arg("idx"), py::arg("pieces"), py::arg("dtype"));

  // ---- optimizer ----
  py::class_<OptimParams>(m, "OptimParams")
      .def(py::init<>())
      .def_readwrite("kind", &OptimParams::kind)
      .def_readwrite("lr", &OptimParams::lr)
      .def_readwrite("momentum", &OptimParams::momentum)
      .def_readwrite("weight_decay", &OptimParams::weight_decay)
      .def_readwrite("nesterov", &OptimParams::nesterov)
      .def_readwrite("beta1", &OptimParams::beta1)
      .def_readwrite("beta2", &OptimParams::beta2)
      .def_readwrite("eps", &OptimParams::eps)
      .def_readwrite("alpha", &OptimParams::alpha)
      .def_readwrite("centered", &OptimParams::centered)
      .def_readwrite("step", &OptimParams::step);

  py::class_<PyOptimizer>(m, "Optimizer")
      // segments: list of (arena, offset, numel); all arenas share one device and dtype.
      .def(py::init([](const OptimParams& p, const std::vector<std::tuple<std::shared_ptr<ParamArena>, int64_t, int64_t>>& segs) {
             if (segs.empty()) throw mc::ValueError("params: the optimizer got an empty parameter list");
             auto po = std::make_unique<PyOptimizer>();
             std::vector<OptimSegment> s;
             const Device dev = std::get<0>(segs[0])->device();
             const DType dt = std::get<0>(segs[0])->dtype();
             for (const auto& [arena, off, n] : segs) {
               if (arena->device() != dev || arena->dtype() != dt)
                 throw mc::ValueError("params: all parameters must share one device and dtype");
               if (off < 0 || off + n > arena->numel()) throw mc::ValueError("params: segment outside its arena");
               po->arenas.push_back(arena);
               s.push_back(OptimSegment{arena->param_at(off), arena->grad_at(off), n});
             }
             po->opt = std::make_unique<Optimizer>(dev, dt, p, std::move(s));
             return po;
           }), py::arg("params"), py::arg("segments"))
      .def("step", [](PyOptimizer& o) { py::gil_scoped_release nogil; o.opt->step(); })
      .def_property("params", [](PyOptimizer& o) { return o.opt->params(); },
                    [](PyOptimizer& o, const OptimParams& p) { o.opt->params() = p; })
      .def("set_lr", [](PyOptimizer& o, double lr) { o.opt->params().lr = lr; })
      .def("reset_state", [](PyOptimizer& o) { o.opt->reset_state(); })
      .def_property_readonly("state_numel", [](PyOptimizer& o) { return o.opt->state_numel(); })
      .def("read_state", [](PyOptimizer& o) {
        py::array out(np_dtype(o.opt->dtype()), std::vector<py::ssize_t>{o.opt->state_numel()});
        backend_for(o.opt->device()).download(out.mutable_data(), o.opt->state().data(), size_t(out.nbytes()));
        return out;
      })
      .def("write_state", [](PyOptimizer& o, py::array v, int64_t step) {
        py::array a = py::array::ensure(v.attr("astype")(np_dtype(o.opt->dtype())), py::array::c_style);
        if (a.size() != o.opt->state_numel())
          throw mc::ValueError("optimizer state: expected " + std::to_string(o.opt->state_numel()) + " values, got " +
                               std::to_string(a.size()));
        backend_for(o.opt->device()).upload(o.opt->state().data(), a.data(), size_t(a.nbytes()));
        o.opt->params().step = step;
      }, py::arg("values"), py::arg("step"));

  // ---- compiled network ----
  py::class_<OpSpec>(m, "OpSpec")
      .def(py::init<>())
      .def_readwrite("kind", &OpSpec::kind)
      .def_readwrite("in_features", &OpSpec::in_features)
      .def_readwrite("out_features", &OpSpec::out_features)
      .def_readwrite("has_bias", &OpSpec::has_bias)
      .def_readwrite("transposed", &OpSpec::transposed)
      .def_readwrite("weight_off", &OpSpec::weight_off)
      .def_readwrite("bias_off", &OpSpec::bias_off)
      .def_property("act_kind", [](const OpSpec& s) { return s.act.kind; }, [](OpSpec& s, ActKind k) { s.act.kind = k; })
      .def_property("act_param", [](const OpSpec& s) { return s.act.param; }, [](OpSpec& s, double v) { s.act.param = v; })
      .def_readwrite("p", &OpSpec::p)
      .def_readwrite("dropout", &OpSpec::dropout)
      .def_readwrite("pieces", &OpSpec::pieces)
      .def_readwrite("skip", &OpSpec::skip);

  // On a cuda arena every method computes on the device: see "data for networks on the GPU".
  py::class_<PyNetwork, std::shared_ptr<PyNetwork>>(m, "Network")
      .def(py::init<std::shared_ptr<ParamArena>, std::vector<OpSpec>, int64_t>(), py::arg("arena"), py::arg("ops"),
           py::arg("in_features"))
      .def_property_readonly("in_features", &Network::in_features)
      .def_property_readonly("out_features", &Network::out_features)
      .def_property_readonly("num_ops", [](const PyNetwork& n) { return n.ops().size(); })
      .def_property_readonly("capacity", &Network::capacity)
      .def_property_readonly("device", [](const PyNetwork& n) { return std::string(device_name(n.arena()->device())); })
      .def_property("training", &Network::training, &Network::set_training)
      .def_property_readonly("last_correct", &Network::last_correct)
      .def("forward", [](PyNetwork& net, py::handle x_) {
        const DType dt = net.arena()->dtype();
        py::array x = as_matrix(x_, "x", dt, net.in_features());
        py::array out = new_matrix(dt, x.shape(0), net.out_features());
        {
          py::gil_scoped_release nogil;
          const void* xp = x.data();
          std::unique_lock<std::mutex> lock(net.stage_mutex, std::defer_lock);
          if (on_cuda(net)) {
            lock.lock();
            xp = stage(net.stage_x, size_t(x.nbytes()));
            backend_for(Device::cuda).upload(const_cast<void*>(xp), x.data(), size_t(x.nbytes()));
          }
          net.forward_to_host(out.mutable_data(), xp, x.shape(0));
        }
        return out;
      }, py::arg("x"))
      .def("predict", [](PyNetwork& net, py::handle x_, int64_t batch_size) {
        const DType dt = net.arena()->dtype();
        if (on_cuda(net)) {
          check_batch_size(batch_size);  // before the upload
          auto d = device_data(net, x_, py::none(), YKind::none);
          py::array out = new_matrix(dt, d->n, net.out_features());
          {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(net.stage_mutex);
            void* o = stage(net.stage_out, size_t(out.nbytes()));
            net.predict(o, d->X.data(), d->n, batch_size);
            backend_for(Device::cuda).download(out.mutable_data(), o, size_t(out.nbytes()));
          }
          return out;
        }
        py::array x = as_matrix(x_, "X", dt, net.in_features());
        check_batch_size(batch_size);
        py::array out = new_matrix(dt, x.shape(0), net.out_features());
        {
          py::gil_scoped_release nogil;
          net.predict(out.mutable_data(), x.data(), x.shape(0), batch_size);
        }
        return out;
      }, py::arg("X"), py::arg("batch_size") = 1024)
      .def("train_step", [](PyNetwork& net, PyOptimizer& opt, LossKind loss, py::handle x_, py::handle y_,
                            bool check_finite) {
        const DType dt = net.arena()->dtype();
        py::array x = as_matrix(x_, "x", dt, net.in_features());
        const int64_t B = x.shape(0);
        py::array y = as_targets(net, y_, ykind_of(loss), B, true, "x");
        py::gil_scoped_release nogil;
        if (on_cuda(net)) {
          std::lock_guard<std::mutex> lock(net.stage_mutex);
          Backend& be = backend_for(Device::cuda);
          void* xd = stage(net.stage_x, size_t(x.nbytes()));
          void* yd = stage(net.stage_y, size_t(y.nbytes()));
          be.upload(xd, x.data(), size_t(x.nbytes()));
          be.upload(yd, y.data(), size_t(y.nbytes()));
          return net.train_step(*opt.opt, loss, xd, yd, B, check_finite);
        }
        return net.train_step(*opt.opt, loss, x.data(), y.data(), B, check_finite);
      }, py::arg("optimizer"), py::arg("loss"), py::arg("x"), py::arg("y"), py::arg("check_finite") = true)
      // batch_begin/batch_end: run only that range of the epoch's batches (see network.h).
      // validate=False skips the O(n) NaN/Inf and label-range scans of X and y (dtype and shape
      // are still checked): for a caller that validated the data once and then calls per range.
      // On cuda, the data set is uploaded by the first call and reused by the next ones.
      .def("train_epoch", [](PyNetwork& net, PyOptimizer& opt, LossKind loss, py::handle X_, py::handle Y_,
                             int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch, bool check_finite,
                             int64_t batch_begin, int64_t batch_end, bool validate) {
        if (on_cuda(net)) {
          check_batch_size(batch_size);  // before the upload
          auto d = device_data(net, X_, Y_, ykind_of(loss), validate);
          py::gil_scoped_release nogil;
          return net.train_epoch(*opt.opt, loss, d->X.data(), d->Y.data(), d->n, batch_size, shuffle, seed, epoch,
                                 check_finite, batch_begin, batch_end);
        }
        const DType dt = net.arena()->dtype();
        py::array X = as_matrix(X_, "X", dt, net.in_features(), -1, false, validate);
        const int64_t n = X.shape(0);
        py::array Y = as_targets(net, Y_, ykind_of(loss), n, validate);
        check_batch_size(batch_size);
        py::gil_scoped_release nogil;
        return net.train_epoch(*opt.opt, loss, X.data(), Y.data(), n, batch_size, shuffle, seed, epoch, check_finite,
                               batch_begin, batch_end);
      }, py::arg("optimizer"), py::arg("loss"), py::arg("X"), py::arg("y"), py::arg("batch_size"), py::arg("shuffle"),
         py::arg("seed"), py::arg("epoch") = 0, py::arg("check_finite") = true, py::arg("batch_begin") = 0,
         py::arg("batch_end") = -1, py::arg("validate") = true)
      .def("evaluate", [](PyNetwork& net, LossKind loss, py::handle X_, py::handle Y_, int64_t batch_size) {
        check_batch_size(batch_size);
        int64_t correct = 0;
        double value;
        if (on_cuda(net)) {
          auto d = device_data(net, X_, Y_, ykind_of(loss));
          py::gil_scoped_release nogil;
          value = net.evaluate(loss, d->X.data(), d->Y.data(), d->n, batch_size, &correct);
        } else {
          const DType dt = net.arena()->dtype();
          py::array X = as_matrix(X_, "X", dt, net.in_features());
          const int64_t n = X.shape(0);
          py::array Y = as_targets(net, Y_, ykind_of(loss), n);
          py::gil_scoped_release nogil;
          value = net.evaluate(loss, X.data(), Y.data(), n, batch_size, &correct);
        }
        return py::make_tuple(value, correct);
      }, py::arg("loss"), py::arg("X"), py::arg("y"), py::arg("batch_size") = 1024)
      .def("release_device_data", [](PyNetwork& net) {
             net.cache[0].reset();
             net.cache[1].reset();
           },
           "Drop the cached device copies of data sets (a network on cuda); the next call uploads again.")
      .def_property_readonly("cached_device_data", [](const PyNetwork& net) {
        return int(bool(net.cache[0])) + int(bool(net.cache[1]));
      }, "Number of data sets held in device memory (0 on cpu).");
}
