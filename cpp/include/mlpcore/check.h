// mlpcore/check.h — dtypes, devices and the error macros (file:line) every other header uses.
// Errors are C++ exceptions carrying file:line; the bindings translate them to Python
// (mc::ValueError -> ValueError, mc::TypeError -> TypeError, std::runtime_error -> RuntimeError;
// pybind11 maps the other standard exceptions, e.g. std::bad_alloc -> MemoryError).
#pragma once
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mc {

enum class DType : int { f32 = 0, f64 = 1 };
enum class Device : int { cpu = 0, cuda = 1 };

inline size_t dtype_size(DType dt) { return dt == DType::f32 ? 4 : 8; }

// Calls f(float{}) or f(double{}) for the dtype: the backends' one way from a runtime dtype to a
// template instantiation.
template <class F>
void dtype_dispatch(DType dt, F&& f) {
  if (dt == DType::f32)
    f(float{});
  else
    f(double{});
}
inline const char* dtype_name(DType dt) { return dt == DType::f32 ? "float32" : "float64"; }
inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

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
