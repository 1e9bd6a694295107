// The one wrapper that turns the OS's failure convention into std::error_code.
#pragma once

#include <cerrno>
#include <system_error>

namespace evq::detail {

inline std::error_code errno_code() noexcept { return {errno, std::system_category()}; }
inline std::error_code errno_code(int e) noexcept { return {e, std::system_category()}; }

// For calls that return -1 and set errno: the error, or empty on success.
template <class T>
inline std::error_code check(T result) noexcept {
  return result < 0 ? errno_code() : std::error_code{};
}

}  // namespace evq::detail
