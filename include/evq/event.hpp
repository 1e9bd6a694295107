// evq/event.hpp: the vocabulary of readiness: Token, Interest, Trigger, Event, Events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace evq {

// Chosen by the user at registration, reported back with each event.
enum class Token : std::uint64_t {};

// What a registration waits for. Never empty: the only ways to make one are the
// three constants and operator|.
class Interest {
 public:
  static const Interest readable;
  static const Interest writable;
  static const Interest priority;  // out-of-band data / POLLPRI where the OS has it

  friend constexpr Interest operator|(Interest a, Interest b) noexcept {
    return Interest(static_cast<std::uint8_t>(a.bits_ | b.bits_));
  }
  constexpr bool is_readable() const noexcept { return (bits_ & 1u) != 0; }
  constexpr bool is_writable() const noexcept { return (bits_ & 2u) != 0; }
  constexpr bool is_priority() const noexcept { return (bits_ & 4u) != 0; }
  constexpr std::uint8_t bits() const noexcept { return bits_; }
  friend constexpr bool operator==(Interest, Interest) noexcept = default;

 private:
  constexpr explicit Interest(std::uint8_t bits) noexcept : bits_(bits) {}
  std::uint8_t bits_;
};

inline constexpr Interest Interest::readable{1};
inline constexpr Interest Interest::writable{2};
inline constexpr Interest Interest::priority{4};

// Edge: an event when readiness rises; read/write until would-block before
// expecting another. Level: an event on every poll while ready. Oneshot: one
// event, then the registration is disarmed until Registry::modify.
enum class Trigger : std::uint8_t { edge, level, oneshot };

// One readiness (or timer) event. Plain data, 16 bytes.
class Event {
 public:
  // Flag bits. They equal Linux's EPOLL*/POLL* values so that the epoll and
  // poll(2) backends copy the kernel's mask instead of translating it; other
  // backends translate into them. Checked by static_assert in those backends.
  static constexpr std::uint32_t readable_flag = 0x001;
  static constexpr std::uint32_t priority_flag = 0x002;
  static constexpr std::uint32_t writable_flag = 0x004;
  static constexpr std::uint32_t error_flag = 0x008;
  static constexpr std::uint32_t hangup_flag = 0x010;         // both directions closed
  static constexpr std::uint32_t read_hangup_flag = 0x2000;   // peer shut down its write side
  static constexpr std::uint32_t write_hangup_flag = 0x10000;
  static constexpr std::uint32_t timer_flag = 0x20000;

  constexpr Event() noexcept = default;
  constexpr Event(Token token, std::uint32_t flags, std::uint32_t count = 0) noexcept
      : token_(token), flags_(flags), count_(count) {}

  constexpr Token token() const noexcept { return token_; }
  constexpr bool is_readable() const noexcept { return (flags_ & readable_flag) != 0; }
  constexpr bool is_writable() const noexcept { return (flags_ & writable_flag) != 0; }
  constexpr bool is_priority() const noexcept { return (flags_ & priority_flag) != 0; }
  constexpr bool is_error() const noexcept { return (flags_ & error_flag) != 0; }
  // Reading will return 0 (end of stream) once buffered data is consumed.
  constexpr bool is_read_closed() const noexcept {
    return (flags_ & (hangup_flag | read_hangup_flag)) != 0;
  }
  // Writing will fail (broken pipe / reset).
  constexpr bool is_write_closed() const noexcept {
    return (flags_ & (hangup_flag | write_hangup_flag)) != 0 ||
           (flags_ & (error_flag | writable_flag)) == (error_flag | writable_flag) ||
           flags_ == error_flag;
  }
  constexpr bool is_timer() const noexcept { return (flags_ & timer_flag) != 0; }
  // For a timer event: how many expiries this event stands for (>= 1; more than
  // one when a repeating timer missed periods). 0 for I/O events.
  constexpr std::uint32_t timer_count() const noexcept { return count_; }
  constexpr std::uint32_t flags() const noexcept { return flags_; }

 private:
  Token token_{};
  std::uint32_t flags_ = 0;
  std::uint32_t count_ = 0;
};

// A reusable buffer that Poll::poll fills. A capacity of 0 is allowed here and
// rejected by poll() with errc::zero_capacity.
class Events {
 public:
  explicit Events(std::size_t capacity)
      : events_(capacity ? std::make_unique<Event[]>(capacity) : nullptr), capacity_(capacity) {}

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  const Event* begin() const noexcept { return events_.get(); }
  const Event* end() const noexcept { return events_.get() + size_; }
  const Event& operator[](std::size_t i) const noexcept { return events_[i]; }
  void clear() noexcept { size_ = 0; }

  // For backends: raw storage and the count they filled.
  Event* data() noexcept { return events_.get(); }
  void set_size(std::size_t n) noexcept { size_ = n; }

 private:
  std::unique_ptr<Event[]> events_;
  std::size_t capacity_;
  std::size_t size_ = 0;
};

}  // namespace evq
