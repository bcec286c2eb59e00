// bindings/loss.cpp — _core.LossSpec (see loss.h), the sample-weight input policy and the
// non-finite loss guard of the module path's training loop.
#include "loss.h"

#include <cmath>

#include "mlpcore/backend.h"
#include "mlpcore/network.h"

namespace mc_py {

namespace {

// A real-valued 1-D array (float, int, unsigned or bool values) as float64, C-contiguous; else
// TypeError / ValueError naming `name`.
py::array_t<double> as_real_vector(py::handle obj, const char* name) {
  py::array a = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
  if (!a) throw mc::TypeError(std::string(name) + ": expected a 1-D array of numbers, got " + describe(obj));
  const char kind = a.dtype().kind();
  if (!(kind == 'f' && (a.dtype().itemsize() == 4 || a.dtype().itemsize() == 8)) && kind != 'i' && kind != 'u' &&
      kind != 'b')
    throw mc::TypeError(std::string(name) + ": expected float, int or bool values, got " + describe(a));
  if (a.ndim() != 1) throw mc::ValueError(std::string(name) + ": expected a 1-D array, got " + describe(a));
  return py::array_t<double, py::array::c_style | py::array::forcecast>(a);
}

std::vector<double> loss_vector(py::handle obj, const char* name) {
  py::array_t<double> v = as_real_vector(obj, name);
  const double* p = v.data();
  if (v.size() == 0) throw mc::ValueError(std::string(name) + ": expected one value per output, got none");
  for (py::ssize_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(p[i]))
      throw mc::ValueError(std::string(name) + ": contains NaN or Inf (value " + std::to_string(p[i]) + " at index " +
                           std::to_string(i) + ")");
  return std::vector<double>(p, p + v.size());
}

py::object vector_or_none(const std::vector<double>& v) {
  if (v.empty()) return py::none();
  py::array_t<double> a(py::ssize_t(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return std::move(a);
}

std::string fmt(double v) { return std::string(py::str(py::float_(v))); }

}  // namespace

const PyLoss& loss_arg(py::handle h) {
  // The default spec of each kind, and the kinds' member objects (LossKind.mse, ...) to find them
  // by identity: a bare kind costs a few pointer compares, not a cast (train_step on a tiny
  // network is a few microseconds). Made once; the members live as long as the module.
  struct Defaults {
    std::vector<PyLoss> spec;
    std::vector<PyObject*> member;
    PyObject* spec_type;
  };
  static const Defaults d = [] {
    Defaults t;
    py::object kind_type = py::reinterpret_borrow<py::object>(py::type::handle_of(py::cast(LossKind::mse)));
    for (int k = 0; k < kNumLossKinds; ++k) {
      t.spec.emplace_back(LossKind(k));
      t.member.push_back(kind_type.attr(loss_name(LossKind(k))).ptr());
    }
    t.spec_type = py::type::of<PyLoss>().ptr();
    return t;
  }();
  PyObject* p = h.ptr();
  for (int k = 0; k < kNumLossKinds; ++k)
    if (p == d.member[size_t(k)]) return d.spec[size_t(k)];
  if (reinterpret_cast<PyObject*>(Py_TYPE(p)) == d.spec_type) return h.cast<const PyLoss&>();
  if (py::isinstance<LossKind>(h)) {  // a LossKind made from an int: not one of the members
    const int k = int(h.cast<LossKind>());
    if (k >= 0 && k < kNumLossKinds) return d.spec[size_t(k)];
  }
  throw mc::TypeError("loss: expected a LossKind or a LossSpec, got " + describe(h));
}

LossSpec PyLoss::for_dtype(DType dt, int64_t cols) const {
  LossSpec s = spec;
  auto pick = [&](const std::vector<double>& v64, const std::vector<float>& v32, const char* name) -> const void* {
    if (v64.empty()) return nullptr;
    if (int64_t(v64.size()) != cols)
      throw mc::ValueError(std::string(name) + ": expected one value per output (" + std::to_string(cols) +
                           "), got " + std::to_string(v64.size()) + " values");
    return dt == DType::f64 ? static_cast<const void*>(v64.data()) : static_cast<const void*>(v32.data());
  };
  s.class_weight = pick(class_weight64, class_weight32, "weight");
  s.pos_weight = pick(pos_weight64, pos_weight32, "pos_weight");
  return s;
}

py::array as_weights(py::handle obj, const char* name, DType dt, int64_t rows, const char* rows_of,
                     bool check_values) {
  py::array a = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
  if (!a) throw mc::TypeError(std::string(name) + ": expected a 1-D array of numbers, got " + describe(obj));
  const char kind = a.dtype().kind();
  const bool is_float = kind == 'f' && (a.dtype().itemsize() == 4 || a.dtype().itemsize() == 8);
  if (!is_float && kind != 'i' && kind != 'u' && kind != 'b')
    throw mc::TypeError(std::string(name) + ": expected float, int or bool values, got " + describe(a));
  if (a.ndim() != 1)
    throw mc::ValueError(std::string(name) + ": expected a 1-D array of " + std::to_string(rows) +
                         " weights (one per row), got " + describe(a));
  if (a.shape(0) != rows)
    throw mc::ValueError(std::string(name) + ": has " + std::to_string(a.shape(0)) + " weights but " + rows_of +
                         " has " + std::to_string(rows) + " rows");
  if (is_float && a.dtype().is(np_dtype(dt)) && (a.flags() & py::array::c_style)) {  // as is: no copy
    if (check_values && get_check_finite() && !backend_for(Device::cpu).all_finite(dt, a.data(), rows))
      throw mc::ValueError(std::string(name) + ": contains NaN or Inf (mlpcore.set_check_finite(False) skips this check)");
    return a;
  }
  // As a (rows, 1) matrix through as_matrix: conversion to dt, contiguity, the NaN / Inf scan.
  // Ints and bools go through float64 first (exact).
  if (!is_float) a = as_real_vector(a, name);
  py::array m = as_matrix(a.attr("reshape")(rows, 1), name, dt, 1, rows, false, check_values && is_float);
  return m.attr("reshape")(rows);
}

const void* weights_or_null(py::handle w, py::object& keep, DType dt, int64_t rows, const char* rows_of,
                            bool check_values) {
  if (w.is_none()) return nullptr;
  py::array a = as_weights(w, "sample_weight", dt, rows, rows_of, check_values);
  keep = a;
  return a.data();
}

void bind_loss(py::module_& m) {
  py::class_<PyLoss>(m, "LossSpec",
                     "A loss and its parameters, validated once (PyTorch's names and defaults; `weight`: "
                     "cross_entropy's class weights). Networks and loss_forward_backward take it wherever they take "
                     "a LossKind.")
      .def(py::init([](LossKind kind, double delta, double beta, double label_smoothing, py::object weight,
                       py::object pos_weight, bool log_input, bool full, double eps) {
             PyLoss l(kind);
             l.spec.delta = delta;
             l.spec.beta = beta;
             l.spec.label_smoothing = label_smoothing;
             l.spec.log_input = log_input;
             l.spec.full = full;
             l.spec.eps = eps;
             loss_check(l.spec);
             if (!weight.is_none()) {
               if (kind != LossKind::cross_entropy)
                 throw mc::ValueError(std::string("weight: only cross_entropy takes class weights, not ") +
                                      loss_name(kind));
               l.class_weight64 = loss_vector(weight, "weight");
             }
             if (!pos_weight.is_none()) {
               if (kind != LossKind::bce_with_logits)
                 throw mc::ValueError(std::string("pos_weight: only bce_with_logits takes pos_weight, not ") +
                                      loss_name(kind));
               l.pos_weight64 = loss_vector(pos_weight, "pos_weight");
             }
             l.class_weight32.assign(l.class_weight64.begin(), l.class_weight64.end());
             l.pos_weight32.assign(l.pos_weight64.begin(), l.pos_weight64.end());
             return l;
           }),
           py::arg("kind"), py::kw_only(), py::arg("delta") = 1.0, py::arg("beta") = 1.0,
           py::arg("label_smoothing") = 0.0, py::arg("weight") = py::none(), py::arg("pos_weight") = py::none(),
           py::arg("log_input") = true, py::arg("full") = false, py::arg("eps") = 1e-8)
      .def_property_readonly("kind", [](const PyLoss& l) { return l.spec.kind; })
      .def_property_readonly("delta", [](const PyLoss& l) { return l.spec.delta; })
      .def_property_readonly("beta", [](const PyLoss& l) { return l.spec.beta; })
      .def_property_readonly("label_smoothing", [](const PyLoss& l) { return l.spec.label_smoothing; })
      .def_property_readonly("log_input", [](const PyLoss& l) { return l.spec.log_input; })
      .def_property_readonly("full", [](const PyLoss& l) { return l.spec.full; })
      .def_property_readonly("eps", [](const PyLoss& l) { return l.spec.eps; })
      .def_property_readonly("weight", [](const PyLoss& l) { return vector_or_none(l.class_weight64); },
                             "cross_entropy's class weights (PyTorch's `weight`): a float64 copy, or None")
      .def_property_readonly("pos_weight", [](const PyLoss& l) { return vector_or_none(l.pos_weight64); },
                             "float64 copy, or None")
      .def("__repr__", [](const PyLoss& l) {
        const LossSpec& s = l.spec;
        std::string r = std::string("LossSpec(") + loss_name(s.kind);
        switch (s.kind) {
          case LossKind::huber: r += ", delta=" + fmt(s.delta); break;
          case LossKind::smooth_l1: r += ", beta=" + fmt(s.beta); break;
          case LossKind::cross_entropy:
            r += ", label_smoothing=" + fmt(s.label_smoothing);
            if (!l.class_weight64.empty()) r += ", weight=[" + std::to_string(l.class_weight64.size()) + "]";
            break;
          case LossKind::bce_with_logits:
            if (!l.pos_weight64.empty()) r += ", pos_weight=[" + std::to_string(l.pos_weight64.size()) + "]";
            break;
          case LossKind::poisson_nll:
            r += std::string(", log_input=") + (s.log_input ? "True" : "False") + ", full=" + (s.full ? "True" : "False") +
                 ", eps=" + fmt(s.eps);
            break;
          case LossKind::mse:
          case LossKind::l1: break;
        }
        return r + ")";
      });
  m.def("_as_sample_weight", [](py::handle w, const std::string& name, int64_t rows, py::handle dtype,
                                const std::string& rows_of) {
    return as_weights(w, name.c_str(), parse_dtype(dtype), rows, rows_of.c_str());
  }, py::arg("w"), py::arg("name"), py::arg("rows"), py::arg("dtype"), py::arg("rows_of") = "X",
     "Validate/convert sample weights (rows,) exactly as the core does (used by the Python layer).");
  m.def("_check_loss_finite", &check_loss_finite, py::arg("value"), py::arg("epoch"), py::arg("batch"),
        "The training guard of the compiled step (RuntimeError for a non-finite batch loss, naming epoch and "
        "batch from 1; epoch < 0: a single step), for the module path's loop.");
}

}  // namespace mc_py
