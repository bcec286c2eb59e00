// cuda/cuda_backend.h — the CUDA backend: cuBLAS GEMM and the generic primitives
// (cuda/cuda_backend.cu), the op kernels beside their CPU twins' names (cuda/<op>.cu, each kernel
// naming its CPU twin, the numerical reference), the context in cuda/context.cu.
// Only backend.cpp (the single dispatch point) includes this header.
#pragma once
#include <string>

#include "mlpcore/backend.h"

namespace mc {

// The backend of device 0 (honour CUDA_VISIBLE_DEVICES to pick another GPU). One stream; every
// call is stream-ordered; download() and the calls that return a host value synchronise.
// Precondition: cuda_backend_available().
Backend& cuda_backend();
// True when a CUDA driver, a device this build has kernels for and cuBLAS are all usable. The
// first call probes (loads cuBLAS, creates the stream); it never throws and never crashes.
bool cuda_backend_available();
// Why cuda_backend_available() is false (driver, device, architecture or cuBLAS), for errors.
std::string cuda_backend_unavailable_reason();

}  // namespace mc
