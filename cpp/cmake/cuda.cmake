# cmake/cuda.cmake — decides MLPCORE_WITH_CUDA from MLPCORE_CUDA (AUTO|ON|OFF).
# The CUDA backend itself is a separate issue; until its sources exist, AUTO reports it off.
set(MLPCORE_WITH_CUDA OFF)
if(MLPCORE_CUDA STREQUAL "ON")
  message(FATAL_ERROR "mlpcore: MLPCORE_CUDA=ON but this version has no CUDA backend sources yet")
endif()
message(STATUS "mlpcore: CUDA backend OFF (MLPCORE_CUDA=${MLPCORE_CUDA})")
