// mlpcore/rng.h — the portable RNG behind initialisation, dropout and shuffling: splitmix64, a
// counter-based generator (value i of a stream is a pure function of (seed, i)), so results are
// the same on every platform, every backend and every thread count. The one splitmix64 of
// mlpcore: the shuffle order of train_epoch and its per-epoch seed are defined here too.
#pragma once
#include <cstdint>

#include "mlpcore/hd.h"

namespace mc {

MC_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
// Uniform double in [0, 1) from the top 53 bits.
MC_HD double u01(uint64_t bits) { return double(bits >> 11) * (1.0 / 9007199254740992.0); }

// The shuffling order of train_epoch: perm (n,) = a permutation of 0..n-1, a pure function of
// (n, seed) (Fisher-Yates over splitmix64), identical on every platform and backend.
void permutation_fill(int64_t* perm, int64_t n, uint64_t seed);
// The shuffle seed of epoch `epoch` (0-based) of a run seeded with `seed`: a hash of (seed, epoch)
// only, so a resumed run draws the same orders as an uninterrupted one.
uint64_t epoch_seed(uint64_t seed, uint64_t epoch);

}  // namespace mc
