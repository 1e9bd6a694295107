// evq/result.hpp: Result<T> and evq's own error codes.
#pragma once

#include <cassert>
#include <cstdint>
#include <new>
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

// An expected-like holder of a T or a std::error_code. The value and the
// error share storage, and a successful Result never constructs an
// error_code: on the I/O path a Result<size_t> costs a size_t and a bool.
// Accessing the wrong side asserts in debug builds.
template <class T>
class Result {
 public:
  using value_type = T;

  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit by design
      : ok_(true) {
    ::new (static_cast<void*>(&value_)) T(std::move(value));
  }
  Result(std::error_code error) noexcept : ok_(false) {  // NOLINT
    assert(error);
    ::new (static_cast<void*>(&error_)) std::error_code(error);
  }
  Result(errc error) noexcept : Result(make_error_code(error)) {}  // NOLINT

  Result(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(other.ok_) {
    if (ok_)
      ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
    else
      ::new (static_cast<void*>(&error_)) std::error_code(other.error_);
  }
  Result(const Result& other) requires std::is_copy_constructible_v<T> : ok_(other.ok_) {
    if (ok_)
      ::new (static_cast<void*>(&value_)) T(other.value_);
    else
      ::new (static_cast<void*>(&error_)) std::error_code(other.error_);
  }
  Result& operator=(Result other) noexcept(std::is_nothrow_move_constructible_v<T>) {
    destroy();
    ok_ = other.ok_;
    if (ok_)
      ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
    else
      ::new (static_cast<void*>(&error_)) std::error_code(other.error_);
    return *this;
  }
  ~Result() { destroy(); }

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }

  T& value() & noexcept { assert(ok_); return value_; }
  const T& value() const& noexcept { assert(ok_); return value_; }
  T&& value() && noexcept { assert(ok_); return std::move(value_); }
  // Empty (success) when holding a value.
  std::error_code error() const noexcept { return ok_ ? std::error_code{} : error_; }

  T& operator*() & noexcept { return value(); }
  const T& operator*() const& noexcept { return value(); }
  T&& operator*() && noexcept { return std::move(*this).value(); }
  T* operator->() noexcept { return &value(); }
  const T* operator->() const noexcept { return &value(); }

 private:
  void destroy() noexcept {
    if (ok_) value_.~T();
  }

  union {
    T value_;
    std::error_code error_;
  };
  bool ok_;
};

// Integers at least as wide as int (sizes, counts, descriptors, slots): 16
// bytes and trivially copyable, so the ABI returns the Result in two
// registers instead of through memory; an error keeps its code in the
// value's place. The category pointer is null on success.
template <class T>
  requires(std::is_integral_v<T> && sizeof(T) >= sizeof(int) && sizeof(T) <= sizeof(std::uint64_t))
class Result<T> {
 public:
  using value_type = T;

  Result(T value) noexcept : value_(value), category_(nullptr) {}  // NOLINT: implicit by design
  Result(std::error_code error) noexcept  // NOLINT
      : value_(static_cast<T>(error.value())), category_(&error.category()) {
    assert(error);
  }
  Result(errc error) noexcept : Result(make_error_code(error)) {}  // NOLINT

  bool has_value() const noexcept { return category_ == nullptr; }
  explicit operator bool() const noexcept { return category_ == nullptr; }

  T& value() & noexcept { assert(has_value()); return value_; }
  const T& value() const& noexcept { assert(has_value()); return value_; }
  T value() && noexcept { assert(has_value()); return value_; }
  std::error_code error() const noexcept {
    return category_ ? std::error_code(static_cast<int>(value_), *category_) : std::error_code{};
  }

  T& operator*() & noexcept { return value(); }
  const T& operator*() const& noexcept { return value(); }
  T operator*() && noexcept { return value_; }
  T* operator->() noexcept { return &value(); }
  const T* operator->() const noexcept { return &value(); }

 private:
  T value_;
  const std::error_category* category_;
};

}  // namespace evq

template <>
struct std::is_error_code_enum<evq::errc> : std::true_type {};
