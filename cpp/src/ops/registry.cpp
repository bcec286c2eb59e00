// ops/registry.cpp — the OpDef table, generated from registry.h (one entry per op, indexed by
// OpKind). Each op file defines its `<name>_op`.
#include "mlpcore/ops.h"

namespace mc {

#define MC_X(name) extern const OpDef name##_op;
MC_FOR_OPS(MC_X)
#undef MC_X

namespace {
const OpDef* const kOps[] = {
#define MC_X(name) &name##_op,
    MC_FOR_OPS(MC_X)
#undef MC_X
};
static_assert(sizeof(kOps) / sizeof(kOps[0]) == size_t(kNumOps), "one OpDef per OpKind");
}  // namespace

const OpDef& op_def(OpKind k) {
  const int i = int(k);
  MC_CHECK_VALUE(i >= 0 && i < kNumOps, "invalid op kind ", i);
  return *kOps[i];
}

}  // namespace mc
