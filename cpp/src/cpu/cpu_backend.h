// cpu/cpu_backend.h — the CPU backend: OpenBLAS GEMM plus plain loops the compiler vectorises.
// It is also the numerical reference every other backend is tested against.
#pragma once
#include "mlpcore/backend.h"

namespace mc {

Backend& cpu_backend();
// OpenBLAS threads (our own loops are single-threaded: they are memory-bound next to GEMM).
void cpu_set_num_threads(int n);
int cpu_get_num_threads();
std::string cpu_blas_info();

}  // namespace mc
