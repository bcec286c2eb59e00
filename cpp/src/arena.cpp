// arena.cpp — ParamArena (flat parameter and gradient buffers) and the initialisers.
#include "mlpcore/arena.h"

#include <algorithm>
#include <cmath>

#include "mlpcore/rng.h"

namespace mc {

ParamArena::ParamArena(Device device, DType dtype, int64_t numel)
    : device_(device),
      dtype_(dtype),
      numel_(numel),
      params_(device, size_t(std::max<int64_t>(numel, 1)) * dtype_size(dtype)),
      grads_(device, size_t(std::max<int64_t>(numel, 1)) * dtype_size(dtype)) {
  Backend& be = backend_for(device);
  be.fill(dtype, params_.data(), numel, 0.0);
  be.fill(dtype, grads_.data(), numel, 0.0);
}

void ParamArena::zero_grad() { backend_for(device_).fill(dtype_, grads_.data(), numel_, 0.0); }

bool ParamArena::holds(const void* p, int64_t n) const {
  const uintptr_t lo = reinterpret_cast<uintptr_t>(params_.data());
  const uintptr_t hi = lo + size_t(numel_) * dtype_size(dtype_);
  const uintptr_t q = reinterpret_cast<uintptr_t>(p);
  return n >= 0 && q >= lo && q + size_t(n) * dtype_size(dtype_) <= hi;
}

// He (Kaiming, gain sqrt 2, fan_in) and Xavier (Glorot, fan_in + fan_out), uniform or normal.
// Normal samples use Box-Muller on our own uniform stream, never std:: distributions, whose
// output differs between standard libraries.
void init_fill(DType dt, void* host_data, int64_t n, InitKind kind, int64_t fan_in, int64_t fan_out,
               uint64_t seed) {
  double scale = 0.0;
  bool normal = false;
  switch (kind) {
    case InitKind::zeros: break;
    case InitKind::he_uniform: scale = std::sqrt(6.0 / double(fan_in)); break;
    case InitKind::he_normal: scale = std::sqrt(2.0 / double(fan_in)); normal = true; break;
    case InitKind::xavier_uniform: scale = std::sqrt(6.0 / double(fan_in + fan_out)); break;
    case InitKind::xavier_normal: scale = std::sqrt(2.0 / double(fan_in + fan_out)); normal = true; break;
  }
  // Mix the seed first: seeding the counter with the raw seed would make seed s+1's stream
  // the stream of seed s shifted by one value (Linear(seed=0) and Linear(seed=1) nearly equal).
  uint64_t state = splitmix64(seed);
  auto next = [&]() { return u01(splitmix64(state++)); };
  dtype_dispatch(dt, [&](auto t) {
    using T = decltype(t);
    T* out = static_cast<T*>(host_data);
    for (int64_t i = 0; i < n; ++i) {
      double v = 0.0;
      if (kind != InitKind::zeros) {
        if (normal) {
          const double u1 = 1.0 - next(), u2 = next();  // u1 in (0, 1]
          v = scale * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
        } else {
          v = scale * (2.0 * next() - 1.0);
        }
      }
      out[i] = T(v);
    }
  });
}

}  // namespace mc
