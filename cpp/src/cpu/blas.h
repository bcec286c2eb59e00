// cpu/blas.h — the one place that names BLAS symbols. The scipy-openblas32 wheel exports
// prefixed symbols (scipy_cblas_sgemm, scipy_openblas_set_num_threads); a system OpenBLAS
// (MLPCORE_BLAS=system) exports the plain ones. MLPCORE_BLAS_PREFIXED picks which.
#pragma once
#include <cblas.h>

#ifdef MLPCORE_BLAS_PREFIXED
#define MC_CBLAS(name) scipy_cblas_##name
#define MC_OPENBLAS(name) scipy_openblas_##name
#else
#define MC_CBLAS(name) cblas_##name
#define MC_OPENBLAS(name) openblas_##name
#endif
