// bindings/network.cpp — the parameter and training objects of _core: DropoutState, ParamArena,
// OptimParams, Optimizer, OpSpec, EpochResult and Network (the compiled network: whole steps and
// epochs, predict, evaluate, and the module path's forward / backward through it). On a cuda
// network every method computes on the device; its inputs go through device_data.h.
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "device_data.h"
#include "interrupt.h"
#include "loss.h"
#include "mlpcore/network.h"

namespace mc_py {

namespace {

struct PyOptimizer {
  std::vector<std::shared_ptr<ParamArena>> arenas;  // keeps the memory alive
  std::unique_ptr<Optimizer> opt;
};

struct PyNetwork : Network {
  using Network::Network;
  DeviceCache cache;
  // forward() and backward(): the input of the last forward (backward reads it in place: the
  // converted numpy array on the CPU; the cache's stage_forward on cuda), and the lock that makes
  // "run forward, keep its input" one step for concurrent callers.
  std::mutex forward_mutex;
  py::object forward_input;
};

bool on_cuda(const Network& net) { return net.device() == Device::cuda; }

// (arena, offset, numel, active): a run of parameters for the optimizer and gradient clipping.
using Segment = std::tuple<std::shared_ptr<ParamArena>, int64_t, int64_t, bool>;

std::vector<OptimSegment> segments_of(const std::vector<Segment>& segs, const char* what,
                                      std::vector<std::shared_ptr<ParamArena>>* keep) {
  std::vector<OptimSegment> out;
  for (const auto& [arena, off, n, active] : segs) {
    if (!arena) throw mc::ValueError(std::string(what) + ": a segment has no arena");
    if (arena->device() != std::get<0>(segs[0])->device() || arena->dtype() != std::get<0>(segs[0])->dtype())
      throw mc::ValueError(std::string(what) + ": all parameters must share one device and dtype");
    if (off < 0 || n < 0 || off + n > arena->numel())
      throw mc::ValueError(std::string(what) + ": segment outside its arena");
    if (keep) keep->push_back(arena);
    out.push_back(OptimSegment{arena->param_at(off), arena->grad_at(off), n, active});
  }
  return out;
}

void check_max_norm(double max_norm) {
  if (!(max_norm >= 0) || std::isinf(max_norm))
    throw mc::ValueError("max_norm: expected a finite number >= 0, got " + std::string(py::str(py::float_(max_norm))));
}

// The clip_grad_norm argument of train_step / train_epoch: None (no clipping) or max_norm >= 0.
double max_grad_norm_of(py::handle h) {
  if (h.is_none()) return -1;
  double v;
  try {
    v = py::cast<double>(h);
  } catch (const py::cast_error&) {
    throw mc::TypeError("clip_grad_norm: expected a number or None, got " + describe(h));
  }
  check_max_norm(v);
  return v;
}

std::vector<std::shared_ptr<ParamArena>> arenas_of(py::handle h) {
  if (py::isinstance<ParamArena>(h)) return {py::cast<std::shared_ptr<ParamArena>>(h)};
  try {
    return py::cast<std::vector<std::shared_ptr<ParamArena>>>(h);
  } catch (const py::cast_error&) {
    throw mc::TypeError("arenas: expected a ParamArena or a list of ParamArena, got " + describe(h));
  }
}

// Network::train_epoch with the GIL released and Ctrl-C watched (interrupt.h): when a SIGINT
// stops the epoch between two batches, Python's handlers run here; KeyboardInterrupt propagates,
// a handler that does not raise lets the epoch continue at the next batch.
// Data parallel (comm of several ranks): the ranks stop after the same batch (the core or-s the
// stop flag over them) and then agree on what follows, so none is left waiting in a collective:
// if a handler raised on some rank, that rank raises its exception and the others raise
// KeyboardInterrupt naming it; if none did, they all continue.
EpochResult train_epoch_interruptible(Network& net, Optimizer& opt, const LossSpec& loss, const void* X, const void* Y,
                                      const void* W, int64_t n, int64_t batch_size, bool shuffle, uint64_t seed,
                                      int64_t epoch, bool check_finite, int64_t batch_begin, int64_t batch_end,
                                      double max_grad_norm, void* outputs, Communicator* comm) {
  const int64_t bs = std::min(batch_size, n);
  const int64_t end = batch_end < 0 ? (n + bs - 1) / bs : batch_end;
  const bool parallel = comm && comm->size() > 1;
  double total = 0;
  EpochResult sum;
  for (;;) {
    EpochResult r;
    {
      // Data parallel, a single-batch call is watched too: the flag then travels with the step.
      SigintWatch watch(end - batch_begin > 1 || parallel);
      py::gil_scoped_release nogil;
      r = net.train_epoch(opt, loss, X, Y, n, batch_size, shuffle, seed, epoch, check_finite, batch_begin, batch_end,
                          W, max_grad_norm, outputs, watch.flag(), comm);
    }
    if (!r.interrupted && sum.rows == 0) return r;
    total += r.loss * double(r.rows);
    sum.correct += r.correct;
    sum.rows += r.rows;
    sum.comm_seconds += r.comm_seconds;
    if (!r.interrupted) break;
    if (!parallel) {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    } else {
      const bool raised = PyErr_CheckSignals() != 0;
      std::unique_ptr<py::error_already_set> error;
      if (raised) error = std::make_unique<py::error_already_set>();  // fetched: the GIL is released below
      double stop[2] = {raised ? 1.0 : 0.0, raised ? double(comm->rank()) : 0.0};
      {
        py::gil_scoped_release nogil;
        comm->allreduce_sum(stop, 2);
      }
      if (error) throw std::move(*error);
      if (stop[0] > 0) {
        const std::string who = stop[0] == 1 ? "rank " + std::to_string(int64_t(stop[1])) : "several ranks";
        PyErr_SetString(PyExc_KeyboardInterrupt, ("training interrupted on another rank of this data-parallel job (" +
                                                  who + "); every rank stopped after the same batch")
                                                     .c_str());
        throw py::error_already_set();
      }
    }
    batch_begin += (r.rows + bs - 1) / bs;  // an interrupted call ran whole batches (the last may be ragged)
    if (batch_begin >= end) break;  // stopped after its last batch and no handler raised
  }
  sum.loss = total / double(sum.rows);
  return sum;
}

}  // namespace

void bind_params(py::module_& m) {
  py::class_<DropoutState, std::shared_ptr<DropoutState>>(m, "DropoutState")
      .def(py::init([](uint64_t seed) { auto s = std::make_shared<DropoutState>(); s->seed = seed; return s; }),
           py::arg("seed"))
      .def_readwrite("seed", &DropoutState::seed)
      .def_readwrite("counter", &DropoutState::counter);

  py::class_<ParamArena, std::shared_ptr<ParamArena>>(m, "ParamArena")
      .def(py::init([](py::handle device, py::handle dtype, int64_t numel) {
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
      // segments: list of (arena, offset, numel, active); all arenas share one device and dtype.
      // An inactive segment (frozen parameters) keeps its state and gets no update.
      .def(py::init([](const OptimParams& p, const std::vector<Segment>& segs) {
             if (segs.empty()) throw mc::ValueError("params: the optimizer got an empty parameter list");
             auto po = std::make_unique<PyOptimizer>();
             po->opt = std::make_unique<Optimizer>(std::get<0>(segs[0])->device(), std::get<0>(segs[0])->dtype(), p,
                                                   segments_of(segs, "params", &po->arenas));
             return po;
           }), py::arg("params"), py::arg("segments"))
      .def("step", [](PyOptimizer& o) { py::gil_scoped_release nogil; o.opt->step(); })
      .def("clip_grad_norm", [](PyOptimizer& o, double max_norm) {
             check_max_norm(max_norm);
             py::gil_scoped_release nogil;
             return o.opt->clip_grad_norm(max_norm);
           }, py::arg("max_norm"),
           "Scale the gradients of the active segments to a joint L2 norm of at most max_norm "
           "(torch.nn.utils.clip_grad_norm_); returns the norm before clipping.")
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

}

void bind_network(py::module_& m) {
  py::class_<OpSpec>(m, "OpSpec")
      .def(py::init<>())
      .def_readwrite("kind", &OpSpec::kind)
      .def_readwrite("in_features", &OpSpec::in_features)
      .def_readwrite("out_features", &OpSpec::out_features)
      .def_readwrite("has_bias", &OpSpec::has_bias)
      .def_readwrite("transposed", &OpSpec::transposed)
      .def_readwrite("arena", &OpSpec::arena, "Index into Network's arenas of the arena weight_off / bias_off / state_off index.")
      .def_readwrite("weight_off", &OpSpec::weight_off)
      .def_readwrite("bias_off", &OpSpec::bias_off)
      .def_readwrite("state_off", &OpSpec::state_off, "Offset of the op's non-parameter state (running statistics), or -1.")
      .def_property("act_kind", [](const OpSpec& s) { return s.act.kind; }, [](OpSpec& s, ActKind k) { s.act.kind = k; })
      .def_property("act_param", [](const OpSpec& s) { return s.act.param; }, [](OpSpec& s, double v) { s.act.param = v; })
      .def_readwrite("p", &OpSpec::p)
      .def_readwrite("dropout", &OpSpec::dropout)
      .def_readwrite("pieces", &OpSpec::pieces)
      .def_readwrite("skip", &OpSpec::skip)
      .def_readwrite("attrs", &OpSpec::attrs, "The op's own hyper-parameters (layer_norm: [eps]; batch_norm: [eps, momentum]).")
      .def_readwrite("weight_grad", &OpSpec::weight_grad, "False: the weight is frozen (no gradient computed).")
      .def_readwrite("bias_grad", &OpSpec::bias_grad, "False: the bias is frozen (no gradient computed).");

  m.def("clip_grad_norm", [](const std::vector<Segment>& segs, double max_norm, bool error_if_nonfinite) {
    check_max_norm(max_norm);
    if (segs.empty()) return 0.0;
    const std::vector<OptimSegment> runs = segments_of(segs, "parameters", nullptr);
    Backend& be = backend_for(std::get<0>(segs[0])->device());
    Buffer sum(be.device(), sizeof(double));
    py::gil_scoped_release nogil;
    return mc::clip_grad_norm(be, std::get<0>(segs[0])->dtype(), runs, max_norm, static_cast<double*>(sum.data()),
                              error_if_nonfinite);
  }, py::arg("segments"), py::arg("max_norm"), py::arg("error_if_nonfinite") = false,
     "torch.nn.utils.clip_grad_norm_ over the gradients of (arena, offset, numel, active) runs: one pass for the "
     "norm, one to scale; returns the norm before clipping.");

  py::class_<EpochResult>(m, "EpochResult", "What Network.train_epoch did (read-only).")
      .def_readonly("loss", &EpochResult::loss, "Mean loss over the rows run.")
      .def_readonly("correct", &EpochResult::correct, "Arg-max hits (cross-entropy), else 0.")
      .def_readonly("rows", &EpochResult::rows, "Rows run.")
      .def_readonly("comm_seconds", &EpochResult::comm_seconds,
                    "Seconds in the communicator's collectives (data parallel; waiting for other ranks included).")
      .def("__eq__", [](const EpochResult& a, const EpochResult& b) {
        return a.loss == b.loss && a.correct == b.correct && a.rows == b.rows;
      }, py::is_operator())
      .def("__repr__", [](const EpochResult& r) {
        return "EpochResult(loss=" + std::string(py::str(py::float_(r.loss))) + ", correct=" +
               std::to_string(r.correct) + ", rows=" + std::to_string(r.rows) + ")";
      });

  py::class_<PyNetwork, std::shared_ptr<PyNetwork>>(m, "Network")
      .def(py::init([](py::handle arenas, std::vector<OpSpec> ops, int64_t in_features) {
             return std::make_shared<PyNetwork>(arenas_of(arenas), std::move(ops), in_features);
           }), py::arg("arenas"), py::arg("ops"), py::arg("in_features"),
           "arenas: a ParamArena or a list of them (one device and dtype); OpSpec.arena indexes it.")
      .def_property_readonly("in_features", &Network::in_features)
      .def_property_readonly("out_features", &Network::out_features)
      .def_property_readonly("num_ops", &Network::num_ops)
      .def_property_readonly("capacity", &Network::capacity)
      .def_property_readonly("device", [](const PyNetwork& n) { return std::string(device_name(n.device())); })
      .def_property_readonly("arenas", [](const PyNetwork& n) { return n.arenas(); })
      .def_property("training", &Network::training, &Network::set_training)
      .def("forward", [](PyNetwork& net, py::handle x_) {
        const DType dt = net.dtype();
        py::array x = as_matrix(x_, "x", dt, net.in_features());
        py::array out = new_matrix(dt, x.shape(0), net.out_features());
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::mutex> hold(net.forward_mutex);
          const void* xp = x.data();
          if (on_cuda(net)) {
            std::lock_guard<std::mutex> lock(net.cache.stage_mutex);
            xp = stage(net.cache.stage_forward, size_t(x.nbytes()));
            backend_for(Device::cuda).upload(const_cast<void*>(xp), x.data(), size_t(x.nbytes()));
          }
          net.forward_to_host(out.mutable_data(), xp, x.shape(0));
          py::gil_scoped_acquire gil;
          net.forward_input = x;
        }
        return out;
      }, py::arg("x"),
         "Forward in the network's train/eval mode; keeps what backward needs until another call uses the "
         "network.")
      .def("backward", [](PyNetwork& net, py::handle g_) {
        const DType dt = net.dtype();
        const int64_t B = net.backward_rows();
        if (B == 0) {  // raises, naming why
          py::gil_scoped_release nogil;
          net.backward_to_host(nullptr, nullptr, 0);
        }
        py::array g = as_matrix(g_, "grad_output", dt, net.out_features(), B);
        py::array dx = new_matrix(dt, B, net.in_features());
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::mutex> hold(net.forward_mutex);
          net.backward_to_host(dx.mutable_data(), g.data(), B);
        }
        return dx;
      }, py::arg("grad_output"),
         "Backward of the last forward: adds to the parameter gradients (dropout masks of that forward), "
         "returns d loss / d x (B, in_features). RuntimeError if another call used the network since.")
      .def("predict", [](PyNetwork& net, py::handle x_, int64_t batch_size) {
        const DType dt = net.dtype();
        if (on_cuda(net)) {
          check_batch_size(batch_size);  // before the upload
          auto d = device_data(net, net.cache, x_, py::none(), YKind::none);
          py::array out = new_matrix(dt, d->n, net.out_features());
          {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(net.cache.stage_mutex);
            void* o = stage(net.cache.stage_out, size_t(out.nbytes()));
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
      // validate=False skips the O(n) NaN/Inf and label-range scans of x and y (dtype and shape are
      // still checked; class ids are still range-checked): for a caller that validated them once.
      // `loss`: a LossKind or a LossSpec; sample_weight: (B,) / (n,) weights or None; clip_grad_norm:
      // None, or max_norm (the gradients are clipped between backward and the optimizer step).
      // comm: data-parallel training over its ranks (network.h); None or one rank: one process.
      .def("train_step", [](PyNetwork& net, PyOptimizer& opt, const LossArg& loss_, py::handle x_, py::handle y_,
                            bool check_finite, bool validate, py::handle w_, py::handle clip_,
                            std::shared_ptr<Communicator> comm) {
        const PyLoss& loss = loss_arg(loss_);
        const double clip = max_grad_norm_of(clip_);
        const DType dt = net.dtype();
        py::array x = as_matrix(x_, "x", dt, net.in_features(), -1, false, validate);
        const int64_t B = x.shape(0);
        py::array y = as_targets(net, y_, ykind_of(loss.spec.kind), B, validate, "x");
        py::object keep;
        const void* w = weights_or_null(w_, keep, dt, B, "x", validate);
        const size_t wbytes = size_t(B) * dtype_size(dt);
        const LossSpec spec = loss.for_dtype(dt, net.out_features());
        py::gil_scoped_release nogil;
        if (on_cuda(net)) {
          std::lock_guard<std::mutex> lock(net.cache.stage_mutex);
          Backend& be = backend_for(Device::cuda);
          void* xd = stage(net.cache.stage_x, size_t(x.nbytes()));
          void* yd = stage(net.cache.stage_y, size_t(y.nbytes()));
          void* wd = w ? stage(net.cache.stage_w, wbytes) : nullptr;
          be.upload(xd, x.data(), size_t(x.nbytes()));
          be.upload(yd, y.data(), size_t(y.nbytes()));
          if (wd) be.upload(wd, w, wbytes);
          return net.train_step(*opt.opt, spec, xd, yd, B, check_finite, wd, clip, comm.get());
        }
        return net.train_step(*opt.opt, spec, x.data(), y.data(), B, check_finite, w, clip, comm.get());
      }, py::arg("optimizer"), py::arg("loss"), py::arg("x"), py::arg("y"), py::arg("check_finite") = true,
         py::arg("validate") = true, py::arg("sample_weight") = py::none(), py::arg("clip_grad_norm") = py::none(),
         py::arg("comm") = nullptr)
      // batch_begin/batch_end: run only that range of the epoch's batches (see network.h).
      // On cuda, the data set is uploaded by the first call and reused by the next ones.
      // outputs: None, or a float array (n, out_features) of the network's dtype that receives each
      // batch's training-mode output in the order the rows were visited (running metrics).
      .def("train_epoch", [](PyNetwork& net, PyOptimizer& opt, const LossArg& loss_, py::handle X_, py::handle Y_,
                             int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch, bool check_finite,
                             int64_t batch_begin, int64_t batch_end, bool validate, py::handle W_, py::handle clip_,
                             py::handle outputs_, std::shared_ptr<Communicator> comm_) {
        Communicator* comm = comm_.get();
        const PyLoss& loss = loss_arg(loss_);
        const LossSpec spec = loss.for_dtype(net.dtype(), net.out_features());
        const double clip = max_grad_norm_of(clip_);
        const DType dt = net.dtype();
        const int64_t oc = net.out_features();
        auto outputs_of = [&](int64_t n) -> void* {
          if (outputs_.is_none()) return nullptr;
          if (!py::isinstance<py::array>(outputs_))
            throw mc::TypeError("outputs: expected None or a numpy array, got " + describe(outputs_));
          return out_view(py::reinterpret_borrow<py::array>(outputs_), "outputs", dt, n * oc);
        };
        if (on_cuda(net)) {
          check_batch_size(batch_size);  // before the upload
          auto d = device_data(net, net.cache, X_, Y_, ykind_of(spec.kind), validate, W_);
          void* host_out = outputs_of(d->n);
          if (!host_out)
            return train_epoch_interruptible(net, *opt.opt, spec, d->X.data(), d->Y.data(), d->weights(), d->n,
                                             batch_size, shuffle, seed, epoch, check_finite, batch_begin, batch_end,
                                             clip, nullptr, comm);
          // the staging buffer is locked without the GIL (every user of it takes it so)
          std::unique_lock<std::mutex> lock(net.cache.stage_mutex, std::defer_lock);
          {
            py::gil_scoped_release nogil;
            lock.lock();
          }
          const size_t es = dtype_size(dt);
          void* dev_out = stage(net.cache.stage_out, size_t(d->n * oc) * es);
          EpochResult r = train_epoch_interruptible(net, *opt.opt, spec, d->X.data(), d->Y.data(), d->weights(),
                                                    d->n, batch_size, shuffle, seed, epoch, check_finite, batch_begin,
                                                    batch_end, clip, dev_out, comm);
          const int64_t first = batch_begin * std::min(batch_size, d->n);  // the rows this call ran
          backend_for(Device::cuda)
              .download(static_cast<char*>(host_out) + size_t(first * oc) * es,
                        static_cast<char*>(dev_out) + size_t(first * oc) * es, size_t(r.rows * oc) * es);
          return r;
        }
        py::array X = as_matrix(X_, "X", dt, net.in_features(), -1, false, validate);
        const int64_t n = X.shape(0);
        py::array Y = as_targets(net, Y_, ykind_of(spec.kind), n, validate);
        py::object keep;
        const void* W = weights_or_null(W_, keep, dt, n, "X", validate);
        check_batch_size(batch_size);
        void* out = outputs_of(n);
        return train_epoch_interruptible(net, *opt.opt, spec, X.data(), Y.data(), W, n, batch_size, shuffle, seed,
                                         epoch, check_finite, batch_begin, batch_end, clip, out, comm);
      }, py::arg("optimizer"), py::arg("loss"), py::arg("X"), py::arg("y"), py::arg("batch_size"), py::arg("shuffle"),
         py::arg("seed"), py::arg("epoch") = 0, py::arg("check_finite") = true, py::arg("batch_begin") = 0,
         py::arg("batch_end") = -1, py::arg("validate") = true, py::arg("sample_weight") = py::none(),
         py::arg("clip_grad_norm") = py::none(), py::arg("outputs") = py::none(),
         py::arg("comm") = nullptr,
         "sample_weight (n,): gathered with the rows; each batch's loss is its weighted mean (mlpcore/loss.h).")
      .def("evaluate", [](PyNetwork& net, const LossArg& loss_, py::handle X_, py::handle Y_, int64_t batch_size,
                          bool validate, py::handle W_) {
        const PyLoss& loss = loss_arg(loss_);
        check_batch_size(batch_size);
        const LossSpec spec = loss.for_dtype(net.dtype(), net.out_features());
        int64_t correct = 0;
        double value;
        if (on_cuda(net)) {
          auto d = device_data(net, net.cache, X_, Y_, ykind_of(spec.kind), validate, W_);
          py::gil_scoped_release nogil;
          value = net.evaluate(spec, d->X.data(), d->Y.data(), d->n, batch_size, &correct, d->weights());
        } else {
          const DType dt = net.dtype();
          py::array X = as_matrix(X_, "X", dt, net.in_features(), -1, false, validate);
          const int64_t n = X.shape(0);
          py::array Y = as_targets(net, Y_, ykind_of(spec.kind), n, validate);
          py::object keep;
          const void* W = weights_or_null(W_, keep, dt, n, "X", validate);
          py::gil_scoped_release nogil;
          value = net.evaluate(spec, X.data(), Y.data(), n, batch_size, &correct, W);
        }
        return py::make_tuple(value, correct);
      }, py::arg("loss"), py::arg("X"), py::arg("y"), py::arg("batch_size") = 1024, py::arg("validate") = true,
         py::arg("sample_weight") = py::none(),
         "(mean loss over all rows, arg-max hits (cross-entropy, unweighted)); with sample_weight (n,) the mean is "
         "sum(w v) / sum(w n) over the whole set.")
      // layout: the flat vector's segments, (ParamArena, offset, numel, penalised) each, in order.
      .def("loss_and_grad", [](PyNetwork& net, py::handle layout_, py::handle theta_, py::array grad_out,
                               const LossArg& loss_, py::handle X_, py::handle Y_, py::handle W_, double l2_alpha,
                               double value_scale, double grad_scale, bool validate) {
        const PyLoss& loss = loss_arg(loss_);
        const LossSpec spec = loss.for_dtype(net.dtype(), net.out_features());
        std::vector<FlatSegment> layout;
        int64_t total = 0;
        for (py::handle item : py::reinterpret_borrow<py::iterable>(layout_)) {
          std::tuple<std::shared_ptr<ParamArena>, int64_t, int64_t, bool> seg;
          try {
            seg = py::cast<decltype(seg)>(item);
          } catch (const py::cast_error&) {
            throw mc::TypeError("layout: expected (ParamArena, offset, numel, penalised) tuples, got " +
                                describe(item));
          }
          auto [arena, off, numel, penalised] = seg;
          const auto& own = net.arenas();
          const auto it = std::find(own.begin(), own.end(), arena);
          if (it == own.end())
            throw mc::ValueError("layout: segment " + std::to_string(layout.size()) +
                                 " lies in an arena that is not this network's");
          layout.push_back(FlatSegment{int64_t(it - own.begin()), off, numel, penalised});
          total += numel;
        }
        auto theta = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(theta_);
        if (!theta || theta.ndim() != 1 || theta.size() != total)
          throw mc::ValueError("theta: expected a 1-D float array of " + std::to_string(total) +
                               " values (the layout's), got " + describe(theta_));
        double* g = static_cast<double*>(out_view(grad_out, "grad_out", DType::f64, total));
        if (on_cuda(net)) {
          auto d = device_data(net, net.cache, X_, Y_, ykind_of(spec.kind), validate, W_);
          py::gil_scoped_release nogil;
          return net.loss_and_grad(g, theta.data(), layout, spec, d->X.data(), d->Y.data(), d->n, d->weights(),
                                   l2_alpha, value_scale, grad_scale);
        }
        const DType dt = net.dtype();
        py::array X = as_matrix(X_, "X", dt, net.in_features(), -1, false, validate);
        const int64_t n = X.shape(0);
        py::array Y = as_targets(net, Y_, ykind_of(spec.kind), n, validate);
        py::object keep;
        const void* W = weights_or_null(W_, keep, dt, n, "X", validate);
        py::gil_scoped_release nogil;
        return net.loss_and_grad(g, theta.data(), layout, spec, X.data(), Y.data(), n, W, l2_alpha, value_scale,
                                 grad_scale);
      }, py::arg("layout"), py::arg("theta"), py::arg("grad_out"), py::arg("loss"), py::arg("X"), py::arg("y"),
         py::arg("sample_weight") = py::none(), py::arg("l2_alpha") = 0.0, py::arg("value_scale") = 1.0,
         py::arg("grad_scale") = 1.0, py::arg("validate") = true,
         "Full-batch loss and gradient at the flat parameter vector theta (float64): writes theta into the "
         "parameters, runs forward, loss and backward over all rows, writes the gradient (theta's layout) to "
         "grad_out and returns value_scale * loss + l2_alpha / (2 s) * sum of the penalised segments' squares "
         "(gradient: grad_scale * d loss + l2_alpha / s * theta on them); loss is the mean over all rows "
         "(weighted by sample_weight (n,) when given), s the number of rows or the sum of the weights. layout: "
         "(ParamArena, offset, numel, penalised) per segment, distinct parameters of this network.")
      .def("release_device_data", [](PyNetwork& net) { net.cache.release(); },
           "Drop the cached device copies of data sets (a network on cuda); the next call uploads again.")
      .def_property_readonly("cached_device_data", [](const PyNetwork& net) { return net.cache.size(); },
                             "Number of data sets held in device memory (0 on cpu).");
}

}  // namespace mc_py
