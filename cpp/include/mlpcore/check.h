// mlpcore/check.h — dtypes, devices and the error macros (file:line) every other header uses.
// Errors are C++ exceptions carrying file:line; the bindings translate them to Python
// (mc::ValueError -> ValueError, mc::TypeError -> TypeError, std::runtime_error -> RuntimeError;
// pybind11 maps the other standard exceptions, e.g. std::bad_alloc -> MemoryError).
//
// Dtype and device switches are exhaustive: they have no `default`, and the build turns
// -Wswitch into an error (-Werror=switch), so a new enumerator that some switch does not handle
// fails to compile instead of silently taking another dtype's path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mc {

enum class DType : int { f32 = 0, f64 = 1 };
enum class Device : int { cpu = 0, cuda = 1 };
constexpr int kNumDevices = 2;

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

namespace detail {
template <class E, class... Args>
[[noreturn]] void raise_at(const char* file, int line, const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  os << " [" << file << ":" << line << "]";
  throw E(os.str());
}
}  // namespace detail

inline size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::f32: return 4;
    case DType::f64: return 8;
  }
  detail::raise_at<std::runtime_error>(__FILE__, __LINE__, "invalid dtype ", int(dt));
}

// Calls f(float{}) or f(double{}) for the dtype: the one way from a runtime dtype to a template
// instantiation (both backends and every op use it).
template <class F>
void dtype_dispatch(DType dt, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
  }
  detail::raise_at<std::runtime_error>(__FILE__, __LINE__, "invalid dtype ", int(dt));
}

inline const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
  }
  return "invalid dtype";
}
inline const char* device_name(Device d) {
  switch (d) {
    case Device::cpu: return "cpu";
    case Device::cuda: return "cuda";
  }
  return "invalid device";
}

}  // namespace mc

// MC_CHECK(cond, msg...): a broken internal invariant or a state error -> RuntimeError.
#define MC_CHECK(cond, ...)                                                                \
  do {                                                                                     \
    if (!(cond)) ::mc::detail::raise_at<std::runtime_error>(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
// MC_CHECK_VALUE / MC_CHECK_TYPE: bad user input -> ValueError / TypeError.
#define MC_CHECK_VALUE(cond, ...)                                                         \
  do {                                                                                    \
    if (!(cond)) ::mc::detail::raise_at<::mc::ValueError>(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
#define MC_CHECK_TYPE(cond, ...)                                                         \
  do {                                                                                   \
    if (!(cond)) ::mc::detail::raise_at<::mc::TypeError>(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
