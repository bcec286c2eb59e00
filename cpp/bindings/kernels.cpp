// bindings/kernels.cpp — the module-path kernels (numpy in, new numpy out): each validates its
// arrays (input.h), releases the GIL and calls one op's free function (mlpcore/ops.h, loss.h) on
// the backend of the CPU, found through the one dispatch point, backend_for. The module path runs
// on the CPU; a model on cuda runs through its compiled network.
#include "input.h"
#include "loss.h"
#include "mlpcore/arena.h"
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

// The parameter pointers of a lone op (op_forward / op_backward): offsets of `spec` into a CPU arena.
struct OpMemory {
  const void* weight = nullptr;
  const void* bias = nullptr;
  void* dweight = nullptr;
  void* dbias = nullptr;
  void* state = nullptr;
};

OpMemory op_memory(const OpSpec& spec, const OpParams& p, const std::shared_ptr<ParamArena>& arena) {
  OpMemory mem;
  if (!p.weight && !p.bias && !p.state) return mem;
  if (!arena) throw mc::ValueError(std::string("op ") + op_name(spec.kind) + ": needs the arena of its parameters");
  if (arena->device() != Device::cpu)
    throw std::runtime_error("op_forward / op_backward run on the CPU; the arena lives on " +
                             std::string(device_name(arena->device())));
  auto at = [&](int64_t off, int64_t n, const char* what) {
    if (off < 0 || off + n > arena->numel())
      throw mc::ValueError(std::string("op ") + op_name(spec.kind) + ": its " + what + " lies outside the arena");
    return off;
  };
  if (p.weight) {
    const int64_t off = at(spec.weight_off, p.weight, "weight");
    mem.weight = arena->param_at(off);
    if (spec.weight_grad) mem.dweight = arena->grad_at(off);
  }
  if (p.bias) {
    const int64_t off = at(spec.bias_off, p.bias, "bias");
    mem.bias = arena->param_at(off);
    if (spec.bias_grad) mem.dbias = arena->grad_at(off);
  }
  if (p.state) mem.state = arena->param_at(at(spec.state_off, p.state, "state"));
  return mem;
}

std::shared_ptr<ParamArena> arena_arg(py::handle h) {
  return h.is_none() ? nullptr : py::cast<std::shared_ptr<ParamArena>>(h);
}

}  // namespace

void bind_kernels(py::module_& m) {
  // Any op of the registry on numpy arrays, through its OpDef — the same code a Network runs — so
  // an op needs no bindings of its own: the module path of LayerNorm, BatchNorm1d, ... Parameters
  // and state are read at the spec's offsets in `arena` (a CPU ParamArena; None for an op without
  // any); the spec's `arena` index is ignored. Returns (y, x as converted, saved): backward reads
  // the last two. Train mode updates the op's state (running statistics) in place.
  m.def("op_forward", [](const OpSpec& spec, py::handle arena_, py::handle x_, bool training, py::handle dtype) {
    const OpDef& def = op_def(spec.kind);
    if (spec.skip >= 0) throw mc::ValueError(std::string("op ") + def.name + ": a skip input runs inside a Network only");
    const auto arena = arena_arg(arena_);
    const DType dt = arena ? arena->dtype() : parse_dtype(dtype);
    py::array x = as_matrix(x_, "x", dt);
    const int64_t B = x.shape(0), in_w = x.shape(1);
    const int64_t out_w = def.out_width(spec, in_w, -1);
    const OpMemory mem = op_memory(spec, def.params(spec, in_w, out_w), arena);
    const OpWork w = def.work(spec, in_w, out_w, dt);
    py::array_t<uint8_t> saved(std::vector<py::ssize_t>{py::ssize_t(B * w.per_row + w.fixed)});
    py::array y = new_matrix(dt, B, out_w);
    {
      py::gil_scoped_release nogil;
      def.forward(OpCall{backend_for(Device::cpu), dt, spec, B, in_w, out_w, x.data(), nullptr, y.mutable_data(),
                         saved.mutable_data(), mem.state, mem.weight, mem.bias, training, false, 0, B});
    }
    return py::make_tuple(y, x, saved);
  }, py::arg("spec"), py::arg("arena"), py::arg("x"), py::arg("training"), py::arg("dtype"));

  // Backward of op_forward (its x, y and saved, the same spec, arena and mode): ACCUMULATES into
  // the parameter gradients in the arena (frozen ones: OpSpec.weight_grad / bias_grad false are
  // skipped) and returns d loss / d x (None unless need_dx).
  m.def("op_backward", [](const OpSpec& spec, py::handle arena_, py::handle dy_, py::array x, py::array y,
                          py::array saved, bool training, py::handle dtype, bool need_dx) -> py::object {
    const OpDef& def = op_def(spec.kind);
    const auto arena = arena_arg(arena_);
    const DType dt = arena ? arena->dtype() : parse_dtype(dtype);
    if (x.ndim() != 2 || y.ndim() != 2) throw mc::ValueError("x, y: expected the 2-D arrays of op_forward");
    const int64_t B = x.shape(0), in_w = x.shape(1);
    in_view(x, "x", dt, B, in_w);
    const int64_t out_w = def.out_width(spec, in_w, -1);
    in_view(y, "y", dt, B, out_w);
    const OpWork w = def.work(spec, in_w, out_w, dt);
    if (!saved.dtype().is(py::dtype::of<uint8_t>()) || saved.size() != B * w.per_row + w.fixed ||
        !(saved.flags() & py::array::c_style) || !saved.writeable())
      throw mc::ValueError("saved: expected the workspace op_forward returned, got " + describe(saved));
    void* sv = saved.mutable_data();
    const OpMemory mem = op_memory(spec, def.params(spec, in_w, out_w), arena);
    py::array dy = as_matrix(dy_, "grad_output", dt, out_w, B);
    if (dy.ptr() == dy_.ptr()) dy = py::array(dy.dtype(), dy.request().shape, dy.data());  // a copy: the op may write dy
    py::array dx;
    if (need_dx) dx = new_matrix(dt, B, in_w);
    {
      py::gil_scoped_release nogil;
      const OpCall c{backend_for(Device::cpu), dt, spec, B, in_w, out_w, x.data(), nullptr,
                     const_cast<void*>(y.data()), sv, mem.state, mem.weight, mem.bias, training, false, 0, B};
      def.backward(c, OpGrads{need_dx ? dx.mutable_data() : nullptr, dy.mutable_data(), mem.dweight, mem.dbias, true,
                              true});
    }
    if (!need_dx) return py::none();
    return std::move(dx);
  }, py::arg("spec"), py::arg("arena"), py::arg("grad_output"), py::arg("x"), py::arg("y"), py::arg("saved"),
     py::arg("training"), py::arg("dtype"), py::arg("need_dx") = true);

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

  // Accumulates dW (and db) into the given gradient views (None: frozen, skipped), returns dx (or None).
  m.def("linear_backward", [](py::handle dz_, py::array x, py::array weight, py::object dweight, py::object dbias,
                              bool need_dx, bool transposed, py::handle dtype) -> py::object {
    const DType dt = parse_dtype(dtype);
    const auto [out, in] = weight_dims(weight, dt, transposed);
    if (x.ndim() != 2) throw mc::ValueError("x: expected a 2-D array, got " + describe(x));
    const int64_t B = x.shape(0);
    in_view(x, "x", dt, B, in);
    py::array dz = as_matrix(dz_, "grad_output", dt, out, B);
    void* dw = dweight.is_none() ? nullptr : out_view(py::cast<py::array>(dweight), "weight.grad", dt, in * out);
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
    return py::make_tuple(a, x);
  }, py::arg("kind"), py::arg("param"), py::arg("x"), py::arg("dtype"),
     "(a = act(x), x as converted): backward reads both, so x is checked and converted once.");

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
