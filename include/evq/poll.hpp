// evq/poll.hpp: the readiness API: Poll, Registry, Waker, timers.
//
// Portability, in short (the README has the table):
//  - Edge, level and oneshot work on every backend. epoll, kqueue and io_uring
//    have them natively; poll(2) and IOCP emulate edge with evq's own sockets
//    (which re-arm when an operation returns would-block) and refuse edge for
//    a raw SourceFd/SourceSocket with errc::trigger_unsupported.
//  - Edge means: after an event, read/write until would-block before waiting
//    for the next one.
//  - Spurious events can happen on every backend; treat an event as a hint.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

#include "evq/event.hpp"
#include "evq/result.hpp"
#include "evq/source.hpp"

namespace evq {

enum class Backend { epoll, kqueue, iocp, io_uring, poll };

// "epoll", "kqueue", "iocp", "io_uring", "poll".
std::string_view to_string(Backend) noexcept;
// The inverse of to_string; nullopt for an unknown name.
std::optional<Backend> backend_from_string(std::string_view) noexcept;
// Whether this build and this machine can run a backend.
bool backend_available(Backend) noexcept;

namespace detail {
class Core;
}  // namespace detail

// An opaque, copyable handle of one armed timer.
class TimerId {
 public:
  constexpr TimerId() noexcept = default;
  friend constexpr bool operator==(TimerId, TimerId) noexcept = default;

 private:
  friend class detail::Core;
  constexpr TimerId(std::uint32_t slot, std::uint32_t generation) noexcept
      : slot_(slot), generation_(generation) {}
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;  // 0 never names a timer
};

// Adds, changes and removes registrations and timers. Safe to use from any
// thread, also while another thread is inside Poll::poll. A poll() that begins
// after remove() (or cancel_timer()) returned never delivers an event of that
// registration (or timer), even when the descriptor number is reused at once.
class Registry {
 public:
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  std::error_code add(Source& source, Token token, Interest interest,
                      Trigger trigger = Trigger::edge);
  std::error_code modify(Source& source, Token token, Interest interest,
                         Trigger trigger = Trigger::edge);
  std::error_code remove(Source& source);

  // Timers live in the queue: an expiry is an Event with this token and
  // is_timer() true, delivered once steady_clock::now() >= deadline, never
  // before. A period > 0 repeats at deadline + n * period without drift;
  // periods missed while nobody polled are folded into one event whose
  // timer_count() says how many expiries it stands for.
  Result<TimerId> add_timer(Token token, std::chrono::steady_clock::time_point deadline,
                            std::chrono::nanoseconds period = {});
  // errc::timer_not_armed once the timer fired (one-shot) or was cancelled.
  std::error_code cancel_timer(TimerId id);
  // Moves an armed timer to a new deadline, keeping its id, token and period
  // (a repeating one then fires at deadline + n * period). What a server does
  // with an idle timeout on every request, at about half the cost of
  // cancel_timer + add_timer (libev's ev_timer_again). An expiry already
  // delivered stays delivered; one not yet delivered is withdrawn like with
  // cancel_timer. Errors as cancel_timer's.
  std::error_code reset_timer(TimerId id, std::chrono::steady_clock::time_point deadline);

 private:
  friend class Poll;
  friend class Waker;
  Registry() noexcept = default;
  detail::Core* core_ = nullptr;
};

// Owns the OS queue. Move-only. Registry references stay valid across moves
// of the Poll only if you take them again with registry().
class Poll {
 public:
  // The platform's best backend, or the one named by the environment variable
  // EVQ_BACKEND (epoll|poll|kqueue|iocp|io_uring).
  static Result<Poll> create();
  // errc::backend_unavailable where that backend is not compiled in or the
  // kernel refuses it.
  static Result<Poll> create(Backend backend);

  Poll(Poll&& other) noexcept;
  Poll& operator=(Poll&& other) noexcept;
  ~Poll();

  Backend backend() const noexcept;
  Registry& registry() noexcept { return registry_; }

  // Waits until at least one event, the timeout, or a Waker; fills `events`
  // (cleared first). nullopt waits forever; zero does not wait. A timeout is
  // never cut short: sub-millisecond waits are rounded up where the OS counts
  // milliseconds, and EINTR is retried with the remaining time. Returns an
  // empty error_code also when the timeout passed with no event.
  std::error_code poll(Events& events, std::optional<std::chrono::nanoseconds> timeout);

 private:
  Poll() noexcept = default;
  Registry registry_;
};

// Wakes a Poll from any thread. Wakes coalesce: many wake() calls before the
// next poll() give one event (and cost one system call).
class Waker {
 public:
  static Result<Waker> create(Registry& registry, Token token);

  Waker(Waker&& other) noexcept;
  Waker& operator=(Waker&& other) noexcept;
  ~Waker();

  std::error_code wake() noexcept;

 private:
  Waker() noexcept = default;
  detail::Core* core_ = nullptr;
  std::uint32_t slot_ = 0;
};

}  // namespace evq
