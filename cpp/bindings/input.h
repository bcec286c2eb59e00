// bindings/input.h — the input policy of the _core module: every array that comes from Python is
// validated and converted here, once, at the edge (type, dtype, ndim, shape, contiguity,
// finiteness, label range), before a pointer reaches the core, which trusts it.
// Policy: float32 and float64 arrays are accepted and converted to the model's dtype;
// non-contiguous or Fortran-ordered arrays are copied to C order; integers, float16, bool,
// complex and object arrays are refused with TypeError; NaN/Inf are refused with ValueError
// unless finiteness checks are switched off (set_check_finite(False)). Matrices are 2-D with at
// least one row and one column (ValueError otherwise). Targets of MSE / BCE may be 1-D (B,) when
// the prediction has one column; class ids are 1-D integers in [0, classes).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "mlpcore/loss.h"

namespace mc_py {

namespace py = pybind11;
using namespace mc;

// Process-wide switch of the NaN/Inf scans (set_check_finite in Python).
void set_check_finite(bool on);
bool get_check_finite();

// The dtype and device arguments, the one rule for both (the Python layer's constructors and
// Module.to ask these through _core._as_dtype / _as_device): float32 or float64 (native byte
// order), TypeError otherwise; 'cpu', 'cuda' or 'cuda:N' (= 'cuda'), ValueError otherwise.
DType parse_dtype(py::handle h);
Device parse_device(py::handle h);
py::dtype np_dtype(DType dt);
// "array of dtype float32 and shape (3,4)", or the type name of a non-array.
std::string describe(py::handle obj);

// A float matrix argument: returns a C-contiguous array of dtype `dt`, shape (rows, cols)
// (`cols` / `rows` = -1 accepts any). 1-D input is refused, not reshaped: the caller must say
// which. `check_values` = false skips the NaN/Inf scan (for a caller that already validated the
// data once, e.g. the Trainer calling train_epoch once per batch range).
py::array as_matrix(py::handle obj, const char* name, DType dt, int64_t cols = -1, int64_t rows = -1,
                    bool allow_empty = false, bool check_values = true);
// Integer class ids of shape (rows,) in [0, classes): returns an int32 copy. `rows_of` names
// what the labels must match ("the prediction", "X") in the length-mismatch message. classes < 0:
// the number of classes is not known yet (a model run module by module, before its forward): ids
// must be >= 0 and fit an int32.
// `check_values` = false: an int32 C-contiguous (rows,) array is used as is (no copy); its range is
// still scanned (one compare per row), since an out-of-range id would index out of bounds.
py::array_t<int32_t> as_labels(py::handle obj, const char* name, int64_t rows, int64_t classes,
                               const char* rows_of = "the prediction", bool check_values = true);
// The target of a loss for a prediction of shape (rows, cols): class ids for a label loss, else
// a float matrix shaped like the prediction ((rows,) is accepted when cols == 1, as MSELoss does).
py::array as_loss_target(LossKind loss, py::handle obj, const char* name, DType dt, int64_t rows, int64_t cols,
                         const char* rows_of, bool check_values = true);

py::array new_matrix(DType dt, int64_t rows, int64_t cols);
// A writable float array that C++ writes into in place (a parameter's .grad view): must already
// be exactly right, since a silent copy would lose the write.
void* out_view(py::array a, const char* name, DType dt, int64_t numel);
// A float array the module-path kernels read as is (a parameter view, a saved input): it must
// already be C-contiguous, of dtype `dt`, 2-D (rows, cols) or 1-D (cols,) when rows < 0; -1 in
// cols accepts any width. Validated because the private kernels are still callable from Python.
const void* in_view(const py::array& a, const char* name, DType dt, int64_t rows, int64_t cols);
void check_batch_size(int64_t batch_size);

// set_check_finite, get_check_finite, _as_matrix, _as_labels, _as_dtype, _as_device.
void bind_input(py::module_& m);

}  // namespace mc_py
