// layers.cpp — Linear forward/backward through the backend's GEMM, and initialisers.
#include "mlpcore/layers.h"

#include <cmath>

namespace mc {

// z (B,out) = x (B,in) · Wᵀ; W is (out,in), or (in,out) used as is when transposed.
void linear_forward(Backend& be, DType dt, void* z, const void* x, const void* weight, int64_t B, int64_t in,
                    int64_t out, bool transposed) {
  if (!transposed)
    be.gemm(dt, false, true, B, out, in, 1.0, x, in, weight, in, 0.0, z, out);
  else
    be.gemm(dt, false, false, B, out, in, 1.0, x, in, weight, out, 0.0, z, out);
}

// dW (out,in) (+)= dzᵀ (out,B) · x (B,in); dx (B,in) = dz (B,out) · W (out,in).
// Transposed storage (in,out): dW' = xᵀ · dz, dx = dz · W'ᵀ.
void linear_backward(Backend& be, DType dt, void* dx, void* dweight, const void* dz, const void* x,
                     const void* weight, int64_t B, int64_t in, int64_t out, bool transposed, bool accumulate) {
  const double beta = accumulate ? 1.0 : 0.0;
  if (!transposed) {
    if (dweight) be.gemm(dt, true, false, out, in, B, 1.0, dz, out, x, in, beta, dweight, in);
    if (dx) be.gemm(dt, false, false, B, in, out, 1.0, dz, out, weight, in, 0.0, dx, in);
  } else {
    if (dweight) be.gemm(dt, true, false, in, out, B, 1.0, x, in, dz, out, beta, dweight, out);
    if (dx) be.gemm(dt, false, true, B, in, out, 1.0, dz, out, weight, out, 0.0, dx, in);
  }
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
    if (dt == DType::f32)
      static_cast<float*>(host_data)[i] = float(v);
    else
      static_cast<double*>(host_data)[i] = v;
  }
}

}  // namespace mc
