// mlpcore/registry.h — THE list of ops and device kernel sets. Adding an op is one line here
// (plus its files); everything that enumerates ops or kernel sets is generated from this list:
// OpKind and its Python enum, the OpDef table (ops/registry.cpp), KernelSet, and each backend's
// kernel table (cpu/cpu_backend.cpp, cuda/cuda_backend.cu).
//
// An op's files are found by CMake through their folders (cpp/src/ops/*.cpp, cpp/src/cuda/*.cu).
//
// One entry per name: F(X, name, role), role one of
//   op        a network op with device kernels of its own: ops/<name>.cpp defines the OpDef
//             `name##_op` and the CPU kernels `name##_kernels_cpu()`; cuda/<name>.cu defines
//             `name##_kernels_cuda()` (a CUDA build without them fails to link, naming them);
//   composed  a network op built from backend primitives and other sets' kernels only (an OpDef,
//             no kernel set of its own);
//   kernels   a kernel set used outside the op graph (losses, optimizer updates).
// Ops come first, in the order of their OpKind values (the values are part of the Python API and
// of lowered op lists); new ops go after the last op, before the kernel-only entries.
#pragma once

#define MC_REGISTRY(F, X)          \
  F(X, linear, composed)           \
  F(X, activation, op)             \
  F(X, dropout, op)                \
  F(X, maxout, op)                 \
  F(X, residual_add, composed)     \
  F(X, layer_norm, op)             \
  F(X, batch_norm, op)             \
  F(X, loss, kernels)              \
  F(X, optim, kernels)

// MC_FOR_OPS(X) expands X(name) for every op; MC_FOR_KERNEL_SETS(X) for every kernel set.
#define MC_FOR_OPS(X) MC_REGISTRY(MC_REGISTRY_OP_, X)
#define MC_FOR_KERNEL_SETS(X) MC_REGISTRY(MC_REGISTRY_KS_, X)

#define MC_REGISTRY_OP_(X, name, role) MC_REGISTRY_OP_##role(X, name)
#define MC_REGISTRY_OP_op(X, name) X(name)
#define MC_REGISTRY_OP_composed(X, name) X(name)
#define MC_REGISTRY_OP_kernels(X, name)
#define MC_REGISTRY_KS_(X, name, role) MC_REGISTRY_KS_##role(X, name)
#define MC_REGISTRY_KS_op(X, name) X(name)
#define MC_REGISTRY_KS_composed(X, name)
#define MC_REGISTRY_KS_kernels(X, name) X(name)

namespace mc {

// The device kernel sets, indexed into each backend's kernel table.
enum class KernelSet : int {
#define MC_X(name) name,
  MC_FOR_KERNEL_SETS(MC_X)
#undef MC_X
};
#define MC_X(name) +1
constexpr int kNumKernelSets = 0 MC_FOR_KERNEL_SETS(MC_X);
#undef MC_X

inline const char* kernel_set_name(KernelSet s) {
  switch (s) {
#define MC_X(name) \
  case KernelSet::name: return #name;
    MC_FOR_KERNEL_SETS(MC_X)
#undef MC_X
  }
  return "invalid kernel set";
}

}  // namespace mc
