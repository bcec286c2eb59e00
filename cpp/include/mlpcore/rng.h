// mlpcore/rng.h — the portable RNG behind initialisation, dropout and shuffling: splitmix64, a
// counter-based generator (value i of a stream is a pure function of (seed, i)), so results are
// the same on every platform, every backend and every thread count.
#pragma once
#include <cstdint>

#include "mlpcore/activations.h"  // MC_HD

namespace mc {

MC_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
// Uniform double in [0, 1) from the top 53 bits.
MC_HD double u01(uint64_t bits) { return double(bits >> 11) * (1.0 / 9007199254740992.0); }

}  // namespace mc
