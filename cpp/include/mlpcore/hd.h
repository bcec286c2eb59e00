// mlpcore/hd.h — MC_HD marks the scalar formulas shared by every backend (activations, losses,
// optimizer updates, the RNG): plain inline functions in C++, __host__ __device__ under nvcc, so
// the CPU reference and the GPU kernels evaluate literally the same expressions.
#pragma once

#ifdef __CUDACC__
#define MC_HD __host__ __device__ __forceinline__
#else
#define MC_HD inline
#endif
