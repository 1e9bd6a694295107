// src/core/timer_wheel.hpp: a hierarchical timing wheel with TimerQueue's interface.
//
// Kept as the measured alternative to the heap (bench/timer_queue_bench.cpp
// runs both side by side; the tests run against both). Same contract as
// TimerQueue, word for word: exact nanosecond deadlines, FIFO among equal
// deadlines, never early. Not thread-safe.
//
// How it stays exact: the wheel only sorts timers coarsely, by tick. A timer
// whose tick has been reached moves into a small heap ordered by (deadline,
// sequence), and only that heap fires timers. next_deadline() of a timer still
// in the wheel scans the earliest non-empty bucket once and caches the result.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <system_error>
#include <vector>

#include "core/timer_queue.hpp"  // TimerHandle
#include "evq/event.hpp"
#include "evq/result.hpp"

namespace evq::detail {

class TimerWheel {
 public:
  TimerWheel() noexcept;
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  Result<TimerHandle> add(Token token, std::int64_t deadline_ns, std::int64_t period_ns);
  std::error_code cancel(TimerHandle h);
  std::int64_t next_deadline() const noexcept;
  std::size_t expire(std::int64_t now_ns, Event* out, std::size_t capacity);
  std::size_t size() const noexcept { return size_; }

 private:
  // A tick of 2^16 ns (65.5 us) keeps the exact-order heap down to a handful
  // of timers even at a million timers over ten seconds; 64 buckets a level,
  // 8 levels cover the 48 bits of tick numbers.
  static constexpr unsigned kTickShift = 16;
  static constexpr unsigned kLevelBits = 6;
  static constexpr unsigned kBuckets = 1u << kLevelBits;
  static constexpr unsigned kLevels = (64 - kTickShift + kLevelBits - 1) / kLevelBits;
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  static constexpr std::uint16_t kInReady = 0xffff;
  static constexpr std::size_t kMaxTimers = kNone - 1;

  struct Slot {
    std::int64_t deadline;
    std::uint64_t seq;  // 64 bits: it never wraps, so no renumbering pass
    Token token;
    std::int64_t period;
    // In a bucket: neighbours in its list. In the ready heap: prev is the
    // position. Free: next is the next free slot.
    std::uint32_t prev;
    std::uint32_t next;
    std::uint32_t generation;  // odd while armed, even while free
    std::uint16_t bucket;      // level * kBuckets + index, or kInReady
  };

  struct ReadyEntry {
    std::int64_t deadline;
    std::uint64_t seq;
    std::uint32_t slot;
  };

  static std::uint64_t tick_of(std::int64_t deadline) noexcept {
    // Flipping the sign bit maps int64 order onto uint64 order, so negative
    // deadlines (steady_clock's epoch is unspecified) sort correctly.
    return (static_cast<std::uint64_t>(deadline) ^ (std::uint64_t{1} << 63)) >> kTickShift;
  }
  static bool earlier(const ReadyEntry& a, const ReadyEntry& b) noexcept {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }

  void file(std::uint32_t slot) noexcept;
  void unlink(std::uint32_t slot) noexcept;
  bool earliest_bucket(unsigned& level, unsigned& index) const noexcept;
  std::uint64_t bucket_start(unsigned level, unsigned index) const noexcept;
  void cascade(unsigned level, unsigned index) noexcept;
  void release(std::uint32_t slot) noexcept;

  void ready_place(std::size_t pos, const ReadyEntry& e) noexcept {
    ready_[pos] = e;
    slots_[e.slot].prev = static_cast<std::uint32_t>(pos);
  }
  void ready_push(std::uint32_t slot) noexcept;
  void ready_remove(std::size_t pos) noexcept;
  void ready_sift_up(std::size_t pos, ReadyEntry e) noexcept;
  void ready_sift_down(std::size_t pos, ReadyEntry e) noexcept;

  std::vector<Slot> slots_;
  std::vector<ReadyEntry> ready_;  // capacity kept >= armed timers, so pushes never allocate
  std::array<std::uint32_t, kLevels * kBuckets> heads_;
  std::array<std::uint64_t, kLevels> occupied_{};  // bit i: bucket i of that level non-empty
  std::uint64_t cur_tick_ = 0;  // timers of ticks <= this are in ready_, later ones in buckets
  std::uint64_t next_seq_ = 0;
  std::uint32_t free_head_ = kNone;
  std::size_t size_ = 0;
  std::size_t in_wheel_ = 0;
  mutable std::int64_t wheel_min_ = 0;  // earliest deadline in the buckets, when valid
  mutable bool wheel_min_valid_ = false;
};

}  // namespace evq::detail
