// src/core/timer_queue.cpp: the 4-ary timer heap.
#include "core/timer_queue.hpp"

#include <algorithm>

namespace evq::detail {

namespace {

std::error_code out_of_memory() noexcept {
  return std::make_error_code(std::errc::not_enough_memory);
}

}  // namespace

Result<TimerHandle> TimerQueue::add(Token token, std::int64_t deadline_ns,
                                    std::int64_t period_ns) {
  if (period_ns < 0) return errc::invalid_argument;
  if (size() >= kMaxTimers) return out_of_memory();

  // Taken first: renumbering must not see the placeholder entry pushed below.
  const std::uint32_t seq = take_seq();
  // Every allocation happens before any state changes, so a failure leaves
  // the queue as it was.
  try {
    if (heap_.empty()) heap_.resize(kRoot);
    heap_.emplace_back();
    if (free_head_ == kNoSlot) {
      try {
        slots_.push_back(Slot{Token{}, 0, kNoSlot, 0});
      } catch (...) {
        heap_.pop_back();
        throw;
      }
      free_head_ = static_cast<std::uint32_t>(slots_.size() - 1);
    }
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  }

  const std::uint32_t slot = free_head_;
  Slot& s = slots_[slot];
  free_head_ = s.link;
  s.token = token;
  s.period = period_ns;
  ++s.generation;
  sift_up(heap_.size() - 1, HeapEntry{deadline_ns, seq, slot});
  return TimerHandle{slot, s.generation};
}

std::error_code TimerQueue::cancel(TimerHandle h) {
  if (h.slot >= slots_.size() || (h.generation & 1u) == 0) return errc::invalid_timer;
  Slot& s = slots_[h.slot];
  if (h.generation != s.generation) {
    // Generations only grow, so an older one was issued and has since ended.
    return h.generation < s.generation ? errc::timer_not_armed : errc::invalid_timer;
  }
  remove_at(s.link);
  release(h.slot);
  return {};
}

std::int64_t TimerQueue::next_deadline() const noexcept {
  return heap_.size() > kRoot ? heap_[kRoot].deadline : std::numeric_limits<std::int64_t>::max();
}

std::size_t TimerQueue::size() const noexcept {
  return heap_.size() > kRoot ? heap_.size() - kRoot : 0;
}

std::size_t TimerQueue::expire(std::int64_t now_ns, Event* out, std::size_t capacity) {
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

void TimerQueue::sift_up(std::size_t pos, HeapEntry e) noexcept {
  while (pos > kRoot) {
    const std::size_t up = parent(pos);
    if (!earlier(e, heap_[up])) break;
    place(pos, heap_[up]);
    pos = up;
  }
  place(pos, e);
}

void TimerQueue::sift_down(std::size_t pos, HeapEntry e) noexcept {
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

void TimerQueue::remove_at(std::size_t pos) noexcept {
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  if (pos == heap_.size()) return;
  if (pos > kRoot && earlier(last, heap_[parent(pos)])) {
    sift_up(pos, last);
  } else {
    sift_down(pos, last);
  }
}

void TimerQueue::release(std::uint32_t slot) noexcept {
  Slot& s = slots_[slot];
  ++s.generation;
  s.link = free_head_;
  free_head_ = slot;
}

std::uint32_t TimerQueue::take_seq() noexcept {
  if (next_seq_ == std::numeric_limits<std::uint32_t>::max()) renumber();
  return next_seq_++;
}

// A 32-bit sequence keeps HeapEntry at 16 bytes. When it runs out (once per
// 4 billion insertions), sort the heap, which leaves a valid heap since a
// sorted array is one, and number the timers again from 0 in that order.
void TimerQueue::renumber() noexcept {
  if (heap_.size() <= kRoot) {
    next_seq_ = 0;
    return;
  }
  std::sort(heap_.begin() + kRoot, heap_.end(), earlier);
  std::uint32_t seq = 0;
  for (std::size_t pos = kRoot; pos < heap_.size(); ++pos) {
    heap_[pos].seq = seq++;
    slots_[heap_[pos].slot].link = static_cast<std::uint32_t>(pos);
  }
  next_seq_ = seq;
}

}  // namespace evq::detail
