// src/core/timer_queue.cpp: the hierarchical timing wheel.
//
// Placement: a timer of tick t > cur_tick_ goes to the level of the highest
// 6-bit digit where t and cur_tick_ differ, in the bucket named by t's digit
// there. So every timer of level L is earlier than every timer of level L+1,
// and within a level the buckets are in digit order: the earliest timers are
// in the lowest set bit of the lowest non-empty level. Moving cur_tick_ to
// the start of that bucket and filing its timers again sends each one level
// down, or into the ready heap, so a timer moves at most kLevels times.
#include "core/timer_queue.hpp"

#include <algorithm>
#include <bit>
#include <new>

namespace evq::detail {

namespace {

std::error_code out_of_memory() noexcept {
  return std::make_error_code(std::errc::not_enough_memory);
}

}  // namespace

Result<TimerHandle> TimerQueue::add(Token token, std::int64_t deadline_ns,
                                    std::int64_t period_ns) {
  if (period_ns < 0) return errc::invalid_argument;
  if (size_ >= kMaxTimers) return out_of_memory();
  // Both allocations happen before any state changes; a slot pushed before
  // the second one fails just waits on the free list.
  try {
    if (free_head_ == kNone) {
      slots_.push_back(Slot{0, 0, Token{}, 0, kNone, kNone, 0, 0});
      free_head_ = static_cast<std::uint32_t>(slots_.size() - 1);
    }
    if (ready_.capacity() < size_ + 1) ready_.reserve(std::max<std::size_t>(64, 2 * (size_ + 1)));
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  }

  const std::uint32_t slot = free_head_;
  Slot& s = slots_[slot];
  free_head_ = s.next;
  s.deadline = deadline_ns;
  s.seq = next_seq_++;
  s.token = token;
  s.period = period_ns;
  ++s.generation;
  ++size_;
  file(slot);
  return TimerHandle{slot, s.generation};
}

std::error_code TimerQueue::check(TimerHandle h) const noexcept {
  if (h.slot >= slots_.size() || (h.generation & 1u) == 0) return errc::invalid_timer;
  const Slot& s = slots_[h.slot];
  if (h.generation != s.generation) {
    // Generations only grow, so an older one was issued and has since ended.
    return h.generation < s.generation ? errc::timer_not_armed : errc::invalid_timer;
  }
  return {};
}

// Out of the ready heap or its bucket; the slot keeps its generation.
void TimerQueue::take_out(std::uint32_t slot) noexcept {
  if (slots_[slot].bucket == kInReady) {
    ready_remove(slots_[slot].prev);
  } else {
    unlink(slot);
  }
}

std::error_code TimerQueue::cancel(TimerHandle h) {
  if (auto ec = check(h)) return ec;
  take_out(h.slot);
  release(h.slot);
  --size_;
  return {};
}

std::error_code TimerQueue::reset(TimerHandle h, std::int64_t deadline_ns) {
  if (auto ec = check(h)) return ec;
  take_out(h.slot);
  Slot& s = slots_[h.slot];
  s.deadline = deadline_ns;
  s.seq = next_seq_++;
  file(h.slot);
  return {};
}

std::int64_t TimerQueue::next_deadline() const noexcept {
  if (cascading_ != kNone) {
    // cur_tick_ began at or before the now of the expire() that ran out of
    // budget, and the timers left to move are not earlier than it.
    const std::int64_t resume = time_of(cur_tick_);
    return ready_.empty() ? resume : std::min(resume, ready_.front().deadline);
  }
  // Ready timers have ticks <= cur_tick_ and wheel timers later ones, so the
  // ready heap's top, when there is one, is the earliest of all.
  if (!ready_.empty()) return ready_.front().deadline;
  unsigned level = 0;
  unsigned digit = 0;
  if (!earliest_bucket(level, digit)) return std::numeric_limits<std::int64_t>::max();
  return time_of(bucket_start(level, digit));
}

std::size_t TimerQueue::expire(std::int64_t now_ns, Event* out, std::size_t capacity) {
  const std::uint64_t now_tick = tick_of(now_ns);
  std::size_t budget = cascade_budget_;
  if (cascading_ != kNone && !cascade(cascading_, budget)) return 0;
  std::size_t n = 0;
  while (n < capacity) {
    if (ready_.empty() || ready_.front().deadline > now_ns) {
      // Nothing due in the ready heap. Either the wheel has nothing due
      // either, or its earliest bucket starts by now_tick: cascade it.
      if (cur_tick_ >= now_tick) break;
      unsigned level = 0;
      unsigned digit = 0;
      if (!earliest_bucket(level, digit) || bucket_start(level, digit) > now_tick) {
        // No timer in the wheel has a tick <= now_tick, so every placement
        // stays valid against now_tick; advancing lets timers added later
        // for this tick go straight to the ready heap.
        cur_tick_ = now_tick;
        break;
      }
      cur_tick_ = bucket_start(level, digit);
      if (!cascade(level * kBuckets + digit, budget)) break;
      continue;
    }

    const std::uint32_t slot = ready_.front().slot;
    ready_remove(0);
    Slot& s = slots_[slot];
    const Token token = s.token;
    std::uint64_t expiries = 1;
    if (s.period == 0) {
      release(slot);
      --size_;
    } else {
      // Unsigned arithmetic: now - deadline and the advance can exceed
      // INT64_MAX when deadlines lie below zero, which is legal.
      const auto period = static_cast<std::uint64_t>(s.period);
      const auto deadline = static_cast<std::uint64_t>(s.deadline);
      const std::uint64_t missed = (static_cast<std::uint64_t>(now_ns) - deadline) / period;
      const std::uint64_t headroom =
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - deadline;
      // missed + 1 can overflow (period 1 across the whole range): clamp first.
      expiries = std::min<std::uint64_t>(missed, std::numeric_limits<std::uint32_t>::max() - 1) + 1;
      if (missed >= headroom / period) {
        // The next expiry, deadline + (missed + 1) * period, lies past the
        // last representable instant, which no clock reaches: this was the last.
        release(slot);
        --size_;
      } else {
        s.deadline = static_cast<std::int64_t>(deadline + (missed + 1) * period);
        s.seq = next_seq_++;
        file(slot);
      }
    }
    out[n++] = Event(token, Event::timer_flag, static_cast<std::uint32_t>(expiries));
  }
  return n;
}

void TimerQueue::file(std::uint32_t slot) noexcept {
  Slot& s = slots_[slot];
  const std::uint64_t tick = tick_of(s.deadline);
  if (tick <= cur_tick_) {
    ready_push(slot);
    return;
  }
  const unsigned level = static_cast<unsigned>(63 - std::countl_zero(tick ^ cur_tick_)) / kLevelBits;
  const unsigned digit = static_cast<unsigned>(tick >> (level * kLevelBits)) & (kBuckets - 1);
  const unsigned bucket = level * kBuckets + digit;
  s.bucket = static_cast<std::uint16_t>(bucket);
  s.prev = kNone;
  s.next = heads_[bucket];
  if (s.next != kNone) slots_[s.next].prev = slot;
  heads_[bucket] = slot;
  occupied_[level] |= std::uint64_t{1} << digit;
}

void TimerQueue::unlink(std::uint32_t slot) noexcept {
  const Slot& s = slots_[slot];
  if (s.prev != kNone) {
    slots_[s.prev].next = s.next;
  } else {
    heads_[s.bucket] = s.next;
    if (s.next == kNone) occupied_[s.bucket / kBuckets] &= ~(std::uint64_t{1} << (s.bucket % kBuckets));
  }
  if (s.next != kNone) slots_[s.next].prev = s.prev;
}

bool TimerQueue::earliest_bucket(unsigned& level, unsigned& digit) const noexcept {
  for (unsigned l = 0; l < kLevels; ++l) {
    if (occupied_[l] != 0) {
      level = l;
      digit = static_cast<unsigned>(std::countr_zero(occupied_[l]));
      return true;
    }
  }
  return false;
}

std::uint64_t TimerQueue::bucket_start(unsigned level, unsigned digit) const noexcept {
  const unsigned shift = level * kLevelBits;
  const unsigned above = shift + kLevelBits;
  const std::uint64_t high = above >= 64 ? 0 : (cur_tick_ >> above) << above;
  return high | (std::uint64_t{digit} << shift);
}

// Moves the bucket's timers down, at most `budget` of them; false when some
// are left (the bucket stays a valid list, resumed by the next expire()).
bool TimerQueue::cascade(unsigned bucket, std::size_t& budget) noexcept {
  std::uint32_t i = heads_[bucket];
  while (i != kNone) {
    if (budget == 0) {
      heads_[bucket] = i;
      slots_[i].prev = kNone;
      cascading_ = bucket;
      return false;
    }
    --budget;
    const std::uint32_t next = slots_[i].next;
    // Lands in a lower level or the ready heap, never back here: cur_tick_
    // now shares this bucket's digits from its level up. Timers added
    // meanwhile cannot land here either, for the same reason.
    file(i);
    i = next;
  }
  heads_[bucket] = kNone;
  occupied_[bucket / kBuckets] &= ~(std::uint64_t{1} << (bucket % kBuckets));
  cascading_ = kNone;
  return true;
}

void TimerQueue::release(std::uint32_t slot) noexcept {
  Slot& s = slots_[slot];
  ++s.generation;
  s.next = free_head_;
  free_head_ = slot;
}

void TimerQueue::ready_push(std::uint32_t slot) noexcept {
  Slot& s = slots_[slot];
  s.bucket = kInReady;
  ready_.emplace_back();  // within the capacity add() reserved
  ready_sift_up(ready_.size() - 1, ReadyEntry{s.deadline, s.seq, slot});
}

void TimerQueue::ready_remove(std::size_t pos) noexcept {
  const ReadyEntry last = ready_.back();
  ready_.pop_back();
  if (pos == ready_.size()) return;
  if (pos > 0 && earlier(last, ready_[(pos - 1) / 2])) {
    ready_sift_up(pos, last);
  } else {
    ready_sift_down(pos, last);
  }
}

void TimerQueue::ready_sift_up(std::size_t pos, ReadyEntry e) noexcept {
  while (pos > 0) {
    const std::size_t up = (pos - 1) / 2;
    if (!earlier(e, ready_[up])) break;
    ready_place(pos, ready_[up]);
    pos = up;
  }
  ready_place(pos, e);
}

void TimerQueue::ready_sift_down(std::size_t pos, ReadyEntry e) noexcept {
  const std::size_t end = ready_.size();
  for (;;) {
    std::size_t child = 2 * pos + 1;
    if (child >= end) break;
    if (child + 1 < end && earlier(ready_[child + 1], ready_[child])) ++child;
    if (!earlier(ready_[child], e)) break;
    ready_place(pos, ready_[child]);
    pos = child;
  }
  ready_place(pos, e);
}

}  // namespace evq::detail
