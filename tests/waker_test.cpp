// tests/waker_test.cpp: Waker: from the polling thread and from others,
// concurrent wakes, coalescing, firing again after delivery, next to I/O.
#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "support/io_helpers.hpp"
#include "support/thread_group.hpp"
#include "support/wait.hpp"

namespace evq {
namespace {

using namespace std::chrono_literals;
using test::kDeadline;

constexpr auto kQuiet = 50ms;
constexpr Token kWake{42};

Waker make_waker(Poll& poll, Token token = kWake) {
  auto waker = Waker::create(poll.registry(), token);
  if (!waker) {
    ADD_FAILURE() << "Waker::create: " << waker.error().message();
    std::abort();
  }
  return std::move(*waker);
}

// Events for `token` in one poll.
int count_in(const Events& events, Token token) {
  int n = 0;
  for (const Event& e : events) n += e.token() == token;
  return n;
}

TEST(Waker, WakeFromTheSameThread) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  ASSERT_FALSE(waker.wake());
  const auto ev = test::wait_for(poll, kWake, test::every_event);
  ASSERT_TRUE(ev);
  EXPECT_FALSE(ev->is_timer());
  EXPECT_FALSE(ev->is_error());
}

TEST(Waker, FiresAgainAfterDelivery) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  for (int i = 0; i < 200; ++i) {
    ASSERT_FALSE(waker.wake()) << i;
    ASSERT_TRUE(test::wait_for(poll, kWake, test::every_event)) << "wake " << i << " was lost";
  }
}

// Many wakes before one poll: exactly one waker event in that poll, and the
// wakes do not linger into later polls one by one (a waker that drained one
// wake per poll would fire in each of the next polls).
TEST(Waker, WakesBeforeOnePollCoalesce) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  Events events(64);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1000; ++i) ASSERT_FALSE(waker.wake());
    ASSERT_FALSE(poll.poll(events, kDeadline));
    EXPECT_EQ(count_in(events, kWake), 1) << "round " << round;
    EXPECT_LT(test::polls_with_event(poll, kWake, 3, kQuiet), 3)
        << "the coalesced wakes kept firing, round " << round;
  }
}

// One wake per round from a rotating thread while the poller blocks; a lost
// wake (a race between the poller consuming the wake-up and a new wake())
// shows as a round that never ends.
TEST(Waker, WakeFromOtherThreadsWakesBlockedPoll) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  constexpr int kThreads = 4, kRounds = 400;
  std::atomic<int> go{-1};
  std::atomic<bool> stop{false};
  test::ThreadGroup threads(stop);
  for (int t = 0; t < kThreads; ++t) {
    threads.spawn([&, t] {
      for (int round = t; round < kRounds; round += kThreads) {
        while (go.load() < round && !stop.load()) std::this_thread::yield();
        if (stop.load()) return;
        (void)waker.wake();
      }
    });
  }
  Events events(64);
  for (int round = 0; round < kRounds; ++round) {
    go.store(round);
    bool woken = false;
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    while (!woken && std::chrono::steady_clock::now() < until) {
      ASSERT_FALSE(poll.poll(events, until - std::chrono::steady_clock::now()));
      const int n = count_in(events, kWake);
      EXPECT_LE(n, 1) << "several waker events in one poll";
      woken = n > 0;
    }
    ASSERT_TRUE(woken) << "round " << round << ": the wake from another thread never reached the poll";
  }
}

// Several threads wake at once while the poller polls. A round ends when the
// poller has seen a waker event since the round began and every thread's
// wake() has returned; a wake that got lost while the poller was blocked
// leaves the poller waiting for the whole deadline.
TEST(Waker, ConcurrentWakesFromSeveralThreads) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  constexpr int kThreads = 4, kRounds = 300, kWakesPerRound = 5;
  std::atomic<int> go{-1};
  std::atomic<int> done{0};
  std::atomic<bool> stop{false};
  test::ThreadGroup threads(stop);
  for (int t = 0; t < kThreads; ++t) {
    threads.spawn([&] {
      for (int round = 0; round < kRounds; ++round) {
        while (go.load() < round && !stop.load()) std::this_thread::yield();
        if (stop.load()) return;
        for (int i = 0; i < kWakesPerRound; ++i) (void)waker.wake();
        done.fetch_add(1);
      }
    });
  }
  Events events(64);
  std::size_t woken_polls = 0;
  for (int round = 0; round < kRounds; ++round) {
    go.store(round);
    bool woken = false;
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    while (!woken && std::chrono::steady_clock::now() < until) {
      ASSERT_FALSE(poll.poll(events, until - std::chrono::steady_clock::now()));
      const int n = count_in(events, kWake);
      EXPECT_LE(n, 1) << "several waker events in one poll";
      woken = n > 0;
      woken_polls += static_cast<std::size_t>(n);
    }
    ASSERT_TRUE(woken) << "round " << round << ": " << kThreads
                       << " threads woke, the poll never returned";
    // Every wake of this round returned before the next one starts.
    while (done.load() < kThreads * (round + 1)) std::this_thread::yield();
  }
  EXPECT_GE(woken_polls, static_cast<std::size_t>(kRounds));
}

TEST(Waker, WakerAndIoInOnePoll) {
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  const Token io{7};
  ASSERT_FALSE(poll.registry().add(b, io, Interest::readable));  // edge

  // Both at once.
  ASSERT_TRUE(test::write_all(a, "io"));
  ASSERT_FALSE(waker.wake());
  bool got_io = false, got_wake = false;
  Events events(64);
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (!(got_io && got_wake) && std::chrono::steady_clock::now() < until) {
    ASSERT_FALSE(poll.poll(events, until - std::chrono::steady_clock::now()));
    for (const Event& e : events) {
      got_io |= e.token() == io && e.is_readable();
      got_wake |= e.token() == kWake;
    }
  }
  EXPECT_TRUE(got_io);
  EXPECT_TRUE(got_wake);
  EXPECT_EQ(test::read_until_would_block(b).bytes, 2u);

  // I/O alone: the waker, delivered already, does not fire on every poll.
  ASSERT_TRUE(test::write_all(a, "io2"));
  std::vector<Event> others;
  ASSERT_TRUE(test::wait_for(poll, io, test::readable, kDeadline, &others));
  EXPECT_EQ(test::read_until_would_block(b).bytes, 3u);
  EXPECT_LT(test::polls_with_event(poll, kWake, 3, kQuiet), 3) << "a delivered waker kept firing";

  // A wake alone, then I/O again: each source still works.
  ASSERT_FALSE(waker.wake());
  EXPECT_TRUE(test::wait_for(poll, kWake, test::every_event));
  ASSERT_TRUE(test::write_all(a, "io3"));
  EXPECT_TRUE(test::wait_readable(poll, io));
  EXPECT_FALSE(poll.registry().remove(b));
}

TEST(Waker, MovedWakerStillWakes) {
  Poll poll = test::make_poll();
  std::optional<Waker> first(make_waker(poll));
  Waker second(std::move(*first));
  first.reset();  // the moved-from one is destroyed; it must not take the registration along
  ASSERT_FALSE(second.wake());
  EXPECT_TRUE(test::wait_for(poll, kWake, test::every_event));

  Waker third = make_waker(poll, Token{43});
  third = std::move(second);  // the assigned-over waker is released
  ASSERT_FALSE(third.wake());
  EXPECT_TRUE(test::wait_for(poll, kWake, test::every_event));
}

// A waker shared with a thread that outlives the poll loop's interest in it:
// wake() from another thread while the poller polls in a loop with a
// timeout, many times, checked for data races by TSan.
TEST(Waker, WakeRacingWithTimedPolls) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  test::ThreadGroup threads(stop);
  threads.spawn([&] {
    while (!stop.load()) {
      if (waker.wake()) failed = true;
      std::this_thread::yield();
    }
  });
  Events events(64);
  int seen = 0;
  // Bounded by a deadline, not a speed: wakes keep coming, so each poll of
  // 1 ms usually ends with one.
  const auto until = std::chrono::steady_clock::now() + 6 * kDeadline;
  while (seen < 500 && std::chrono::steady_clock::now() < until) {
    ASSERT_FALSE(poll.poll(events, 1ms));
    const int n = count_in(events, kWake);
    EXPECT_LE(n, 1);
    seen += n;
  }
  threads.join();
  EXPECT_EQ(seen, 500) << "wakes from a busy thread stopped reaching the poll";
  EXPECT_FALSE(failed) << "wake() failed";
}

}  // namespace
}  // namespace evq
