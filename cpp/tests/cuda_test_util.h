// cuda_test_util.h — what the CUDA tests share: the skip when no usable GPU is present (the
// reason is printed), the two backends, and Dev<T>, a device copy of a host vector.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "mlpcore/backend.h"
#include "mlpcore/tensor.h"

#define SKIP_WITHOUT_GPU() \
  if (!mc::cuda_available()) GTEST_SKIP() << mc::cuda_unavailable_reason()

namespace mc_test {

inline mc::Backend& cpu() { return mc::backend_for(mc::Device::cpu); }
inline mc::Backend& gpu() { return mc::backend_for(mc::Device::cuda); }

// A device copy of a host vector (or `count` uninitialised elements), and back; freed on scope exit.
template <class T>
struct Dev {
  mc::Buffer buf;
  size_t n;
  explicit Dev(const std::vector<T>& h) : buf(mc::Device::cuda, std::max<size_t>(h.size(), 1) * sizeof(T)), n(h.size()) {
    gpu().upload(buf.data(), h.data(), n * sizeof(T));
  }
  explicit Dev(size_t count) : buf(mc::Device::cuda, std::max<size_t>(count, 1) * sizeof(T)), n(count) {}
  T* p() const { return static_cast<T*>(buf.data()); }
  std::vector<T> host() const {
    std::vector<T> h(n);
    gpu().download(h.data(), buf.data(), n * sizeof(T));
    return h;
  }
};

}  // namespace mc_test
