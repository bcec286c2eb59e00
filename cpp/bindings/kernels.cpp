// bindings/kernels.cpp — the module-path kernels (numpy in, new numpy out): each validates its
// arrays (input.h), releases the GIL and calls one op's free function (mlpcore/ops.h, loss.h) on
// the backend of the CPU, found through the one dispatch point, backend_for. The module path runs
// on the CPU; a model on cuda runs through its compiled network.
#include "input.h"
#include "loss.h"
#include "mlpcore/loss.h"
#include "mlpcore/ops.h"

namespace mc_py {

namespace {

// A weight matrix: 2-D of dtype dt, C-contiguous; returns (out, in) as used by linear_*.
std::pair<int64_t, int64_t> weight_dims(const py::array& w, DType dt, bool transposed) {
  if (w.ndim() != 2) throw mc::ValueError("weight: expected a 2-D array, got " + describe(w));
  in_view(w, "weight", dt, w.shape(0), w.shape(1));
  return transposed ? std::make_pair(int64_t(w.shape(1)), int64_t(w.shape(0)))
                    : std::make_pair(int64_t(w.shape(0)), int64_t(w.shape(1)));
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def("linear_forward", [](py::handle x_, py::array weight, py::object bias, bool transposed, py::handle dtype,
                            bool fixed_order) {
    const DType dt = parse_dtype(dtype);
    const auto [out, in] = weight_dims(weight, dt, transposed);
    py::array x = as_matrix(x_, "x", dt, in);
    const int64_t B = x.shape(0);
    py::array z = new_matrix(dt, B, out);
    const void* b = bias.is_none() ? nullptr : in_view(py::cast<py::array>(bias), "bias", dt, -1, out);
    {
      py::gil_scoped_release nogil;
      Backend& be = backend_for(Device::cpu);
      linear_forward(be, dt, z.mutable_data(), x.data(), weight.data(), B, in, out, transposed, fixed_order);
      if (b) activation_forward(be, dt, Activation{}, z.mutable_data(), z.mutable_data(), b, B, out);
    }
    return py::make_tuple(z, x);
  }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("transposed"), py::arg("dtype"),
     py::arg("fixed_order") = false,
     "z = x @ W.T + bias (and x as converted, kept for backward). fixed_order: the batch-invariant GEMM.");

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
      Backend& be = backend_for(Device::cpu);
      void* dzp = const_cast<void*>(dz.data());  // identity backward with dz == da writes nothing
      if (db) activation_backward(be, dt, Activation{}, dzp, db, dzp, nullptr, nullptr, true, B, out);
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
      activation_forward(backend_for(Device::cpu), dt, Activation{kind, param}, a.mutable_data(), const_cast<void*>(x.data()),
                         nullptr, x.shape(0), x.shape(1));
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
      activation_backward(backend_for(Device::cpu), dt, Activation{kind, param}, dx.mutable_data(), nullptr, g.data(),
                          x.data(), a.data(), false, a.shape(0), a.shape(1));
    }
    return dx;
  }, py::arg("kind"), py::arg("param"), py::arg("grad_output"), py::arg("x"), py::arg("a"), py::arg("dtype"));

  m.def("loss_forward_backward", [](const LossArg& loss_, py::handle pred_, py::handle target_, py::handle dtype,
                                    py::handle sample_weight_) {
    const PyLoss& loss = loss_arg(loss_);
    const DType dt = parse_dtype(dtype);
    py::array pred = as_matrix(pred_, "pred", dt);
    const int64_t B = pred.shape(0), C = pred.shape(1);
    if (C == 0) throw mc::ValueError("pred: expected at least 1 column, got " + describe(pred));
    py::array target = as_loss_target(loss.spec.kind, target_, "target", dt, B, C, "the prediction");
    const LossSpec spec = loss.for_dtype(dt, C);
    py::object keep;
    const void* w = weights_or_null(sample_weight_, keep, dt, B, "the prediction");
    py::array grad = new_matrix(dt, B, C);
    LossSums sums;
    {
      py::gil_scoped_release nogil;
      loss_forward_backward(backend_for(Device::cpu), dt, spec, &sums, grad.mutable_data(), pred.data(), target.data(),
                            w, B, C);
    }
    return py::make_tuple(loss_mean(sums), grad);
  }, py::arg("kind"), py::arg("pred"), py::arg("target"), py::arg("dtype"), py::arg("sample_weight") = py::none(),
     "(mean loss, d loss / d pred) of a batch: `kind` a LossKind or LossSpec; with sample_weight (B,) the "
     "weighted mean sum(w v) / sum(w n) of mlpcore/loss.h (0, and a zero gradient, when that sum is 0).");

  m.def("dropout_forward", [](py::handle x_, double p, DropoutState& st, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    py::array x = as_matrix(x_, "x", dt);
    py::array y = new_matrix(dt, x.shape(0), x.shape(1)), mask = new_matrix(dt, x.shape(0), x.shape(1));
    const int64_t n = x.size();
    {
      py::gil_scoped_release nogil;
      dropout_forward(backend_for(Device::cpu), dt, y.mutable_data(), mask.mutable_data(), x.data(), n, p, st);
    }
    return py::make_tuple(y, mask);
  }, py::arg("x"), py::arg("p"), py::arg("state"), py::arg("dtype"));

  m.def("mul", [](py::handle a_, py::array b, py::handle dtype) {
    const DType dt = parse_dtype(dtype);
    if (b.ndim() != 2) throw mc::ValueError("b: expected a 2-D array, got " + describe(b));
    in_view(b, "b", dt, b.shape(0), b.shape(1));
    py::array a = as_matrix(a_, "grad_output", dt, b.shape(1), b.shape(0));
    py::array y = new_matrix(dt, b.shape(0), b.shape(1));
    backend_for(Device::cpu).mul(dt, y.mutable_data(), a.data(), b.data(), b.size());
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
      maxout_forward(backend_for(Device::cpu), dt, y.mutable_data(), idx.mutable_data(), x.data(), B, C, pieces);
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
      maxout_backward(backend_for(Device::cpu), dt, dx.mutable_data(), g.data(), idx.data(), B, C, pieces);
    }
    return dx;
  }, py::arg("grad_output"), py::arg("idx"), py::arg("pieces"), py::arg("dtype"));
}

}  // namespace mc_py
