// bindings/input.cpp — the input policy (see input.h): every array from Python is checked and
// converted here, once, before any pointer reaches the core.
#include "input.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace mc_py {

namespace {
std::atomic<bool> g_check_finite{true};

// numpy's own equivalence (byte order included), not object identity.
bool same_dtype(const py::dtype& a, const py::dtype& b) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr());
}
}  // namespace

void set_check_finite(bool on) { g_check_finite.store(on); }
bool get_check_finite() { return g_check_finite.load(); }

DType parse_dtype(py::handle h) {
  auto refused = [](const std::string& got) { return mc::TypeError("dtype: expected float32 or float64, got " + got); };
  // None is refused (numpy would read it as float64), and so is anything numpy cannot read as a
  // dtype; byte-swapped floats are not a compute dtype either.
  if (h.is_none()) throw refused("None");
  py::dtype d;
  try {
    d = py::dtype::from_args(py::reinterpret_borrow<py::object>(h));
  } catch (const py::error_already_set&) {
    throw refused(std::string(py::repr(h)));
  }
  if (same_dtype(d, py::dtype::of<float>())) return DType::f32;
  if (same_dtype(d, py::dtype::of<double>())) return DType::f64;
  throw refused(std::string(py::str(d)));
}

Device parse_device(py::handle h) {
  if (py::isinstance<py::str>(h)) {
    const std::string s = h.cast<std::string>();
    if (s == "cpu") return Device::cpu;
    if (s == "cuda" || s.rfind("cuda:", 0) == 0) return Device::cuda;
  }
  throw mc::ValueError("device: expected 'cpu' or 'cuda', got " + std::string(py::repr(h)));
}

py::dtype np_dtype(DType dt) {
  switch (dt) {
    case DType::f32: return py::dtype::of<float>();
    case DType::f64: return py::dtype::of<double>();
  }
  throw mc::TypeError("invalid dtype");
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

namespace {
// float32 <-> float64 copy of a native, C-contiguous array. float64 values beyond float32's range
// become +-inf explicitly (a plain cast of them is undefined behaviour in C++).
py::array convert_float(const py::array& src, DType dt) {
  py::array out(np_dtype(dt), std::vector<py::ssize_t>(src.shape(), src.shape() + src.ndim()));
  const int64_t n = src.size();
  switch (dt) {
    case DType::f32: {
      const double* s = static_cast<const double*>(src.data());
      float* d = static_cast<float*>(out.mutable_data());
      constexpr double kLimit = 0x1.ffffffp+127;  // FLT_MAX + half an ulp: from here on, round to inf
      for (int64_t i = 0; i < n; ++i)
        d[i] = std::fabs(s[i]) < kLimit || std::isnan(s[i]) ? float(s[i]) : s[i] > 0 ? INFINITY : -INFINITY;
      break;
    }
    case DType::f64: {
      const float* s = static_cast<const float*>(src.data());
      double* d = static_cast<double*>(out.mutable_data());
      for (int64_t i = 0; i < n; ++i) d[i] = double(s[i]);
      break;
    }
  }
  return out;
}

}  // namespace

// A float matrix argument: returns a C-contiguous array of dtype `dt`, shape (rows, cols)
// (`cols` = -1 accepts any). 1-D input is refused, not reshaped: the caller must say which.
// `check_values` = false skips the NaN/Inf scan (for a caller that already validated the data once,
// e.g. the Trainer calling train_epoch once per batch range).
py::array as_matrix(py::handle obj, const char* name, DType dt, int64_t cols, int64_t rows, bool allow_empty,
                    bool check_values) {
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
  if (check_values && get_check_finite() && !backend_for(Device::cpu).all_finite(dt, out.data(), out.size()))
    throw mc::ValueError(std::string(name) + ": contains NaN or Inf" +
                         (converted ? std::string(" after conversion to ") + dtype_name(dt) : std::string()) +
                         " (mlpcore.set_check_finite(False) skips this check)");
  return out;
}

// Integer class ids of shape (rows,) in [0, classes) (see input.h; classes < 0: not known yet).
py::array_t<int32_t> as_labels(py::handle obj, const char* name, int64_t rows, int64_t classes, const char* rows_of,
                               bool check_values) {
  const int64_t limit = classes < 0 ? int64_t(INT32_MAX) + 1 : classes;  // ids in [0, limit)
  py::array a = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
  if (!a) throw mc::TypeError(std::string(name) + ": expected a numpy array of integer class ids, got " + describe(obj));
  if (!check_values && a.dtype().is(py::dtype::of<int32_t>()) && a.ndim() == 1 && a.shape(0) == rows &&
      (a.flags() & py::array::c_style)) {
    const int32_t* v = static_cast<const int32_t*>(a.data());
    bool ok = true;
    for (int64_t i = 0; i < rows; ++i) ok &= (v[i] >= 0) & (v[i] < limit);
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
  py::array_t<int32_t> out(rows);
  int32_t* dst = out.mutable_data();
  // Unsigned ids are read as uint64 (an int64 view would wrap 2**63 and above to negative ids).
  auto copy = [&](auto tag) {
    using T = decltype(tag);
    py::array_t<T, py::array::c_style | py::array::forcecast> wide(a);
    const T* src = wide.data();
    for (int64_t i = 0; i < rows; ++i) {
      const bool negative = std::is_signed<T>::value && src[i] < T(0);
      if (classes < 0 && negative)
        throw mc::ValueError(std::string(name) + ": class ids must be >= 0, got label " + std::to_string(src[i]) +
                             " at index " + std::to_string(i));
      if (classes < 0 && uint64_t(src[i]) >= uint64_t(limit))
        throw mc::ValueError(std::string(name) + ": label " + std::to_string(src[i]) + " at index " +
                             std::to_string(i) + " is out of range for a class id (at most 2**31 - 1)");
      if (negative || uint64_t(src[i]) >= uint64_t(limit))
        throw mc::ValueError(std::string(name) + ": label " + std::to_string(src[i]) + " at index " +
                             std::to_string(i) + " is out of range; expected class ids in [0, " +
                             std::to_string(limit) + ")");
      dst[i] = int32_t(src[i]);
    }
  };
  if (kind == 'u')
    copy(uint64_t{});
  else
    copy(int64_t{});
  return out;
}

// The target of a loss for a prediction of shape (rows, cols): class ids for cross-entropy, else
// a float matrix shaped like the prediction ((rows,) is accepted when cols == 1, as MSELoss does).
py::array as_loss_target(LossKind loss, py::handle obj, const char* name, DType dt, int64_t rows, int64_t cols,
                         const char* rows_of, bool check_values) {
  if (loss_def(loss).labels) return as_labels(obj, name, rows, cols, rows_of, check_values);
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

void check_batch_size(int64_t batch_size) {
  if (batch_size < 1) throw mc::ValueError("batch_size: expected >= 1, got " + std::to_string(batch_size));
}

void bind_input(py::module_& m) {
  m.def("set_check_finite", &set_check_finite, py::arg("enabled"));
  m.def("get_check_finite", &get_check_finite);
  m.def("_as_matrix", [](py::handle x, const std::string& name, py::handle dtype, int64_t cols) {
    return as_matrix(x, name.c_str(), parse_dtype(dtype), cols);
  }, py::arg("x"), py::arg("name"), py::arg("dtype"), py::arg("cols") = -1,
     "Validate/convert a float matrix argument exactly as the core does (used by the Python layer).");
  m.def("_as_labels", [](py::handle y, const std::string& name, int64_t rows, int64_t classes) {
    return as_labels(y, name.c_str(), rows, classes);
  }, py::arg("y"), py::arg("name"), py::arg("rows"), py::arg("classes"),
     "Validate/convert class ids exactly as the core does (classes < 0: not known yet, ids >= 0).");
  m.def("_as_dtype", [](py::handle dtype) { return np_dtype(parse_dtype(dtype)); }, py::arg("dtype"),
        "The numpy dtype float32 / float64 for a dtype argument (TypeError otherwise): the layers' dtype rule.");
  m.def("_as_device", [](py::handle device, bool available) {
    const Device d = parse_device(device);
    if (available) backend_for(d);  // RuntimeError naming why when CUDA is not usable
    return std::string(device_name(d));
  }, py::arg("device"), py::arg("available") = true,
     "'cpu' or 'cuda' for a device argument ('cuda:N' is 'cuda'; ValueError otherwise); with available, "
     "RuntimeError when that device cannot be used here.");
}

}  // namespace mc_py
