# cmake/cuda.cmake — decides MLPCORE_WITH_CUDA from MLPCORE_CUDA (AUTO|ON|OFF) and defines
# mlpcore_add_cuda_backend(<core target>).
#
#   OFF   never looks for CUDA.
#   AUTO  builds the backend when cuBLAS AND nvcc are both found, otherwise reports OFF. cuBLAS is
#         looked for first (cheap: a Python import, a header search), so a machine with nvcc but
#         no cuBLAS — CI's isolated `pip install .` — decides OFF without running nvcc at all.
#   ON    as AUTO, but a missing piece is a configure error.
#
# cuBLAS comes from the `nvidia-cublas` wheel (nvidia/cu13/{include,lib}, found through the
# Python interpreter; `MLPCORE_CUDA=ON pip install .` adds the wheel to the isolated build, see
# pyproject.toml) or from a system CUDA toolkit (find_package(CUDAToolkit) -> CUDA::cublas; the
# toolkit alone is not enough, it is found even without cuBLAS).
#
# Linking: cudart is static, so the module imports on machines without a driver. cuBLAS is NOT
# a link-time dependency: the backend dlopen()s libcublas.so.<major> the first time CUDA is asked
# for (cuda/context.cu). So `import mlpcore` never pays cuBLAS/cuBLASLt's ~200 ms load, and a
# CUDA build without the runtime wheel still imports and reports cuda as unavailable, naming the
# missing library. The search order of that dlopen: the module's RUNPATH
# ($ORIGIN/../nvidia/cu13/lib, the wheel next to an installed mlpcore), the system's library
# path, then the full path found here at configure time (dev builds in a source tree).
#
# Architectures: explicit (CUDA 13 supports sm_75+; `native` fails on a machine without a GPU).
# Default 80;90 (A100, H100/H200; PTX of compute_90 JIT-compiles on newer GPUs); CUDAARCHS or
# -DCMAKE_CUDA_ARCHITECTURES override it.
set(MLPCORE_WITH_CUDA OFF)
set(MLPCORE_CUDA_RPATH "")

if(MLPCORE_CUDA MATCHES "^(1|TRUE|YES|Y)$")
  set(MLPCORE_CUDA ON)
elseif(MLPCORE_CUDA MATCHES "^(0|FALSE|NO|N)$")
  set(MLPCORE_CUDA OFF)
endif()
if(NOT MLPCORE_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "mlpcore: MLPCORE_CUDA must be AUTO, ON or OFF, got '${MLPCORE_CUDA}'")
endif()

# Reports why CUDA is off: a configure error under ON, a status line under AUTO.
macro(_mlpcore_cuda_off why)
  if(MLPCORE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "mlpcore: MLPCORE_CUDA=ON but ${why}")
  endif()
  message(STATUS "mlpcore: CUDA backend OFF (MLPCORE_CUDA=AUTO: ${why})")
endmacro()

function(_mlpcore_find_cuda)
  # ---- 1. cuBLAS: the wheel first, then a system toolkit ----
  set(cublas_inc "")
  set(cublas_lib "")
  set(cublas_from "")
  if(Python_EXECUTABLE)
    # nvidia/cu13 (cuBLAS 13 wheels) or nvidia/cublas (cuBLAS 12 wheels): print include dir, lib.
    execute_process(
      COMMAND "${Python_EXECUTABLE}" -c [=[
import glob, importlib, os, sys
for name in ("nvidia.cu13", "nvidia.cublas"):
    try:
        mod = importlib.import_module(name)
    except ImportError:
        continue
    for root in list(getattr(mod, "__path__", [])):
        inc, libs = os.path.join(root, "include"), sorted(glob.glob(os.path.join(root, "lib", "libcublas.so.*")))
        if os.path.isfile(os.path.join(inc, "cublas_v2.h")) and libs:
            print(inc + ";" + libs[0])
            sys.exit(0)
sys.exit(1)
]=]
      OUTPUT_VARIABLE _out OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
    if(_rc EQUAL 0)
      list(GET _out 0 cublas_inc)
      list(GET _out 1 cublas_lib)
      set(cublas_from "the nvidia-cublas wheel")
    endif()
  endif()
  find_package(CUDAToolkit QUIET)
  if(NOT cublas_lib AND TARGET CUDA::cublas)
    get_target_property(cublas_lib CUDA::cublas IMPORTED_LOCATION)
    set(cublas_inc "${CUDAToolkit_INCLUDE_DIRS}")
    set(cublas_from "the CUDA toolkit (${CUDAToolkit_LIBRARY_DIR})")
  endif()
  if(NOT cublas_lib)
    _mlpcore_cuda_off("cuBLAS was not found (neither the nvidia-cublas wheel importable by ${Python_EXECUTABLE} nor a CUDA toolkit with cuBLAS); pip install nvidia-cublas, or set CUDAToolkit_ROOT")
    return()
  endif()

  # ---- 2. nvcc and the CUDA runtime ----
  if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cudart_static)
    _mlpcore_cuda_off("no CUDA toolkit (nvcc and the CUDA runtime) was found; put nvcc on PATH or set CUDAToolkit_ROOT")
    return()
  endif()
  if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
    set(CMAKE_CUDA_COMPILER "${CUDAToolkit_NVCC_EXECUTABLE}" CACHE FILEPATH "CUDA compiler")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    _mlpcore_cuda_off("nvcc was not found or cannot compile; put nvcc on PATH or set CMAKE_CUDA_COMPILER")
    return()
  endif()

  # cuBLAS soname major version (the dlopen name), from the library file name or its headers.
  set(major "")
  if(cublas_lib MATCHES "libcublas\\.so\\.([0-9]+)")
    set(major "${CMAKE_MATCH_1}")
  else()
    foreach(d IN LISTS cublas_inc)
      if(EXISTS "${d}/cublas_api.h")
        file(STRINGS "${d}/cublas_api.h" _v REGEX "#define CUBLAS_VER_MAJOR")
        string(REGEX MATCH "[0-9]+" major "${_v}")
        break()
      endif()
    endforeach()
  endif()
  if(NOT major)
    _mlpcore_cuda_off("cannot tell cuBLAS's major version from ${cublas_lib}")
    return()
  endif()

  set(MLPCORE_WITH_CUDA ON PARENT_SCOPE)
  set(MLPCORE_CUBLAS_INCLUDE "${cublas_inc}" PARENT_SCOPE)
  set(MLPCORE_CUBLAS_LIBRARY "${cublas_lib}" PARENT_SCOPE)
  set(MLPCORE_CUBLAS_MAJOR "${major}" PARENT_SCOPE)
  set(MLPCORE_CUBLAS_FROM "${cublas_from}" PARENT_SCOPE)
endfunction()

if(NOT MLPCORE_CUDA STREQUAL "OFF")
  _mlpcore_find_cuda()
endif()

if(MLPCORE_WITH_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND "$ENV{CUDAARCHS}" STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  # The wheel next to an installed mlpcore (cuBLAS 13 and 12 layouts): searched by the dlopen.
  set(MLPCORE_CUDA_RPATH "$ORIGIN/../nvidia/cu13/lib;$ORIGIN/../nvidia/cublas/lib")
  message(STATUS "mlpcore: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures "
                 "${CMAKE_CUDA_ARCHITECTURES}; cuBLAS ${MLPCORE_CUBLAS_MAJOR} from ${MLPCORE_CUBLAS_FROM}, "
                 "loaded at run time: ${MLPCORE_CUBLAS_LIBRARY})")
elseif(MLPCORE_CUDA STREQUAL "OFF")
  message(STATUS "mlpcore: CUDA backend OFF (MLPCORE_CUDA=OFF)")
endif()

# Adds the CUDA backend to `core` (the static core library): its own static library of .cu
# sources (nvcc flags stay apart from the C++ warning flags), static cudart, and the define that
# switches on backend.cpp's dispatch hooks.
function(mlpcore_add_cuda_backend core)
  # Every .cu of the folder: context, the generic primitives and one file per op kernel set.
  file(GLOB _cuda_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cpp/src/cuda/*.cu)
  add_library(mlpcore_cuda STATIC ${_cuda_sources})
  target_include_directories(mlpcore_cuda PRIVATE cpp/include cpp/src ${MLPCORE_CUBLAS_INCLUDE})
  string(REPLACE ";" " " _archs "${CMAKE_CUDA_ARCHITECTURES}")
  target_compile_definitions(mlpcore_cuda PRIVATE
    MLPCORE_CUBLAS_SONAME="libcublas.so.${MLPCORE_CUBLAS_MAJOR}"
    MLPCORE_CUBLAS_PATH="${MLPCORE_CUBLAS_LIBRARY}"
    MLPCORE_CUDA_ARCHS="${_archs}")
  set_target_properties(mlpcore_cuda PROPERTIES CUDA_RUNTIME_LIBRARY Static POSITION_INDEPENDENT_CODE ON)
  # -Werror=switch as in the C++ core: the dtype and kind switches have no default.
  target_compile_options(mlpcore_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Werror=switch --expt-relaxed-constexpr>)
  target_link_libraries(mlpcore_cuda PUBLIC CUDA::cudart_static ${CMAKE_DL_LIBS})
  target_compile_definitions(${core} PRIVATE MLPCORE_HAS_CUDA)
  target_link_libraries(${core} PUBLIC mlpcore_cuda)
  # Keep the static runtime's symbols out of the module's dynamic symbol table, so they can never
  # interpose on another CUDA runtime in the same process (PyTorch's).
  target_link_options(${core} INTERFACE "LINKER:--exclude-libs,libcudart_static.a")
endfunction()
