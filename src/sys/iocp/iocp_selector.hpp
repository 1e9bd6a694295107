// Windows: readiness over an I/O completion port, through AFD poll requests
// (the technique of wepoll and mio; afd.hpp, sock_state.hpp).
//
// Level and oneshot work for every socket; edge is emulated, for evq's own
// sockets only (native_edge is false: the core refuses edge for a raw
// SourceSocket with errc::trigger_unsupported). Wakers and the internal
// wake-up are packets posted to the port (PostQueuedCompletionStatus).
//
// No Windows header here: the core includes this file, and windows.h would
// bring its macros into portable code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>

#include "core/registration.hpp"
#include "evq/event.hpp"
#include "evq/platform.hpp"
#include "evq/result.hpp"

namespace evq::detail {

using TimeoutNs = std::int64_t;

class IocpSelector {
 public:
  static constexpr bool native_edge = false;

  static Result<IocpSelector> open();
  IocpSelector(IocpSelector&& other) noexcept;
  IocpSelector& operator=(IocpSelector&&) = delete;
  // Cancels the polls in flight and waits for their completions before
  // freeing what the kernel would write into.
  ~IocpSelector();

  std::error_code add(NativeHandle socket, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code modify(NativeHandle socket, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code remove(NativeHandle socket, std::uint64_t data);
  void rearm(NativeHandle socket, std::uint64_t data, Interest interest);
  std::error_code select(Event* out, std::size_t capacity, const RegistrationTable& table,
                         TimeoutNs timeout, std::size_t& n);
  std::error_code wake();
  // A waker is no OS object here: the handle returned is the user data
  // itself, posted as the packet's completion key by notify_waker.
  Result<NativeHandle> add_waker(std::uint64_t data);
  std::error_code notify_waker(NativeHandle waker);
  void remove_waker(NativeHandle waker, std::uint64_t data);

 private:
  struct State;  // iocp_selector.cpp: the port, the sockets, the mutex (which cannot move)
  explicit IocpSelector(std::unique_ptr<State> state) noexcept;
  std::unique_ptr<State> s_;
};

}  // namespace evq::detail
