// backend.cpp — the single device dispatch point, and Buffer (memory owned through a backend).
#include "mlpcore/backend.h"

#include "cpu/cpu_backend.h"

#ifdef MLPCORE_HAS_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace mc {

Backend& backend_for(Device device) {
  if (device == Device::cpu) return cpu_backend();
#ifdef MLPCORE_HAS_CUDA
  if (cuda_backend_available()) return cuda_backend();
#endif
  throw std::runtime_error("mlpcore: device 'cuda' requested but " + cuda_unavailable_reason());
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

const char* act_name(ActKind k) {
  switch (k) {
    case ActKind::identity: return "identity";
    case ActKind::relu: return "relu";
    case ActKind::leaky_relu: return "leaky_relu";
    case ActKind::sigmoid: return "sigmoid";
    case ActKind::tanh: return "tanh";
    case ActKind::elu: return "elu";
    case ActKind::gelu: return "gelu";
    case ActKind::silu: return "silu";
    case ActKind::softmax: return "softmax";
  }
  return "?";
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
