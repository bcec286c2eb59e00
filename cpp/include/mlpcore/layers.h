// mlpcore/layers.h — one forward and one backward function per layer, explicit buffers,
// outputs first. Shapes: x (B, in), weight (out, in) as in PyTorch, bias (out,), z (B, out).
// With `transposed` the weight is stored (in, out) and used as its transpose (tied weights of
// an autoencoder's decoder).
//   forward:   z = x · Wᵀ                      (bias and activation: Backend::bias_act_forward)
//   backward:  dW (+)= dzᵀ · x,  dx = dz · W   (bias gradient: Backend::act_backward_bias_grad)
#pragma once
#include <cstdint>
#include <memory>

#include "mlpcore/backend.h"
#include "mlpcore/rng.h"

namespace mc {

void linear_forward(Backend& be, DType dt, void* z, const void* x, const void* weight, int64_t B,
                    int64_t in, int64_t out, bool transposed);
// dx may be null (first layer: nothing needs it). dweight is overwritten unless accumulate.
void linear_backward(Backend& be, DType dt, void* dx, void* dweight, const void* dz, const void* x,
                     const void* weight, int64_t B, int64_t in, int64_t out, bool transposed,
                     bool accumulate);

// Softmax cross-entropy and friends: see loss.h; activations: see activations.h.

// Counter-based RNG state of a Dropout layer, shared by the module path and the compiled network
// so both draw the same masks: the mask of element i in a call is hash(seed, counter + i), and
// each call advances counter by the number of elements.
struct DropoutState {
  uint64_t seed = 0;
  uint64_t counter = 0;
};

// Parameter initialisation (PyTorch's formulas, our portable RNG: the same numbers on every
// platform). fan_in/fan_out follow the (out, in) layout.
enum class InitKind : int { zeros = 0, he_uniform = 1, he_normal = 2, xavier_uniform = 3, xavier_normal = 4 };
void init_fill(DType dt, void* host_data, int64_t n, InitKind kind, int64_t fan_in, int64_t fan_out,
               uint64_t seed);

}  // namespace mc
