// src/core/timer_heap.hpp: a 4-ary timer heap with TimerQueue's interface.
//
// The measured alternative to the timing wheel in timer_queue.hpp, kept so
// bench/timer_queue_bench.cpp can compare the two and the tests can hold both
// to one contract. Header-only because only the test and the benchmark build
// it; the library does not. At a million timers it lost to the wheel on
// cancelling, re-arming, arming random deadlines and firing in deadline
// order, and won on firing in random order and on arming deadlines that only
// increase. Its next_deadline() is always exact and every call does
// O(log n) work (bar one renumbering pass per 2^32 insertions), where a wheel
// cascade moves a whole bucket at once.
//
// Ordered by (deadline, insertion sequence); like libev's heap it caches the
// deadline next to the slot index, so sifting never reads the slots. Not
// thread-safe.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <system_error>
#include <vector>

#include "core/timer_queue.hpp"  // TimerHandle
#include "evq/event.hpp"
#include "evq/result.hpp"

namespace evq::detail {

class TimerHeap {
 public:
  TimerHeap() noexcept = default;
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;

  // Each one as documented on TimerQueue, except that next_deadline() is
  // always the earliest deadline exactly.
  Result<TimerHandle> add(Token token, std::int64_t deadline_ns, std::int64_t period_ns);
  std::error_code cancel(TimerHandle h);
  std::int64_t next_deadline() const noexcept;
  std::size_t expire(std::int64_t now_ns, Event* out, std::size_t capacity);
  std::size_t size() const noexcept;

 private:
  friend struct TimerHeapTestPeer;

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
    std::uint32_t next_free;   // while free: the next free slot, or kNoSlot
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
    // Unsized: clang enables sized deallocation only with -fsized-deallocation.
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{64}); }
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
    pos_[e.slot] = static_cast<std::uint32_t>(pos);
  }
  void sift_up(std::size_t pos, HeapEntry e) noexcept;
  void sift_down(std::size_t pos, HeapEntry e) noexcept;
  void remove_at(std::size_t pos) noexcept;
  bool grow_slots() noexcept;
  void release(std::uint32_t slot) noexcept;
  std::uint32_t take_seq() noexcept;
  void renumber() noexcept;

  std::vector<HeapEntry, CacheAlignedAllocator<HeapEntry>> heap_;  // empty, or kRoot + size()
  std::vector<Slot> slots_;
  // Each timer's index in heap_, apart from slots_: every step of a sift
  // writes one, and 4 bytes a timer keep those writes within far fewer cache
  // lines and pages than 24-byte slots would.
  std::vector<std::uint32_t> pos_;
  std::uint32_t free_head_ = kNoSlot;
  std::uint32_t next_seq_ = 0;
};

inline Result<TimerHandle> TimerHeap::add(Token token, std::int64_t deadline_ns,
                                    std::int64_t period_ns) {
  if (period_ns < 0) return errc::invalid_argument;
  if (size() >= kMaxTimers) return std::make_error_code(std::errc::not_enough_memory);

  // A new slot joins the free list and a failure after it leaves that list
  // longer, nothing worse: every allocation happens before any state that
  // matters changes.
  if (free_head_ == kNoSlot && !grow_slots()) return std::make_error_code(std::errc::not_enough_memory);
  // Taken before the placeholder push below, which renumbering must not see.
  const std::uint32_t seq = take_seq();
  try {
    if (heap_.empty()) heap_.resize(kRoot);
    heap_.emplace_back();
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }

  const std::uint32_t slot = free_head_;
  Slot& s = slots_[slot];
  free_head_ = s.next_free;
  s.token = token;
  s.period = period_ns;
  ++s.generation;
  sift_up(heap_.size() - 1, HeapEntry{deadline_ns, seq, slot});
  return TimerHandle{slot, s.generation};
}

inline std::error_code TimerHeap::cancel(TimerHandle h) {
  if (h.slot >= slots_.size() || (h.generation & 1u) == 0) return errc::invalid_timer;
  Slot& s = slots_[h.slot];
  if (h.generation != s.generation) {
    // Generations only grow, so an older one was issued and has since ended.
    return h.generation < s.generation ? errc::timer_not_armed : errc::invalid_timer;
  }
  remove_at(pos_[h.slot]);
  release(h.slot);
  return {};
}

inline std::int64_t TimerHeap::next_deadline() const noexcept {
  return heap_.size() > kRoot ? heap_[kRoot].deadline : std::numeric_limits<std::int64_t>::max();
}

inline std::size_t TimerHeap::size() const noexcept {
  return heap_.size() > kRoot ? heap_.size() - kRoot : 0;
}

inline std::size_t TimerHeap::expire(std::int64_t now_ns, Event* out, std::size_t capacity) {
  std::size_t n = 0;
  while (n < capacity && heap_.size() > kRoot && heap_[kRoot].deadline <= now_ns) {
    const std::uint32_t slot = heap_[kRoot].slot;
    const Slot& s = slots_[slot];
    const Token token = s.token;
    std::uint64_t expiries = 1;

    if (s.period == 0) {
      remove_at(kRoot);
      release(slot);
    } else {
      // Unsigned arithmetic: now - deadline and the advance can exceed
      // INT64_MAX for deadlines far below zero, and steady_clock's epoch is
      // unspecified, so those are legal.
      const auto period = static_cast<std::uint64_t>(s.period);
      const std::uint64_t deadline = static_cast<std::uint64_t>(heap_[kRoot].deadline);
      const std::uint64_t missed = (static_cast<std::uint64_t>(now_ns) - deadline) / period;
      const std::uint64_t headroom =
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - deadline;
      // missed + 1 can overflow (period 1 over the whole range), so count
      // with the clamp applied first.
      expiries = std::min<std::uint64_t>(missed, std::numeric_limits<std::uint32_t>::max() - 1) + 1;
      if (missed >= headroom / period) {
        // The next expiry, deadline + (missed + 1) * period, is past the last
        // representable instant, which no clock reaches: this was the last.
        remove_at(kRoot);
        release(slot);
      } else {
        // take_seq() may renumber (reorder) the heap, but the root keeps the
        // same timer because renumbering preserves order.
        const std::uint32_t seq = take_seq();
        HeapEntry next = heap_[kRoot];
        next.deadline = static_cast<std::int64_t>(deadline + (missed + 1) * period);
        next.seq = seq;
        // Reusing the root's place costs one sift down instead of a pop and
        // a push (libev does the same).
        sift_down(kRoot, next);
      }
    }

    out[n++] = Event(token, Event::timer_flag, static_cast<std::uint32_t>(expiries));
  }
  return n;
}

inline void TimerHeap::sift_up(std::size_t pos, HeapEntry e) noexcept {
  while (pos > kRoot) {
    const std::size_t up = parent(pos);
    if (!earlier(e, heap_[up])) break;
    place(pos, heap_[up]);
    pos = up;
  }
  place(pos, e);
}

inline void TimerHeap::sift_down(std::size_t pos, HeapEntry e) noexcept {
  const std::size_t end = heap_.size();
  for (;;) {
    const std::size_t first = first_child(pos);
    if (first >= end) break;
    std::size_t best = first;
    if (first + 4 <= end) {
      // All four children exist (nearly always): a fixed tournament the
      // compiler unrolls, with no bound checks.
      const std::size_t a = earlier(heap_[first + 1], heap_[first]) ? first + 1 : first;
      const std::size_t b = earlier(heap_[first + 3], heap_[first + 2]) ? first + 3 : first + 2;
      best = earlier(heap_[b], heap_[a]) ? b : a;
    } else {
      for (std::size_t c = first + 1; c < end; ++c) {
        if (earlier(heap_[c], heap_[best])) best = c;
      }
    }
    if (!earlier(heap_[best], e)) break;
    place(pos, heap_[best]);
    pos = best;
  }
  place(pos, e);
}

inline void TimerHeap::remove_at(std::size_t pos) noexcept {
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  if (pos == heap_.size()) return;
  if (pos > kRoot && earlier(last, heap_[parent(pos)])) {
    sift_up(pos, last);
  } else {
    sift_down(pos, last);
  }
}

inline bool TimerHeap::grow_slots() noexcept {
  try {
    slots_.push_back(Slot{Token{}, 0, kNoSlot, 0});
  } catch (const std::bad_alloc&) {
    return false;
  }
  try {
    pos_.push_back(0);
  } catch (const std::bad_alloc&) {
    slots_.pop_back();
    return false;
  }
  free_head_ = static_cast<std::uint32_t>(slots_.size() - 1);
  return true;
}

inline void TimerHeap::release(std::uint32_t slot) noexcept {
  Slot& s = slots_[slot];
  ++s.generation;
  s.next_free = free_head_;
  free_head_ = slot;
}

inline std::uint32_t TimerHeap::take_seq() noexcept {
  if (next_seq_ == std::numeric_limits<std::uint32_t>::max()) renumber();
  return next_seq_++;
}

// A 32-bit sequence keeps HeapEntry at 16 bytes. When it runs out (once per
// 4 billion insertions), sort the heap, which leaves a valid heap since a
// sorted array is one, and number the timers again from 0 in that order.
inline void TimerHeap::renumber() noexcept {
  if (heap_.size() <= kRoot) {
    next_seq_ = 0;
    return;
  }
  std::sort(heap_.begin() + kRoot, heap_.end(), earlier);
  std::uint32_t seq = 0;
  for (std::size_t pos = kRoot; pos < heap_.size(); ++pos) {
    heap_[pos].seq = seq++;
    pos_[heap_[pos].slot] = static_cast<std::uint32_t>(pos);
  }
  next_seq_ = seq;
}

}  // namespace evq::detail
