// mlpcore/arena.h — parameters in flat buffers, and their initialisation.
// A ParamArena holds parameters in one flat buffer and their gradients in a second one of the
// same layout (Python's Parameter.data / .grad are views into them); zero_grad is one fill. A
// network may read its parameters from several arenas of one device and dtype.
#pragma once
#include <cstdint>

#include "mlpcore/backend.h"

namespace mc {

class ParamArena {
 public:
  ParamArena(Device device, DType dtype, int64_t numel);
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return numel_; }
  void* params() const { return params_.data(); }
  void* grads() const { return grads_.data(); }
  void* param_at(int64_t off) const { return static_cast<char*>(params_.data()) + off * dtype_size(dtype_); }
  void* grad_at(int64_t off) const { return static_cast<char*>(grads_.data()) + off * dtype_size(dtype_); }
  // True when [p, p + n values) lies inside the parameter buffer.
  bool holds(const void* p, int64_t n) const;
  void zero_grad();

 private:
  Device device_;
  DType dtype_;
  int64_t numel_;
  Buffer params_, grads_;
};

// Parameter initialisation (PyTorch's formulas, our portable RNG: the same numbers on every
// platform). fan_in/fan_out follow the (out, in) layout. Writes n values into host memory.
enum class InitKind : int { zeros = 0, he_uniform = 1, he_normal = 2, xavier_uniform = 3, xavier_normal = 4 };
void init_fill(DType dt, void* host_data, int64_t n, InitKind kind, int64_t fan_in, int64_t fan_out,
               uint64_t seed);

}  // namespace mc
