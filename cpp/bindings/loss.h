// bindings/loss.h — _core.LossSpec: a loss and its parameters as Python holds it (PyTorch's names
// and defaults), validated once when it is made. The kernels and the Network get a LossSpec
// (mlpcore/loss.h) for a dtype and a prediction width from it.
#pragma once
#include <pybind11/typing.h>

#include <vector>

#include "input.h"

namespace mc_py {

struct PyLoss {
  LossSpec spec;  // the scalar parameters; vectors below
  std::vector<double> class_weight64, pos_weight64;
  std::vector<float> class_weight32, pos_weight32;  // the same values, for float32 kernels

  PyLoss(LossKind kind = LossKind::mse) : spec(kind) {}  // NOLINT: a bare LossKind converts
  // The spec for dtype dt and a prediction of `cols` columns: its vectors point into this object
  // (host memory, alive as long as it is). ValueError naming weight (the class weights, PyTorch's
  // name) / pos_weight when their length is not cols.
  LossSpec for_dtype(DType dt, int64_t cols) const;
};

// A `loss` argument: a LossSpec, or a LossKind (which stands for that kind's default LossSpec,
// made once per process: no conversion or allocation per call). TypeError otherwise.
using LossArg = py::typing::Union<LossKind, PyLoss>;
const PyLoss& loss_arg(py::handle h);

// Sample weights (rows,): a 1-D array of real numbers (float, int, bool), returned as a
// C-contiguous array of dtype dt; NaN / Inf refused (ValueError) when `check_values` and the
// finiteness checks are on. `rows_of` names what the length must match.
py::array as_weights(py::handle obj, const char* name, DType dt, int64_t rows, const char* rows_of,
                     bool check_values = true);

// Sample weights or None: null for None, else as_weights(...)'s data, the array held in `keep`.
const void* weights_or_null(py::handle w, py::object& keep, DType dt, int64_t rows, const char* rows_of,
                            bool check_values = true);

// LossSpec, _as_sample_weight, _check_loss_finite.
void bind_loss(py::module_& m);

}  // namespace mc_py
