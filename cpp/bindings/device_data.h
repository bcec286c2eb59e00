// bindings/device_data.h — data for networks on the GPU.
// A network whose parameters live on cuda computes on device memory, so the bindings copy its
// inputs to the device. Whole data sets (train_epoch, evaluate, predict) are uploaded once and
// cached per network — two entries, most recent first — keyed by the identity of the caller's
// numpy arrays: handing the same arrays in again (every epoch of a fit, the validation set after
// each epoch) reuses the device copy without validating or uploading again. The cache keeps those
// arrays alive; it does NOT see later in-place writes to them: call Network.release_device_data()
// after modifying a cached array (or to give the device memory back). Inputs that are not numpy
// arrays, and single batches (train_step, forward, backward), are staged per call in reusable
// device buffers.
#pragma once
#include <memory>
#include <mutex>
#include <vector>

#include "input.h"
#include "mlpcore/network.h"

namespace mc_py {

// What identifies an array's contents for the cache (besides its identity): data, shape, strides.
struct ArrayLayout {
  const void* data = nullptr;
  std::vector<py::ssize_t> shape, strides;
  py::object dtype = py::none();
  static ArrayLayout of(py::handle h);
  bool same(const ArrayLayout& o) const;
};

enum class YKind : int { none = 0, labels = 1, values = 2 };
YKind ykind_of(LossKind loss);

struct DeviceData {
  py::object x_obj, y_obj, w_obj;  // the caller's objects (y_obj / w_obj None without targets / weights)
  ArrayLayout x_layout, y_layout, w_layout;
  YKind ykind = YKind::none;
  int64_t n = 0;
  // device copies: X (n, in) in the network's dtype; Y int32 labels or (n, out); W (n,) sample
  // weights in the network's dtype (empty without)
  Buffer X, Y, W;
  const void* weights() const { return w_obj.is_none() ? nullptr : W.data(); }
};

// A network's device-side staging: the data-set cache and the per-call buffers.
struct DeviceCache {
  std::shared_ptr<DeviceData> entries[2];  // most recently used first
  std::mutex stage_mutex;                  // staging buffers: one call at a time
  Buffer stage_x, stage_y, stage_w, stage_out;
  Buffer stage_forward;                    // forward's input, read again by backward
  void release() {
    entries[0].reset();
    entries[1].reset();
  }
  int size() const { return int(bool(entries[0])) + int(bool(entries[1])); }
};

// Device memory of at least `nbytes` in `b` (allocated on first use, grown when needed).
void* stage(Buffer& b, size_t nbytes);

// Validates y for `net` and loss kind: int32 labels, or a float (n, out) matrix ((n,) for one
// output). `validate` = false skips the value scans (NaN/Inf, label range of a fresh copy), as
// as_matrix / as_labels do. `rows_of` names the input y must match in length errors.
py::array as_targets(const Network& net, py::handle Y_, YKind ykind, int64_t n, bool validate = true,
                     const char* rows_of = "X");

// The device copy of (X, Y, W) for a network on cuda: from the cache, or validated and uploaded.
// A cache hit is neither validated nor uploaded again (it was both when it was cached). W_: sample
// weights (n,) or None.
std::shared_ptr<DeviceData> device_data(const Network& net, DeviceCache& cache, py::handle X_, py::handle Y_,
                                        YKind ykind, bool validate = true, py::handle W_ = py::none());

}  // namespace mc_py
