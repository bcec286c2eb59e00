// bindings/device_data.cpp — the CUDA data-set cache and staging buffers (see device_data.h).
#include "device_data.h"

#include "loss.h"

namespace mc_py {

ArrayLayout ArrayLayout::of(py::handle h) {
  ArrayLayout l;
  if (!py::isinstance<py::array>(h)) return l;
  auto a = py::reinterpret_borrow<py::array>(h);
  l.data = a.data();
  l.shape.assign(a.shape(), a.shape() + a.ndim());
  l.strides.assign(a.strides(), a.strides() + a.ndim());
  l.dtype = a.dtype();
  return l;
}

bool ArrayLayout::same(const ArrayLayout& o) const {
  return data == o.data && shape == o.shape && strides == o.strides &&
         (dtype.is_none() ? o.dtype.is_none() : (!o.dtype.is_none() && dtype.equal(o.dtype)));
}

YKind ykind_of(LossKind loss) { return loss_def(loss).labels ? YKind::labels : YKind::values; }

void* stage(Buffer& b, size_t nbytes) {
  if (b.device() != Device::cuda || !b.data())
    b = Buffer(Device::cuda, nbytes);
  else
    b.reserve(nbytes);
  return b.data();
}

py::array as_targets(const Network& net, py::handle Y_, YKind ykind, int64_t n, bool validate, const char* rows_of) {
  return as_loss_target(ykind == YKind::labels ? LossKind::cross_entropy : LossKind::mse, Y_, "y", net.dtype(), n,
                        net.out_features(), rows_of, validate);
}

std::shared_ptr<DeviceData> device_data(const Network& net, DeviceCache& cache, py::handle X_, py::handle Y_,
                                        YKind ykind, bool validate, py::handle W_) {
  const ArrayLayout xl = ArrayLayout::of(X_), yl = ArrayLayout::of(Y_), wl = ArrayLayout::of(W_);
  for (int i = 0; i < 2; ++i) {
    auto e = cache.entries[i];
    if (e && e->ykind == ykind && e->x_obj.is(X_) && e->y_obj.is(Y_) && e->w_obj.is(W_) && e->x_layout.same(xl) &&
        e->y_layout.same(yl) && e->w_layout.same(wl)) {
      if (i == 1) std::swap(cache.entries[0], cache.entries[1]);
      return e;
    }
  }
  const DType dt = net.dtype();
  py::array X = as_matrix(X_, "X", dt, net.in_features(), -1, false, validate);
  const int64_t n = X.shape(0);
  py::array Y;
  if (ykind != YKind::none) Y = as_targets(net, Y_, ykind, n, validate);
  py::object keep_w;
  const void* W = weights_or_null(W_, keep_w, dt, n, "X", validate);
  const bool cacheable = py::isinstance<py::array>(X_) && (ykind == YKind::none || py::isinstance<py::array>(Y_)) &&
                         (W_.is_none() || py::isinstance<py::array>(W_));
  // Evict the least recently used entry first; its device memory is reused when no other call
  // still holds it (a loop of train_on_batch calls then allocates nothing after the first).
  std::shared_ptr<DeviceData> old;
  if (cacheable) old = std::move(cache.entries[1]);
  auto d = std::make_shared<DeviceData>();
  d->x_obj = py::reinterpret_borrow<py::object>(X_);
  d->y_obj = ykind == YKind::none ? py::object(py::none()) : py::reinterpret_borrow<py::object>(Y_);
  d->w_obj = py::reinterpret_borrow<py::object>(W_);
  d->x_layout = xl;
  d->y_layout = yl;
  d->w_layout = wl;
  d->ykind = ykind;
  d->n = n;
  {
    py::gil_scoped_release nogil;
    Backend& be = backend_for(Device::cuda);
    const size_t xb = size_t(X.nbytes()), yb = ykind == YKind::none ? 0 : size_t(Y.nbytes());
    const size_t wb = W ? size_t(n) * dtype_size(dt) : 0;
    if (old && old.use_count() == 1) {
      d->X = std::move(old->X);
      d->Y = std::move(old->Y);
      d->W = std::move(old->W);
    }
    try {
      stage(d->X, xb);
      if (yb) stage(d->Y, yb);
      if (wb) stage(d->W, wb);
    } catch (const std::exception& e) {
      throw std::runtime_error("the data set (" + std::to_string((xb + yb + wb) >> 20) +
                               " MiB) does not fit in GPU memory next to the model; pass fewer rows per call: " +
                               e.what());
    }
    be.upload(d->X.data(), X.data(), xb);
    if (yb) be.upload(d->Y.data(), Y.data(), yb);
    if (wb) be.upload(d->W.data(), W, wb);
  }
  if (cacheable) {
    cache.entries[1] = std::move(cache.entries[0]);
    cache.entries[0] = d;
  }
  return d;
}

}  // namespace mc_py
