// mlpcore/tensor.h — 2-D, row-major, contiguous tensors.
// `Tensor` is a non-owning view (pointer + shape + dtype + device); `Buffer` owns device
// memory obtained from a Backend. Element (i, j) of a (rows, cols) tensor is at data[i*cols + j].
#pragma once
#include <memory>

#include "mlpcore/check.h"

namespace mc {

struct Tensor {
  void* data = nullptr;
  int64_t rows = 0, cols = 0;
  DType dtype = DType::f32;
  Device device = Device::cpu;

  int64_t numel() const { return rows * cols; }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  template <class T>
  T* ptr() const { return static_cast<T*>(data); }
};

class Backend;

// Owning, move-only device allocation. Growing reallocates (contents are not kept).
class Buffer {
 public:
  Buffer() = default;
  Buffer(Device device, size_t nbytes);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    swap(o);
    return *this;
  }
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // Ensure capacity of at least `nbytes`; returns true when it had to reallocate.
  bool reserve(size_t nbytes);

 private:
  void swap(Buffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(nbytes_, o.nbytes_);
    std::swap(device_, o.device_);
  }
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_ = Device::cpu;
};

}  // namespace mc
