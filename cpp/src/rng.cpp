// rng.cpp — the shuffle order of train_epoch and the per-epoch seed (see rng.h).
#include "mlpcore/rng.h"

#include <utility>

namespace mc {

// Fisher-Yates with our splitmix64 stream: the same permutation on every platform.
void permutation_fill(int64_t* perm, int64_t n, uint64_t seed) {
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  uint64_t state = splitmix64(seed ^ 0x5DEECE66Dull);
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = int64_t(splitmix64(state++) % uint64_t(i + 1));
    std::swap(perm[i], perm[j]);
  }
}

uint64_t epoch_seed(uint64_t seed, uint64_t epoch) { return splitmix64(splitmix64(seed) ^ epoch); }

}  // namespace mc
