// Unit tests of the core's timer structures, driven directly with fake clock
// values: deterministic, no sleeps. The same suite runs against the timing
// wheel (TimerQueue) and the heap it was measured against (TimerHeap).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/timer_heap.hpp"
#include "core/timer_queue.hpp"

namespace evq::detail {

// Reaches the heap's 32-bit sequence counter, so a test can cross its wrap
// without four billion insertions.
struct TimerHeapTestPeer {
  static void set_next_seq(TimerHeap& q, std::uint32_t seq) { q.next_seq_ = seq; }
};

// Shrinks the wheel's per-call cascade budget, so small tests leave cascades
// unfinished between calls as a million timers would.
struct TimerQueueTestPeer {
  static void set_cascade_budget(TimerQueue& q, std::size_t budget) { q.cascade_budget_ = budget; }
};

namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMs = 1'000'000;

Token tok(std::uint64_t v) { return static_cast<Token>(v); }
std::uint64_t val(Token t) { return static_cast<std::uint64_t>(t); }

template <class Queue>
class TimerQueueTest : public ::testing::Test {
 public:
  TimerHandle add(std::uint64_t token, std::int64_t deadline, std::int64_t period = 0) {
    auto r = q.add(tok(token), deadline, period);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return r ? *r : TimerHandle{0, 0};
  }

  // Everything due at now, in the order delivered, called the way the core
  // calls it: again while next_deadline() says so.
  std::vector<Event> expire(std::int64_t now, std::size_t capacity = 1024) {
    std::vector<Event> all;
    std::vector<Event> buf(capacity);
    for (;;) {
      const std::size_t n = q.expire(now, buf.data(), buf.size());
      all.insert(all.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
      if (n < buf.size() && (q.size() == 0 || q.next_deadline() > now)) return all;
    }
  }

  // next_deadline() may be early (the wheel's bucket start) but never late,
  // and waking at it the way the core does fires nothing and reaches
  // `expected` within a few such wake-ups.
  void expect_next_deadline(std::int64_t expected) {
    for (int wakeups = 0;; ++wakeups) {
      const std::int64_t t = q.next_deadline();
      ASSERT_LE(t, expected);
      if (t == expected) return;
      ASSERT_LT(wakeups, 9) << "next_deadline() does not converge on " << expected;
      Event e;
      ASSERT_EQ(q.expire(t, &e, 1), 0u) << "fired before its deadline at " << t;
    }
  }

  static std::vector<std::uint64_t> tokens(const std::vector<Event>& events) {
    std::vector<std::uint64_t> out;
    for (const Event& e : events) out.push_back(val(e.token()));
    return out;
  }

  Queue q;
};

using Queues = ::testing::Types<TimerQueue, TimerHeap>;
TYPED_TEST_SUITE(TimerQueueTest, Queues);

TYPED_TEST(TimerQueueTest, EmptyQueueHasNoDeadlineAndExpiresNothing) {
  EXPECT_EQ(this->q.size(), 0u);
  EXPECT_EQ(this->q.next_deadline(), kMax);
  Event e;
  EXPECT_EQ(this->q.expire(kMax, &e, 1), 0u);
}

TYPED_TEST(TimerQueueTest, EventsCarryTokenTimerFlagAndCountOne) {
  this->add(42, 10);
  const auto events = this->expire(10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), tok(42));
  EXPECT_TRUE(events[0].is_timer());
  EXPECT_FALSE(events[0].is_readable());
  EXPECT_EQ(events[0].timer_count(), 1u);
}

TYPED_TEST(TimerQueueTest, NeverFiresBeforeItsDeadline) {
  this->add(1, 1000);
  EXPECT_TRUE(this->expire(999).empty());
  ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(1000));
  EXPECT_EQ(this->expire(1000).size(), 1u);
}

TYPED_TEST(TimerQueueTest, ManyTimersComeOutInDeadlineOrder) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::int64_t> dist(0, 10'000 * kMs);
  std::vector<std::pair<std::int64_t, std::uint64_t>> expected;
  for (std::uint64_t i = 0; i < 5000; ++i) {
    const std::int64_t d = dist(rng);
    this->add(i, d);
    expected.emplace_back(d, i);
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_LE(this->q.next_deadline(), expected.front().first);

  // Walk the clock forward in uneven steps; each step must deliver exactly
  // the timers whose deadlines it passed, in order.
  std::size_t next = 0;
  for (std::int64_t now = 0; next < expected.size(); now += 7 * kMs + 12'345) {
    for (const Event& e : this->expire(now)) {
      ASSERT_LT(next, expected.size());
      ASSERT_LE(expected[next].first, now);
      ASSERT_EQ(val(e.token()), expected[next].second);
      ++next;
    }
    if (next < expected.size()) {
      ASSERT_GT(expected[next].first, now);
      ASSERT_GT(this->q.next_deadline(), now);
      ASSERT_LE(this->q.next_deadline(), expected[next].first);
    }
  }
  EXPECT_EQ(this->q.size(), 0u);
}

TYPED_TEST(TimerQueueTest, EqualDeadlinesFireInInsertionOrder) {
  // Interleave with other deadlines so the heap really has to reorder.
  for (std::uint64_t i = 0; i < 300; ++i) {
    this->add(i, i % 3 == 0 ? 500 : static_cast<std::int64_t>(1000 - i));
  }
  std::vector<std::uint64_t> at500;
  for (const Event& e : this->expire(500)) at500.push_back(val(e.token()));
  std::vector<std::uint64_t> want;
  for (std::uint64_t i = 0; i < 300; i += 3) want.push_back(i);
  EXPECT_EQ(at500, want);
}

TYPED_TEST(TimerQueueTest, EqualDeadlinesStayFifoAcrossCancelsAndPartialExpiry) {
  std::vector<TimerHandle> h;
  for (std::uint64_t i = 0; i < 100; ++i) h.push_back(this->add(i, 77));
  for (std::uint64_t i = 0; i < 100; i += 7) ASSERT_FALSE(this->q.cancel(h[i]));
  std::vector<std::uint64_t> want;
  for (std::uint64_t i = 0; i < 100; ++i) {
    if (i % 7 != 0) want.push_back(i);
  }
  EXPECT_EQ(this->tokens(this->expire(77, 5)), want);
}

TYPED_TEST(TimerQueueTest, CancelBeforeExpiryPreventsTheEvent) {
  const TimerHandle a = this->add(1, 100);
  this->add(2, 200);
  EXPECT_FALSE(this->q.cancel(a));
  EXPECT_EQ(this->q.size(), 1u);
  ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(200));
  EXPECT_EQ(this->tokens(this->expire(kMax)), std::vector<std::uint64_t>{2});
}

TYPED_TEST(TimerQueueTest, CancelAfterExpiryIsTimerNotArmed) {
  const TimerHandle a = this->add(1, 100);
  ASSERT_EQ(this->expire(100).size(), 1u);
  EXPECT_EQ(this->q.cancel(a), errc::timer_not_armed);
}

TYPED_TEST(TimerQueueTest, CancelTwiceIsTimerNotArmed) {
  const TimerHandle a = this->add(1, 100);
  EXPECT_FALSE(this->q.cancel(a));
  EXPECT_EQ(this->q.cancel(a), errc::timer_not_armed);
  EXPECT_EQ(this->q.size(), 0u);
}

TYPED_TEST(TimerQueueTest, HandlesNeverIssuedAreInvalidTimer) {
  EXPECT_EQ(this->q.cancel(TimerHandle{0, 0}), errc::invalid_timer);
  EXPECT_EQ(this->q.cancel(TimerHandle{0, 1}), errc::invalid_timer);
  const TimerHandle a = this->add(1, 100);
  EXPECT_EQ(this->q.cancel(TimerHandle{a.slot, 0}), errc::invalid_timer);
  EXPECT_EQ(this->q.cancel(TimerHandle{a.slot + 1, a.generation}), errc::invalid_timer);
  EXPECT_EQ(this->q.cancel(TimerHandle{a.slot, a.generation + 1}), errc::invalid_timer);
  EXPECT_EQ(this->q.cancel(TimerHandle{a.slot, a.generation + 2}), errc::invalid_timer);
  EXPECT_EQ(this->q.cancel(TimerHandle{123456, 1}), errc::invalid_timer);
  // None of those disturbed the real one.
  EXPECT_EQ(this->q.size(), 1u);
  EXPECT_FALSE(this->q.cancel(a));
}

TYPED_TEST(TimerQueueTest, NegativePeriodIsInvalidArgument) {
  auto r = this->q.add(tok(1), 100, -1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), errc::invalid_argument);
  EXPECT_EQ(this->q.size(), 0u);
}

TYPED_TEST(TimerQueueTest, StaleHandleOfAReusedSlotIsTimerNotArmed) {
  const TimerHandle a = this->add(1, 100);
  ASSERT_FALSE(this->q.cancel(a));
  const TimerHandle b = this->add(2, 200);
  ASSERT_EQ(b.slot, a.slot);  // the free slot was reused
  EXPECT_NE(b.generation, a.generation);
  EXPECT_EQ(this->q.cancel(a), errc::timer_not_armed);

  // The same after a one-shot fired and its slot went to another timer.
  ASSERT_EQ(this->tokens(this->expire(200)), std::vector<std::uint64_t>{2});
  const TimerHandle c = this->add(3, 300);
  ASSERT_EQ(c.slot, b.slot);
  EXPECT_EQ(this->q.cancel(b), errc::timer_not_armed);
  EXPECT_EQ(this->q.cancel(a), errc::timer_not_armed);
  EXPECT_EQ(this->tokens(this->expire(300)), std::vector<std::uint64_t>{3});
}

TYPED_TEST(TimerQueueTest, GenerationsAreNeverZero) {
  for (int i = 0; i < 1000; ++i) {
    const TimerHandle h = this->add(1, 5);
    ASSERT_NE(h.generation, 0u);
    ASSERT_FALSE(this->q.cancel(h));
  }
}

TYPED_TEST(TimerQueueTest, RepeatingTimerDoesNotDriftOver100Periods) {
  constexpr std::int64_t start = 1'000'000'007;
  constexpr std::int64_t period = 3 * kMs + 333;
  const TimerHandle h = this->add(9, start, period);
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<std::int64_t> lateness(0, period - 1);
  for (std::int64_t n = 0; n < 100; ++n) {
    const std::int64_t due = start + n * period;
    ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(due));
    ASSERT_TRUE(this->expire(due - 1).empty());
    // Waking late by less than a period must not push later expiries back.
    const auto events = this->expire(due + lateness(rng));
    ASSERT_EQ(events.size(), 1u);
    ASSERT_EQ(events[0].timer_count(), 1u);
  }
  ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(start + 100 * period));
  EXPECT_EQ(this->q.size(), 1u);
  EXPECT_FALSE(this->q.cancel(h));  // still armed, and its handle still good
  EXPECT_EQ(this->q.cancel(h), errc::timer_not_armed);
}

TYPED_TEST(TimerQueueTest, MissedPeriodsAreFoldedIntoOneCount) {
  this->add(5, 1000, 100);
  auto events = this->expire(1000 + 5 * 100 + 50);  // expiries at 1000..1500: six
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].timer_count(), 6u);
  ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(1600));

  events = this->expire(1600 + 3 * 100);  // exactly on a boundary: 1600..1900
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].timer_count(), 4u);
  ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(2000));
}

TYPED_TEST(TimerQueueTest, RepeatingTimersWithEqualDeadlinesKeepTheirOrder) {
  for (std::uint64_t i = 0; i < 10; ++i) this->add(i, 100, 50);
  const std::vector<std::uint64_t> want{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (std::int64_t now = 100; now <= 1000; now += 50) {
    ASSERT_EQ(this->tokens(this->expire(now)), want);
  }
}

TYPED_TEST(TimerQueueTest, CapacityLimitedExpireLeavesTheRestDue) {
  for (std::uint64_t i = 0; i < 10; ++i) this->add(i, static_cast<std::int64_t>(i));
  this->add(100, 1000);
  Event buf[3];
  ASSERT_EQ(this->q.expire(500, buf, 3), 3u);
  EXPECT_EQ(val(buf[0].token()), 0u);
  EXPECT_EQ(val(buf[2].token()), 2u);
  EXPECT_EQ(this->q.size(), 8u);
  EXPECT_EQ(this->q.next_deadline(), 3);  // still due: the core must not wait

  // Timers added meanwhile still slot in by deadline.
  this->add(200, 4);
  EXPECT_EQ(this->tokens(this->expire(500, 2)),
            (std::vector<std::uint64_t>{3, 4, 200, 5, 6, 7, 8, 9}));
  EXPECT_EQ(this->q.expire(500, buf, 0), 0u);
  ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(1000));
}

TYPED_TEST(TimerQueueTest, RepeatingTimerFiresOncePerExpireEvenWhenLate) {
  this->add(1, 0, 1);
  Event buf[4];
  ASSERT_EQ(this->q.expire(1'000'000, buf, 4), 1u);
  EXPECT_EQ(buf[0].timer_count(), 1'000'001u);
  ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(1'000'001));
}

TYPED_TEST(TimerQueueTest, PastDeadlinesFireAtOnce) {
  ASSERT_TRUE(this->expire(10'000 * kMs).empty());
  this->add(1, 5);  // long before the last expire's now
  this->add(2, kMin);
  EXPECT_EQ(this->q.next_deadline(), kMin);
  EXPECT_EQ(this->tokens(this->expire(10'000 * kMs)), (std::vector<std::uint64_t>{2, 1}));
}

TYPED_TEST(TimerQueueTest, ExtremeDeadlinesAndPeriodsDoNotOverflow) {
  // Every period from INT64_MIN to INT64_MAX missed at once: the count
  // saturates, and the next expiry is not representable, so it ends.
  const TimerHandle a = this->add(1, kMin, 1);
  auto events = this->expire(kMax);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].timer_count(), std::numeric_limits<std::uint32_t>::max());
  EXPECT_EQ(this->q.cancel(a), errc::timer_not_armed);

  // A huge period fires once, then lies beyond the end of time.
  const TimerHandle b = this->add(2, 1, kMax);
  ASSERT_EQ(this->expire(1).size(), 1u);
  EXPECT_EQ(this->q.cancel(b), errc::timer_not_armed);

  // The last representable expiry is still delivered.
  this->add(3, kMax - 10, 5);
  events = this->expire(kMax);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].timer_count(), 3u);  // kMax - 10, - 5, kMax
  EXPECT_EQ(this->q.size(), 0u);

  // A negative deadline with a period steps through zero without a hitch.
  this->add(4, -250, 100);
  events = this->expire(-1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].timer_count(), 3u);  // -250, -150, -50
  ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(50));
}

TYPED_TEST(TimerQueueTest, HundredThousandTimersAreEachDeliveredExactlyOnce) {
  constexpr std::uint64_t n = 100'000;
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<std::int64_t> dist(0, 60'000 * kMs);
  std::vector<TimerHandle> handles;
  handles.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) handles.push_back(this->add(i, dist(rng)));
  // Cancel every tenth; those must never arrive.
  for (std::uint64_t i = 0; i < n; i += 10) ASSERT_FALSE(this->q.cancel(handles[i]));

  std::vector<int> seen(n, 0);
  std::int64_t last_deadline_seen = kMin;
  Event buf[256];
  for (std::int64_t now = 0; this->q.size() > 0; now += 17 * kMs) {
    while (this->q.next_deadline() <= now) {
      const std::size_t got = this->q.expire(now, buf, 256);
      for (std::size_t k = 0; k < got; ++k) ++seen[val(buf[k].token())];
    }
    ASSERT_GT(this->q.next_deadline(), now);
    ASSERT_GE(this->q.next_deadline(), last_deadline_seen);
    last_deadline_seen = this->q.next_deadline();
  }
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], i % 10 == 0 ? 0 : 1) << i;
}

TYPED_TEST(TimerQueueTest, NextDeadlineIsNeverLateAtAnyDistance) {
  constexpr std::int64_t now = 1'000'000'000'000;  // a plausible uptime
  ASSERT_TRUE(this->expire(now).empty());
  for (const std::int64_t ahead : {std::int64_t{1}, std::int64_t{999}, 5 * kMs, 300 * kMs,
                                   20'000 * kMs, 3 * 3600'000 * kMs, kMs * 86'400'000 * 400}) {
    this->add(7, now + ahead);
    ASSERT_NO_FATAL_FAILURE(this->expect_next_deadline(now + ahead)) << ahead;
    ASSERT_EQ(this->tokens(this->expire(now + ahead)), std::vector<std::uint64_t>{7});
    ASSERT_EQ(this->q.next_deadline(), kMax);
  }
}

TYPED_TEST(TimerQueueTest, ABigBucketIsMovedOverSeveralCallsInOrder) {
  // 20,000 timers within 1 s, 30 s ahead: one wheel bucket, more than one
  // expire() call may move at once.
  constexpr std::int64_t now = 1'000'000'000'000;
  ASSERT_TRUE(this->expire(now).empty());
  std::mt19937_64 rng(8);
  std::vector<std::pair<std::int64_t, std::uint64_t>> expected;
  for (std::uint64_t i = 0; i < 20'000; ++i) {
    const std::int64_t d = now + 30'000 * kMs + static_cast<std::int64_t>(rng() % (1000 * kMs));
    this->add(i, d);
    expected.emplace_back(d, i);
  }
  std::sort(expected.begin(), expected.end());
  const std::int64_t later = now + 32'000 * kMs;
  std::vector<Event> buf(100'000);
  std::vector<std::uint64_t> got;
  int calls = 0;
  for (; this->q.next_deadline() <= later; ++calls) {
    const std::size_t n = this->q.expire(later, buf.data(), buf.size());
    for (std::size_t k = 0; k < n; ++k) got.push_back(val(buf[k].token()));
    ASSERT_LT(calls, 1000);
  }
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t k = 0; k < got.size(); ++k) ASSERT_EQ(got[k], expected[k].second) << k;
  if constexpr (std::is_same_v<TypeParam, TimerQueue>) {
    EXPECT_GE(calls, 4);
  }
  EXPECT_EQ(this->q.next_deadline(), kMax);
}

TYPED_TEST(TimerQueueTest, CancelAndAddBetweenTheCallsOfAnUnfinishedCascade) {
  if constexpr (std::is_same_v<TypeParam, TimerQueue>) {
    TimerQueueTestPeer::set_cascade_budget(this->q, 10);
  }
  constexpr std::int64_t now = 1'000'000'000'000;
  ASSERT_TRUE(this->expire(now).empty());
  std::vector<TimerHandle> h;
  for (std::uint64_t i = 0; i < 100; ++i) {
    h.push_back(this->add(i, now + 5000 * kMs + static_cast<std::int64_t>(i % 10) * kMs));
  }
  Event buf[1000];
  const std::int64_t later = now + 6000 * kMs;
  std::vector<std::uint64_t> got;
  // Capacity 1: the heap fires one timer, the wheel (budget 10) none yet.
  const std::size_t first = this->q.expire(later, buf, 1);
  for (std::size_t k = 0; k < first; ++k) got.push_back(val(buf[k].token()));
  const std::vector<std::uint64_t> fired_first = got;
  // Whatever state the first call left: cancel some, add a timer due before
  // all of them and one due with them; order must hold.
  for (std::uint64_t i = 0; i < 100; i += 3) {
    if (std::find(got.begin(), got.end(), i) == got.end()) {
      ASSERT_FALSE(this->q.cancel(h[i]));
    }
  }
  this->add(1000, now + 4000 * kMs);
  this->add(1001, now + 5000 * kMs + 4 * kMs);
  for (const Event& e : this->expire(later, 1000)) got.push_back(val(e.token()));
  if constexpr (std::is_same_v<TypeParam, TimerQueue>) {
    ASSERT_EQ(first, 0u);  // a budget of 10 cannot finish a 100-timer bucket
  }
  std::vector<std::uint64_t> want = fired_first;
  const auto fired = [&](std::uint64_t i) {
    return std::find(fired_first.begin(), fired_first.end(), i) != fired_first.end();
  };
  want.push_back(1000);
  for (std::uint64_t ms = 0; ms < 10; ++ms) {
    for (std::uint64_t i = ms; i < 100; i += 10) {
      if (i % 3 != 0 && !fired(i)) want.push_back(i);
    }
    if (ms == 4) want.push_back(1001);
  }
  EXPECT_EQ(got, want);
}

TYPED_TEST(TimerQueueTest, SlotsAreReusedInSteadyState) {
  // After one round at full size, later rounds must reuse the same slots
  // rather than grow: no allocation per timer once warm.
  std::vector<TimerHandle> h;
  for (std::uint64_t i = 0; i < 1000; ++i) h.push_back(this->add(i, static_cast<std::int64_t>(i)));
  std::uint32_t max_slot = 0;
  for (const TimerHandle& x : h) max_slot = std::max(max_slot, x.slot);
  for (int round = 0; round < 10; ++round) {
    for (const TimerHandle& x : h) ASSERT_FALSE(this->q.cancel(x));
    h.clear();
    for (std::uint64_t i = 0; i < 1000; ++i) {
      h.push_back(this->add(i, static_cast<std::int64_t>(i * 7 % 1000) * kMs));
      ASSERT_LE(h.back().slot, max_slot);
    }
  }
}

// Random adds, cancels and expiries checked against an obviously correct
// model. Deadlines fall up to `horizon` ahead (a little in the past too), the
// clock moves up to `max_step` between expiries, periods reach `max_period`.
template <class Queue>
void agree_with_model(TimerQueueTest<Queue>& t_, std::uint64_t seed, std::int64_t horizon,
                      std::int64_t max_step, std::int64_t max_period) {
  Queue& q = t_.q;
  if constexpr (std::is_same_v<Queue, TimerQueue>) {
    TimerQueueTestPeer::set_cascade_budget(q, 1 + seed % 5);
  }
  struct Armed {
    std::uint64_t token;
    std::int64_t period;
  };
  std::map<std::pair<std::int64_t, std::uint64_t>, Armed> model;  // (deadline, seq)
  std::vector<std::pair<TimerHandle, std::uint64_t>> issued;        // handle, token
  std::vector<char> armed;                                          // by token
  std::vector<std::pair<std::int64_t, std::uint64_t>> key_of;       // by token
  std::uint64_t seq = 0;
  std::mt19937_64 rng(seed);
  std::int64_t now = 1'000'000'000'000;

  for (int step = 0; step < 200'000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      const std::int64_t deadline =
          now + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(horizon)) - horizon / 50;
      const std::int64_t period =
          rng() % 4 == 0 ? static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(max_period)) + 1
                         : 0;
      const std::uint64_t t = armed.size();
      issued.emplace_back(t_.add(t, deadline, period), t);
      armed.push_back(1);
      key_of.emplace_back(deadline, seq++);
      model[key_of[t]] = Armed{t, period};
    } else if (op < 8 && !issued.empty()) {
      const auto [h, t] = issued[rng() % issued.size()];
      const std::error_code ec = q.cancel(h);
      if (armed[t]) {
        ASSERT_FALSE(ec);
        ASSERT_EQ(model.erase(key_of[t]), 1u);
        armed[t] = 0;
      } else {
        ASSERT_EQ(ec, errc::timer_not_armed);
      }
    } else {
      now += static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(max_step));
      Event buf[8];
      const std::size_t cap = 1 + rng() % 8;
      const std::size_t got = q.expire(now, buf, cap);
      for (std::size_t k = 0; k < got; ++k) {
        ASSERT_FALSE(model.empty());
        auto it = model.begin();
        ASSERT_LE(it->first.first, now);
        ASSERT_EQ(val(buf[k].token()), it->second.token);
        const Armed a = it->second;
        const std::int64_t deadline = it->first.first;
        model.erase(it);
        if (a.period == 0) {
          ASSERT_EQ(buf[k].timer_count(), 1u);
          armed[a.token] = 0;
        } else {
          const std::int64_t missed = (now - deadline) / a.period;
          ASSERT_EQ(buf[k].timer_count(), static_cast<std::uint32_t>(missed + 1));
          key_of[a.token] = {deadline + (missed + 1) * a.period, seq++};
          model[key_of[a.token]] = a;
        }
      }
      // Short of capacity and not asking to be called again: nothing is due.
      if (got < cap && q.next_deadline() > now) {
        ASSERT_TRUE(model.empty() || model.begin()->first.first > now);
      }
    }
    ASSERT_EQ(q.size(), model.size());
    // Early is allowed (the core wakes, expires nothing, waits again); late
    // is not.
    ASSERT_LE(q.next_deadline(), model.empty() ? kMax : model.begin()->first.first);
    if (issued.size() > 4096) issued.erase(issued.begin(), issued.begin() + 2048);
  }
}

TYPED_TEST(TimerQueueTest, AgreesWithAReferenceModelAtMillisecondScale) {
  agree_with_model(*this, 4, 50 * kMs, 2 * kMs, 5 * kMs);
}

TYPED_TEST(TimerQueueTest, AgreesWithAReferenceModelAcrossHours) {
  // Reaches the wheel's upper levels and long cascades.
  agree_with_model(*this, 5, 4 * 3600'000 * kMs, 90'000 * kMs, 600'000 * kMs);
}

TYPED_TEST(TimerQueueTest, AgreesWithAReferenceModelAtNanosecondScale) {
  // Many timers share a tick, and repeating ones fire every few ticks.
  agree_with_model(*this, 6, 20'000, 700, 3'000);
}

TEST(TimerHeapTest, SequenceWrapKeepsEqualDeadlinesFifo) {
  TimerHeap q;
  std::vector<TimerHandle> h;
  for (std::uint64_t i = 0; i < 50; ++i) h.push_back(*q.add(tok(i), 1000 + i % 2, 0));
  TimerHeapTestPeer::set_next_seq(q, std::numeric_limits<std::uint32_t>::max() - 20);
  for (std::uint64_t i = 50; i < 100; ++i) h.push_back(*q.add(tok(i), 1000 + i % 2, 0));
  ASSERT_FALSE(q.cancel(h[3]));
  ASSERT_FALSE(q.cancel(h[60]));

  std::vector<std::uint64_t> got;
  Event buf[7];
  for (std::size_t n; (n = q.expire(2000, buf, 7)) > 0;) {
    for (std::size_t k = 0; k < n; ++k) got.push_back(val(buf[k].token()));
  }
  std::vector<std::uint64_t> want;
  for (std::uint64_t parity = 0; parity < 2; ++parity) {
    for (std::uint64_t i = parity; i < 100; i += 2) {
      if (i != 3 && i != 60) want.push_back(i);
    }
  }
  EXPECT_EQ(got, want);
}

TEST(TimerHeapTest, SequenceWrapDuringExpiryOfARepeatingTimer) {
  TimerHeap q;
  for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(q.add(tok(i), 100, 100));
  TimerHeapTestPeer::set_next_seq(q, std::numeric_limits<std::uint32_t>::max() - 2);
  Event buf[8];
  for (std::int64_t now = 100; now <= 500; now += 100) {
    ASSERT_EQ(q.expire(now, buf, 8), 5u);
    for (std::uint64_t i = 0; i < 5; ++i) ASSERT_EQ(val(buf[i].token()), i);
  }
}

}  // namespace
}  // namespace evq::detail
