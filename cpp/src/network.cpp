// network.cpp — the Network's graph and passes: construction (validation, fusion, parameter
// pointers), the workspace, and the forward and backward loops over the ops' OpDefs. The entry
// points that run them (train_step, train_epoch, predict, evaluate, forward, backward) are in
// network_run.cpp. See network.h for the graph and memory model.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "mlpcore/network.h"

namespace mc {

namespace {
std::atomic<bool> g_batch_invariant{false};
}  // namespace

void set_batch_invariant(bool on) { g_batch_invariant.store(on); }
bool get_batch_invariant() { return g_batch_invariant.load(); }

void check_loss_finite(double value, int64_t epoch, int64_t batch) {
  if (std::isfinite(value)) return;
  // Epochs and batches counted from 1, as the progress display counts them.
  throw std::runtime_error("non-finite loss (" + std::string(std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf") +
                           ")" +
                           (epoch < 0 ? std::string(" in a single training step (train_on_batch)")
                                      : " at epoch " + std::to_string(epoch + 1) + ", batch " +
                                            std::to_string(batch + 1)) +
                           "; training stopped before this batch updated the weights (lower the learning "
                           "rate or check the data)");
}

Network::Network(std::vector<std::shared_ptr<ParamArena>> arenas, std::vector<OpSpec> specs, int64_t in_features)
    : arenas_(std::move(arenas)), in_features_(in_features) {
  MC_CHECK_VALUE(!arenas_.empty(), "Network: needs at least one parameter arena");
  for (size_t a = 0; a < arenas_.size(); ++a) {
    MC_CHECK_VALUE(arenas_[a] != nullptr, "Network: arena ", a, " is None");
    MC_CHECK_VALUE(arenas_[a]->device() == arenas_[0]->device() && arenas_[a]->dtype() == arenas_[0]->dtype(),
                   "Network: arena ", a, " lives on ", device_name(arenas_[a]->device()), "/",
                   dtype_name(arenas_[a]->dtype()), " but arena 0 on ", device_name(arenas_[0]->device()), "/",
                   dtype_name(arenas_[0]->dtype()), "; the arenas of a network share one device and dtype");
  }
  be_ = &backend_for(arenas_[0]->device());
  dt_ = arenas_[0]->dtype();
  MC_CHECK_VALUE(!specs.empty(), "Network: needs at least one layer");
  MC_CHECK_VALUE(in_features >= 1, "Network: in_features must be >= 1, got ", in_features);
  // Values consumed twice (skip inputs) must stay materialised: no fusion across them.
  std::vector<char> is_skip(specs.size() + 1, 0);
  for (size_t i = 0; i < specs.size(); ++i) {
    const OpSpec& s = specs[i];
    op_def(s.kind);  // a valid kind
    if (s.skip < 0) continue;
    MC_CHECK_VALUE(s.skip <= int64_t(i), "Network: op ", i, " (", op_name(s.kind), ") skip ", s.skip,
                   " must name an earlier value in [0, ", i, "]");
    is_skip[s.skip] = 1;
  }
  // Fusion (an op absorbs the next one); remap value indices (old value v -> new value map[v]).
  std::vector<int64_t> map(specs.size() + 1, 0);
  std::vector<OpSpec> ops;
  for (size_t i = 0; i < specs.size(); ++i) {
    OpSpec s = specs[i];
    const OpDef& def = op_def(s.kind);
    const bool fuse = def.absorb && i + 1 < specs.size() && !is_skip[i + 1] && def.absorb(s, specs[i + 1]);
    if (s.skip >= 0) s.skip = map[s.skip];
    ops.push_back(s);
    map[i + 1] = int64_t(ops.size());
    if (fuse) map[i + 2] = int64_t(ops.size()), ++i;
  }
  // Widths, parameters and workspace needs, op by op.
  width_.push_back(in_features);
  for (size_t i = 0; i < ops.size(); ++i) {
    Node n;
    n.spec = ops[i];
    n.def = &op_def(n.spec.kind);
    n.in_w = width_.back();
    n.out_w = n.def->out_width(n.spec, n.in_w, int64_t(i));
    const OpSpec& s = n.spec;
    if (s.skip >= 0)
      MC_CHECK_VALUE(width_[s.skip] == n.out_w, "Network: op ", i, " (", n.def->name, ") adds value ", s.skip, " of ",
                     width_[s.skip], " features to its output of ", n.out_w,
                     " features; y = x + block(x) needs equal widths");
    const OpParams p = n.def->params(s, n.in_w, n.out_w);
    if (p.weight || p.bias || p.state)
      MC_CHECK_VALUE(s.arena >= 0 && s.arena < int64_t(arenas_.size()), "Network: op ", i, " (", n.def->name,
                     ") names arena ", s.arena, " but the network has ", arenas_.size());
    auto place = [&](int64_t off, int64_t numel, const char* what) -> int64_t {
      const ParamArena& a = *arenas_[size_t(s.arena)];
      MC_CHECK_VALUE(off >= 0 && off + numel <= a.numel(), "Network: layer ", i, " ", what,
                     " lies outside the parameter arena");
      return off;
    };
    if ((p.state || n.def->batch_coupled) && !dp_refused_) dp_refused_ = n.def->name;
    // A frozen parameter (weight_grad / bias_grad false) gets no gradient pointer: its op skips
    // that gradient (no dW GEMM).
    if (p.weight) {
      const int64_t off = place(s.weight_off, p.weight, "weight");
      n.weight = arenas_[size_t(s.arena)]->param_at(off);
      if (s.weight_grad) {
        n.dweight = arenas_[size_t(s.arena)]->grad_at(off);
        grad_spans_.push_back({size_t(s.arena), off, off + p.weight});
      }
    }
    if (p.bias) {
      const int64_t off = place(s.bias_off, p.bias, "bias");
      n.bias = arenas_[size_t(s.arena)]->param_at(off);
      if (s.bias_grad) {
        n.dbias = arenas_[size_t(s.arena)]->grad_at(off);
        grad_spans_.push_back({size_t(s.arena), off, off + p.bias});
      }
    }
    if (p.state) n.state = arenas_[size_t(s.arena)]->param_at(place(s.state_off, p.state, "state"));
    n.work = n.def->work(s, n.in_w, n.out_w, dt_);
    width_.push_back(n.out_w);
    nodes_.push_back(n);
  }
  // What the data-parallel step all-reduces: the gradients this network writes (not the frozen
  // ones, collected above), as the fewest contiguous spans of each arena (tied weights and
  // adjacent parameters merge).
  std::sort(grad_spans_.begin(), grad_spans_.end(),
            [](const GradSpan& a, const GradSpan& b) { return a.arena != b.arena ? a.arena < b.arena : a.lo < b.lo; });
  size_t kept = 0;
  for (const GradSpan& g : grad_spans_) {
    if (kept > 0 && grad_spans_[kept - 1].arena == g.arena && g.lo <= grad_spans_[kept - 1].hi)
      grad_spans_[kept - 1].hi = std::max(grad_spans_[kept - 1].hi, g.hi);
    else
      grad_spans_[kept++] = g;
  }
  grad_spans_.resize(kept);
  // Ops before the first one with a parameter gradient need no backward in a training step.
  first_grad_ = nodes_.size();
  for (size_t i = nodes_.size(); i-- > 0;)
    if (nodes_[i].dweight || nodes_[i].dbias) first_grad_ = i;
  values_.assign(nodes_.size() + 1, nullptr);
  grads_.assign(nodes_.size() + 1, nullptr);
  written_.reserve(2 * nodes_.size());  // backward pushes at most two per op: no allocation later
  loss_dev_ = Buffer(device(), sizeof(LossSums));
  if (device() != Device::cpu)  // class_weight + pos_weight, each rounded to 64 bytes
    loss_vecs_ = Buffer(device(), 2 * ((size_t(width_.back()) * dtype_size(dt_) + 63) & ~size_t(63)));
}

void Network::reserve(int64_t B) {
  if (B <= capacity_) return;
  invalidate("the workspace grew (a larger batch) after the last forward()");
  const size_t es = dtype_size(dt_);
  auto round = [](size_t n) { return (n + 63) & ~size_t(63); };
  // First pass computes offsets, second assigns pointers into one allocation.
  std::vector<size_t> off_val(values_.size(), 0), off_grad(values_.size(), 0), off_saved(nodes_.size(), 0);
  size_t total = 0;
  auto take = [&](size_t nbytes) {
    size_t at = total;
    total += round(nbytes);
    return at;
  };
  off_grad[0] = take(B * width_[0] * es);  // d loss / d input: backward() only
  for (size_t v = 1; v < values_.size(); ++v) {
    off_val[v] = take(B * width_[v] * es);
    off_grad[v] = take(B * width_[v] * es);
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const OpWork& w = nodes_[i].work;
    if (w.per_row || w.fixed) off_saved[i] = take(size_t(B * w.per_row + w.fixed));
  }
  const size_t off_bx = take(B * in_features_ * es);
  const size_t off_by = take(B * std::max<int64_t>(width_.back(), 1) * es + B * sizeof(int32_t));
  const size_t off_bw = take(B * es);
  work_ = Buffer();  // free the old workspace first: peak memory is the new one only
  work_ = Buffer(device(), total);
  char* base = static_cast<char*>(work_.data());
  grads_[0] = base + off_grad[0];
  for (size_t v = 1; v < values_.size(); ++v) {
    values_[v] = base + off_val[v];
    grads_[v] = base + off_grad[v];
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const OpWork& w = nodes_[i].work;
    nodes_[i].saved = (w.per_row || w.fixed) ? base + off_saved[i] : nullptr;
  }
  batch_x_ = base + off_bx;
  batch_y_ = base + off_by;
  batch_w_ = base + off_bw;
  capacity_ = B;
}

size_t Network::row_bytes() const {
  const size_t es = dtype_size(dt_);
  size_t b = size_t(2 * in_features_ + width_.back()) * es + sizeof(int32_t);  // d/d input, batch x, batch y
  for (size_t v = 1; v < width_.size(); ++v) b += 2 * size_t(width_[v]) * es;
  for (const Node& n : nodes_) b += size_t(n.work.per_row);
  return b;
}

OpCall Network::call_of(size_t i, int64_t B) const {
  const Node& n = nodes_[i];
  return OpCall{*be_,     dt_,    n.spec,      B,      n.in_w,  n.out_w,
                values_[i], n.spec.skip >= 0 ? values_[size_t(n.spec.skip)] : nullptr,
                values_[i + 1], n.saved, n.state, n.weight, n.bias, fwd_training_,
                !fwd_training_ && be_->device() == Device::cpu && get_batch_invariant(),
                shard_row0_, shard_rows_ < 0 ? B : shard_rows_};
}

void Network::forward_ops(const void* x, int64_t B, bool training) {
  values_[0] = const_cast<void*>(x);  // read only: no op writes its input
  fwd_training_ = training;
  fwd_rows_ = B;
  for (size_t i = 0; i < nodes_.size(); ++i) nodes_[i].def->forward(call_of(i, B));
}

void Network::backward_ops(int64_t B, bool input_grad, bool accumulate) {
  // Tied weights: unless every write accumulates, the first write to a gradient in this pass
  // overwrites it and later ones add.
  written_.clear();
  auto acc = [&](const void* g) {
    if (accumulate || !g) return true;
    if (std::find(written_.begin(), written_.end(), g) != written_.end()) return true;
    written_.push_back(g);
    return false;
  };
  // The compiled step needs no d/d input, and nothing below the first op with a parameter
  // gradient (frozen leading layers cost no backward work).
  const size_t stop = input_grad ? 0 : first_grad_;
  for (size_t ii = nodes_.size(); ii-- > stop;) {
    const Node& n = nodes_[ii];
    OpGrads g;
    g.dx = ii > stop || input_grad ? grads_[ii] : nullptr;
    g.dy = grads_[ii + 1];
    g.dweight = n.dweight;
    g.dbias = n.dbias;
    g.acc_bias = acc(n.dbias);
    g.acc_weight = acc(n.dweight);
    n.def->backward(call_of(ii, B), g);
    // A skip input enters its op as an addend: once grads_[ii] is complete from op ii, add the
    // output gradient of every op that reads value ii as its skip.
    if (g.dx)
      for (size_t j = ii; j < nodes_.size(); ++j)
        if (nodes_[j].spec.skip == int64_t(ii)) be_->add_inplace(dt_, grads_[ii], grads_[j + 1], B * width_[ii]);
  }
}

}  // namespace mc
