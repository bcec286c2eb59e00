// backend.cpp — the single device dispatch point, the kernel-table error, and Buffer (memory
// owned through a backend).
#include "mlpcore/backend.h"

#include "cpu/cpu_backend.h"

#ifdef MLPCORE_HAS_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace mc {

Backend& backend_for(Device device) {
  switch (device) {
    case Device::cpu: return cpu_backend();
    case Device::cuda:
#ifdef MLPCORE_HAS_CUDA
      if (cuda_backend_available()) return cuda_backend();
#endif
      throw std::runtime_error("mlpcore: device 'cuda' requested but " + cuda_unavailable_reason());
  }
  detail::raise_at<ValueError>(__FILE__, __LINE__, "invalid device ", int(device));
}

bool cuda_available() {
#ifdef MLPCORE_HAS_CUDA
  return cuda_backend_available();
#else
  return false;
#endif
}

std::string cuda_unavailable_reason() {
#ifdef MLPCORE_HAS_CUDA
  return cuda_backend_available() ? std::string("CUDA is available") : cuda_backend_unavailable_reason();
#else
  return "this build of mlpcore has no CUDA backend (rebuild with MLPCORE_CUDA=ON and a CUDA toolkit)";
#endif
}

void kernels_missing(const Backend& be, KernelSet s) {
  detail::raise_at<std::runtime_error>(__FILE__, __LINE__, "mlpcore: the ", device_name(be.device()),
                                       " backend has no '", kernel_set_name(s), "' kernels");
}

Buffer::Buffer(Device device, size_t nbytes) : device_(device) { reserve(nbytes); }

Buffer::~Buffer() {
  if (data_) backend_for(device_).free(data_);
}

bool Buffer::reserve(size_t nbytes) {
  if (nbytes <= nbytes_ && data_) return false;
  Backend& be = backend_for(device_);
  if (data_) be.free(data_);
  data_ = nullptr;
  nbytes_ = 0;
  data_ = be.alloc(nbytes);
  nbytes_ = nbytes;
  return true;
}

}  // namespace mc
