// src/core/timer_queue.hpp: the user-space timer structure behind Registry::add_timer.
//
// A 4-ary min-heap ordered by (deadline, insertion sequence), measured faster
// than the hierarchical timing wheel in timer_wheel.hpp on every operation of
// bench/timer_queue_bench.cpp (figures in that file's header comment).
//
// Not thread-safe: the core calls it under its own mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
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
  TimerQueue() noexcept = default;
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

  // The earliest deadline, INT64_MAX when empty (a timer armed at INT64_MAX
  // looks the same: it can never come due, so waiting forever is right).
  std::int64_t next_deadline() const noexcept;

  // Pops every timer due at now_ns (deadline <= now_ns), earliest first and
  // FIFO among equal deadlines, at most `capacity` of them, writing
  // Event(token, Event::timer_flag, count) for each. count is the number of
  // expiries the event stands for: a repeating timer that missed periods
  // reports them at once and moves to the first deadline + k * period after
  // now_ns. Returns how many events were written; timers beyond capacity stay
  // due for the next call.
  std::size_t expire(std::int64_t now_ns, Event* out, std::size_t capacity);

  std::size_t size() const noexcept;

 private:
  friend struct TimerQueueTestPeer;

  // The deadline sits next to the slot index in the heap so that sifting
  // compares without touching slots_; 16 bytes, four siblings per cache line.
  struct HeapEntry {
    std::int64_t deadline;
    std::uint32_t seq;  // FIFO tie-break among equal deadlines
    std::uint32_t slot;
  };

  struct Slot {
    Token token;
    std::int64_t period;
    // Armed (odd generation): this timer's position in heap_.
    // Free (even generation): the next free slot, or kNoSlot.
    std::uint32_t link;
    std::uint32_t generation;  // odd while armed, even while free
  };

  // std::vector's default allocator aligns to 16 bytes only; sibling groups
  // must start on a cache line for the layout trick below to pay off.
  template <class T>
  struct CacheAlignedAllocator {
    using value_type = T;
    CacheAlignedAllocator() noexcept = default;
    template <class U>
    CacheAlignedAllocator(const CacheAlignedAllocator<U>&) noexcept {}  // NOLINT
    T* allocate(std::size_t n) {
      return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
    }
    void deallocate(T* p, std::size_t n) noexcept {
      ::operator delete(p, n * sizeof(T), std::align_val_t{64});
    }
    friend bool operator==(CacheAlignedAllocator, CacheAlignedAllocator) noexcept { return true; }
  };

  // The root lives at index 3, behind three unused entries, so the four
  // children of any node start at a multiple of 4 entries (64 bytes): a sift
  // down reads one cache line per level instead of two.
  static constexpr std::uint32_t kRoot = 3;
  static constexpr std::uint32_t kNoSlot = std::numeric_limits<std::uint32_t>::max();
  // heap positions are kRoot + index and must stay below kNoSlot.
  static constexpr std::size_t kMaxTimers = kNoSlot - kRoot - 1;

  static constexpr std::size_t first_child(std::size_t pos) noexcept { return 4 * (pos - 2); }
  static constexpr std::size_t parent(std::size_t pos) noexcept { return pos / 4 + 2; }

  static bool earlier(const HeapEntry& a, const HeapEntry& b) noexcept {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }

  void place(std::size_t pos, const HeapEntry& e) noexcept {
    heap_[pos] = e;
    slots_[e.slot].link = static_cast<std::uint32_t>(pos);
  }
  void sift_up(std::size_t pos, HeapEntry e) noexcept;
  void sift_down(std::size_t pos, HeapEntry e) noexcept;
  void remove_at(std::size_t pos) noexcept;
  void release(std::uint32_t slot) noexcept;
  std::uint32_t take_seq() noexcept;
  void renumber() noexcept;

  std::vector<HeapEntry, CacheAlignedAllocator<HeapEntry>> heap_;  // empty, or kRoot + size()
  std::vector<Slot> slots_;
  std::uint32_t free_head_ = kNoSlot;
  std::uint32_t next_seq_ = 0;
};

}  // namespace evq::detail
