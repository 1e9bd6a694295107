// src/core/timer_queue.hpp: the user-space timer structure behind Registry::add_timer.
//
// A hierarchical timing wheel: O(1) add and cancel (O(log k) for a timer due
// within the current tick, among the k such timers), amortized O(1) per
// timer to bring it due. Measured at a million timers against the 4-ary heap
// kept as the alternative (timer_heap.hpp), it cancels 1.4x faster (37 ns),
// re-arms an idle timeout 1.35x faster (139 ns), arms random deadlines 1.6x
// faster (6 ns) and fires timers armed in deadline order 2.4x faster (22 ns);
// it fires a million timers in random deadline order 1.1-1.5x slower (each
// one moves through bucket lists, a cache miss a step). Figures and command:
// bench/timer_queue_bench.cpp.
//
// Exact despite the buckets: the wheel sorts timers by tick (2^20 ns, about
// 1 ms) only. A timer whose tick has been reached moves into a small heap
// ordered by (deadline, sequence), and only that heap fires timers, so
// nothing fires early and equal deadlines fire in insertion order.
//
// Not thread-safe: the core calls it under its own mutex.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <system_error>
#include <vector>

#include "evq/event.hpp"
#include "evq/result.hpp"

namespace evq::detail {

// Names one armed timer. An issued generation is odd, so never 0; a stale
// handle (its timer fired or was cancelled, its slot maybe reused) no longer
// matches its slot's generation.
struct TimerHandle {
  std::uint32_t slot;
  std::uint32_t generation;
};

class TimerQueue {
 public:
  TimerQueue() noexcept { heads_.fill(kNone); }
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Deadline and period in nanoseconds of steady_clock's epoch; period 0 is a
  // one-shot, a negative period is errc::invalid_argument. Fails with
  // std::errc::not_enough_memory rather than throwing.
  Result<TimerHandle> add(Token token, std::int64_t deadline_ns, std::int64_t period_ns);

  // errc::timer_not_armed once the timer fired (one-shot) or was cancelled;
  // errc::invalid_timer for a handle this queue never issued. Telling the two
  // apart relies on generations not wrapping, i.e. on fewer than 2^31 timers
  // reusing one slot while a stale handle is kept.
  std::error_code cancel(TimerHandle h);
  // Moves an armed timer to `deadline_ns`, keeping its handle, token and
  // period; it queues behind timers already due at the same time. Errors as
  // cancel().
  std::error_code reset(TimerHandle h, std::int64_t deadline_ns);

  // When to call expire() next: INT64_MAX when empty, else never later than
  // the earliest deadline. It is that deadline exactly once the timer's tick
  // has been reached (any timer due within about a millisecond of the last
  // expire()); before that it is the start of the wheel bucket holding it,
  // and an expire() at that time moves the timer a level closer (at most 8
  // such early calls, each firing nothing). An exact answer would mean
  // walking a bucket, up to every timer, whenever the earliest is cancelled.
  // At or before the last expire()'s now_ns while a cascade is unfinished:
  // call expire() again.
  std::int64_t next_deadline() const noexcept;

  // Pops every timer due at now_ns (deadline <= now_ns), earliest first and
  // FIFO among equal deadlines, at most `capacity` of them, writing
  // Event(token, Event::timer_flag, count) for each. count is the number of
  // expiries the event stands for: a repeating timer that missed periods
  // reports them at once and moves to the first deadline + k * period after
  // now_ns. Returns how many events were written; timers beyond capacity stay
  // due for the next call. Never allocates.
  //
  // Bounded work: a call moves at most kCascadeBudget timers between wheel
  // levels (a bucket can hold every timer, and moving a million takes tens
  // of milliseconds). If a cascade is left unfinished the call returns early,
  // possibly with 0 events although timers are due, and next_deadline()
  // says to call again at once. So: keep calling while next_deadline() <=
  // now, not while expire() fills `out`.
  std::size_t expire(std::int64_t now_ns, Event* out, std::size_t capacity);

  std::size_t size() const noexcept { return size_; }

 private:
  static constexpr unsigned kTickShift = 20;
  static constexpr unsigned kLevelBits = 6;
  static constexpr unsigned kBuckets = 1u << kLevelBits;  // per level: one bitmap word
  static constexpr unsigned kLevels = (64 - kTickShift + kLevelBits - 1) / kLevelBits;
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  static constexpr std::uint16_t kInReady = 0xffff;
  static constexpr std::size_t kMaxTimers = kNone - 1;
  // Moving a timer costs a cache miss or two at a million timers (~100 ns
  // here), so this keeps the moving to ~0.1-0.2 ms a call, about what firing
  // 1024 events costs. What remains costs the core one more pass of its
  // loop, with a zero-timeout wait for I/O in between.
  static constexpr std::size_t kCascadeBudget = 1024;

  struct Slot {
    std::int64_t deadline;
    std::uint64_t seq;  // FIFO among equal deadlines; 64 bits never wrap
    Token token;
    std::int64_t period;
    // In a bucket: its neighbours in the bucket's list. In the ready heap:
    // prev is the position. Free: next is the next free slot.
    std::uint32_t prev;
    std::uint32_t next;
    std::uint32_t generation;  // odd while armed, even while free
    std::uint16_t bucket;      // level * kBuckets + digit, or kInReady
  };

  struct ReadyEntry {
    std::int64_t deadline;
    std::uint64_t seq;
    std::uint32_t slot;
  };

  // Flipping the sign bit maps int64 order onto uint64 order, so negative
  // deadlines (steady_clock's epoch is unspecified) sort correctly.
  static std::uint64_t tick_of(std::int64_t deadline) noexcept {
    return (static_cast<std::uint64_t>(deadline) ^ (std::uint64_t{1} << 63)) >> kTickShift;
  }
  static std::int64_t time_of(std::uint64_t tick) noexcept {
    return static_cast<std::int64_t>((tick << kTickShift) ^ (std::uint64_t{1} << 63));
  }
  static bool earlier(const ReadyEntry& a, const ReadyEntry& b) noexcept {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }

  void file(std::uint32_t slot) noexcept;
  void unlink(std::uint32_t slot) noexcept;
  std::error_code check(TimerHandle h) const noexcept;
  void take_out(std::uint32_t slot) noexcept;
  bool earliest_bucket(unsigned& level, unsigned& digit) const noexcept;
  std::uint64_t bucket_start(unsigned level, unsigned digit) const noexcept;
  bool cascade(unsigned bucket, std::size_t& budget) noexcept;
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
  // Capacity kept >= size_, so the pushes that cascades and re-armed
  // repeating timers make inside expire() never allocate.
  std::vector<ReadyEntry> ready_;
  std::array<std::uint32_t, kLevels * kBuckets> heads_;  // first slot of each bucket's list
  std::array<std::uint64_t, kLevels> occupied_{};        // bit d: bucket d of that level non-empty
  std::uint64_t cur_tick_ = 0;  // timers of ticks <= this are in ready_, later ones in buckets
  std::uint64_t next_seq_ = 0;
  std::uint32_t free_head_ = kNone;
  // A bucket whose cascade ran out of budget, or kNone. Its timers may be due
  // before ready ones (both can hold cur_tick_'s), so nothing fires until it
  // is finished.
  std::uint32_t cascading_ = kNone;
  std::size_t cascade_budget_ = kCascadeBudget;  // a test lowers it
  std::size_t size_ = 0;

  friend struct TimerQueueTestPeer;
};

}  // namespace evq::detail
