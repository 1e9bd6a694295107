// The portable core behind Poll, Registry and Waker: registrations, timers,
// the wait loop, and dispatch to the one backend a Poll was created with.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <variant>
#include <vector>

#include "core/registration.hpp"
#include "core/timer_queue.hpp"
#include "evq/poll.hpp"
#include "sys/native_handle.hpp"
#include "sys/selector.hpp"

namespace evq::detail {

// One alternative per backend this build has (selector.hpp decides which).
// std::monostate closes the list and is never held (create() emplaces a backend).
using AnySelector = std::variant<
#if EVQ_HAVE_EPOLL
    EpollSelector,
#endif
#if EVQ_HAVE_POLL
    PollSelector,
#endif
#if EVQ_HAVE_KQUEUE
    KqueueSelector,
#endif
#if EVQ_HAVE_URING
    UringSelector,
#endif
#if EVQ_HAVE_IOCP
    IocpSelector,
#endif
    std::monostate>;

// Reference-counted: the Poll holds one reference, every linked Source and
// every Waker one more, so a socket that outlives its Poll can still leave it
// safely. The OS queue closes with the last reference.
class Core {
 public:
  static Result<Core*> create(Backend backend);
  static bool available(Backend backend) noexcept;

  void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept;
  // The Poll is gone: drop its reference; sockets still linked here may join
  // another Poll (add() detaches them from a closed core).
  void close() noexcept;
  Backend backend() const noexcept { return backend_; }

  std::error_code add(Source& source, Token token, Interest interest, Trigger trigger);
  std::error_code modify(Source& source, Token token, Interest interest, Trigger trigger);
  std::error_code remove(Source& source);
  // From ~Source / Source::close: leave quietly and drop the link's reference.
  void detach(Source& source) noexcept;
  void rearm(std::uint32_t slot, std::uint16_t generation, NativeHandle h, Interest interest) noexcept;

  Result<TimerId> add_timer(Token token, std::chrono::steady_clock::time_point deadline,
                            std::chrono::nanoseconds period);
  std::error_code cancel_timer(TimerId id);
  std::error_code reset_timer(TimerId id, std::chrono::steady_clock::time_point deadline);

  Result<std::uint32_t> add_waker(Token token);
  std::error_code wake(std::uint32_t slot) noexcept;
  void remove_waker(std::uint32_t slot) noexcept;

  std::error_code poll(Events& events, std::optional<std::chrono::nanoseconds> timeout);

 private:
  template <class S>
  Core(Backend backend, S&& selector) : backend_(backend), selector_(std::forward<S>(selector)) {}
  ~Core() = default;

  template <class F>
  decltype(auto) with_selector(F&& f) {
    return std::visit(
        [&](auto& s) -> decltype(auto) {
          if constexpr (std::is_same_v<std::decay_t<decltype(s)>, std::monostate>) {
            __builtin_unreachable();  // never held: see AnySelector
            return f(std::get<0>(selector_));
          } else {
            return f(s);
          }
        },
        selector_);
  }

  static bool valid_handle(NativeHandle h) noexcept { return is_valid_handle(h); }
  std::uint32_t slot_of(NativeHandle h) const noexcept;  // under mu_; 0 = none
  void bind_handle(NativeHandle h, std::uint32_t slot);   // under mu_
  void remove_locked(std::uint32_t slot, NativeHandle h);
  std::size_t expire_timers(std::int64_t now, Event* out, std::size_t capacity);
  void timer_armed_locked(std::int64_t at) noexcept;
  void wake_if_waiting_past(std::int64_t at) noexcept;
  bool native_edge() noexcept;

  const Backend backend_;
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<bool> closed_{false};
  std::mutex mu_;  // registry changes; never held across a wait
  RegistrationTable table_;
  std::vector<std::uint32_t> slot_by_handle_;  // guarded by mu_
  TimerQueue timers_;                          // guarded by mu_
  // Earliest timer deadline (steady ns), INT64_MAX when none: lets poll()
  // skip the clock and the lock when no timer is armed.
  std::atomic<std::int64_t> next_timer_{INT64_MAX};
  // Until when the poller is blocked (steady ns; INT64_MAX = forever;
  // INT64_MIN = not waiting): add_timer wakes it when a new timer is earlier.
  std::atomic<std::int64_t> waiting_until_{INT64_MIN};
  AnySelector selector_;
};

}  // namespace evq::detail
