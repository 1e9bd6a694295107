// The contract every OS queue meets, and the one place that says which OS
// queues this build has. Backends are thin: syscalls and flag translation.
// Policy (EINTR retry with the remaining time, timeout rounding, timers,
// generations, waker coalescing) lives once in src/core.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "core/registration.hpp"
#include "evq/event.hpp"
#include "evq/poll.hpp"
#include "evq/platform.hpp"
#include "evq/result.hpp"

namespace evq::detail {

// A timeout for Selector::select, in nanoseconds: -1 waits forever, 0 polls.
// A backend whose OS counts coarser units rounds up, never down.
using TimeoutNs = std::int64_t;
inline constexpr TimeoutNs wait_forever = -1;

// Every backend S satisfies this. `data` is the user data of a registration
// (registration.hpp); select() writes at most `capacity` events for live
// registrations (resolving user data through the table, dropping stale ones),
// sets `n`, and returns EINTR as an error for the core to retry.
template <class S>
concept Selector = requires(S& s, NativeHandle h, std::uint64_t data, Interest interest,
                            Trigger trigger, Event* out, std::size_t capacity,
                            const RegistrationTable& table, TimeoutNs timeout, std::size_t& n) {
  { S::open() } -> std::same_as<Result<S>>;
  // Edge without evq's would-block hook (raw SourceFd) only where native.
  { S::native_edge } -> std::convertible_to<bool>;
  { s.add(h, data, interest, trigger) } -> std::same_as<std::error_code>;
  { s.modify(h, data, interest, trigger) } -> std::same_as<std::error_code>;
  { s.remove(h, data) } -> std::same_as<std::error_code>;
  // Emulated edge: a socket of this registration saw would-block in `interest`.
  { s.rearm(h, data, interest) } -> std::same_as<void>;
  { s.select(out, capacity, table, timeout, n) } -> std::same_as<std::error_code>;
  // Makes a select() in progress on another thread return (no event).
  { s.wake() } -> std::same_as<std::error_code>;
  // User wakers: an OS object that, once notified, yields one event with `data`.
  { s.add_waker(data) } -> std::same_as<Result<NativeHandle>>;
  { s.notify_waker(h) } -> std::same_as<std::error_code>;
  { s.remove_waker(h, data) } -> std::same_as<void>;
};

// Poll::create()'s choice, best first: the first one available wins.
#if EVQ_WINDOWS
inline constexpr Backend preferred_backends[] = {Backend::iocp};
#elif defined(__linux__)
inline constexpr Backend preferred_backends[] = {Backend::epoll, Backend::poll};
#else
inline constexpr Backend preferred_backends[] = {Backend::kqueue, Backend::poll};
#endif

}  // namespace evq::detail

// Which backends this build has. CMake defines EVQ_HAVE_* per OS.
#if EVQ_HAVE_EPOLL
#include "sys/epoll/epoll_selector.hpp"
#endif
#if EVQ_HAVE_POLL
#include "sys/poll/poll_selector.hpp"
#endif
#if EVQ_HAVE_KQUEUE
#include "sys/kqueue/kqueue_selector.hpp"
#endif
#if EVQ_HAVE_URING
#include "sys/uring/uring_selector.hpp"
#endif
#if EVQ_HAVE_IOCP
#include "sys/iocp/iocp_selector.hpp"
#endif
