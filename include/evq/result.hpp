// evq/result.hpp: Result<T> and evq's own error codes.
#pragma once

#include <cassert>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace evq {

// Errors evq raises itself (OS errors keep the system category). Each one is
// equivalent to the closest std::errc, so `ec == std::errc::file_exists` works.
enum class errc {
  already_registered = 1,  // add() of a source that is registered  ~ file_exists
  not_registered,          // modify()/remove() of one that is not  ~ no_such_file_or_directory
  zero_capacity,           // Events with capacity 0 passed to poll ~ invalid_argument
  invalid_address,         // SocketAddr::parse of a malformed string ~ invalid_argument
  timer_not_armed,         // cancel_timer of one fired or cancelled ~ no_such_file_or_directory
  invalid_timer,           // a default-constructed or foreign TimerId ~ invalid_argument
  backend_unavailable,     // Poll::create(Backend) not compiled in  ~ operation_not_supported
  trigger_unsupported,     // trigger the backend cannot emulate     ~ operation_not_supported
  invalid_source,          // a source with no descriptor            ~ bad_file_descriptor
  invalid_argument,        // any other bad argument                 ~ invalid_argument
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// An expected-like holder of a T or a std::error_code. Never throws on access
// of the wrong side in release builds; asserts in debug builds.
template <class T>
class Result {
 public:
  using value_type = T;

  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(std::error_code error) : error_(error) { assert(error); }  // NOLINT
  Result(errc error) : Result(make_error_code(error)) {}             // NOLINT

  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { assert(has_value()); return *value_; }
  const T& value() const& { assert(has_value()); return *value_; }
  T&& value() && { assert(has_value()); return std::move(*value_); }
  std::error_code error() const noexcept { return error_; }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::optional<T> value_;
  std::error_code error_;
};

}  // namespace evq

template <>
struct std::is_error_code_enum<evq::errc> : std::true_type {};
