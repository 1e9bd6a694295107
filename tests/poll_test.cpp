// tests/poll_test.cpp: Poll itself: creation and the choice of backend,
// timeouts (zero, sub-millisecond, never cut short), EINTR, a zero-capacity
// Events, and moving a Poll.
#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "support/io_helpers.hpp"
#include "support/wait.hpp"

#if EVQ_POSIX
#include <pthread.h>
#include <signal.h>
#endif

namespace evq {
namespace {

using namespace std::chrono_literals;
using std::chrono::steady_clock;

constexpr Backend kAllBackends[] = {Backend::epoll, Backend::kqueue, Backend::iocp,
                                    Backend::io_uring, Backend::poll};

// Breaks a poll() that hangs: if the poll it guards has not returned after
// `limit`, it wakes `waker` and remembers that it had to. Not a speed
// assertion: a poll with a zero or finite timeout that needs a minute is one
// that mistook its timeout for "forever"; without the guard that bug would
// hang the whole executable until ctest kills it.
class HangGuard {
 public:
  explicit HangGuard(Waker& waker, std::chrono::seconds limit = 60s)
      : thread_([this, &waker, limit] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            fired_ = true;
            (void)waker.wake();
          }
        }) {}
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;
  ~HangGuard() { stop(); }

  // Call once the guarded poll returned; true when the guard had to break it.
  bool stop() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;
};

constexpr Token kWakerToken{1000};

Waker make_waker(Poll& poll, Token token = kWakerToken) {
  auto waker = Waker::create(poll.registry(), token);
  if (!waker) {
    ADD_FAILURE() << "Waker::create: " << waker.error().message();
    std::abort();
  }
  return std::move(*waker);
}

TEST(PollCreate, DefaultHonoursEvqBackend) {
  auto poll = Poll::create();
  ASSERT_TRUE(poll) << poll.error().message();
  EXPECT_TRUE(backend_available(poll->backend())) << to_string(poll->backend());
  const char* env = std::getenv("EVQ_BACKEND");
  if (env == nullptr || *env == '\0') return;  // the platform's best: nothing to compare with
  const auto wanted = backend_from_string(env);
  ASSERT_TRUE(wanted) << "ctest set an unknown EVQ_BACKEND=" << env;
  EXPECT_EQ(to_string(poll->backend()), std::string_view(env));
  EXPECT_EQ(poll->backend(), *wanted);
}

TEST(PollCreate, BackendNamesRoundTrip) {
  for (Backend b : kAllBackends) {
    const auto back = backend_from_string(to_string(b));
    ASSERT_TRUE(back) << to_string(b);
    EXPECT_EQ(*back, b);
  }
  EXPECT_FALSE(backend_from_string("select"));
  EXPECT_FALSE(backend_from_string(""));
}

TEST(PollCreate, ExplicitBackendIsTheOneAsked) {
  int available = 0;
  for (Backend b : kAllBackends) {
    auto poll = Poll::create(b);
    EXPECT_EQ(static_cast<bool>(poll), backend_available(b)) << to_string(b);
    if (!poll) {
      EXPECT_EQ(poll.error(), errc::backend_unavailable) << to_string(b);
      continue;
    }
    ++available;
    EXPECT_EQ(poll->backend(), b) << to_string(b);
    Waker waker = make_waker(*poll);
    Events events(4);
    HangGuard guard(waker);
    EXPECT_FALSE(poll->poll(events, 0ns)) << to_string(b);
    EXPECT_FALSE(guard.stop()) << to_string(b) << ": poll with a zero timeout waited as if forever";
  }
  EXPECT_GE(available, 1);
}

TEST(PollCreate, BackendNotCompiledInIsBackendUnavailable) {
  // No platform has both: IOCP is Windows-only, epoll Linux-only.
#if EVQ_POSIX
  constexpr Backend absent = Backend::iocp;
#else
  constexpr Backend absent = Backend::epoll;
#endif
  EXPECT_FALSE(backend_available(absent));
  auto poll = Poll::create(absent);
  ASSERT_FALSE(poll);
  EXPECT_EQ(poll.error(), errc::backend_unavailable) << poll.error().message();
  EXPECT_EQ(poll.error(), std::errc::operation_not_supported) << poll.error().message();
}

TEST(PollTimeout, ZeroReturnsAtOnceWithNoEvents) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  // Registered, never ready: nothing is ever written to it.
  ASSERT_FALSE(poll.registry().add(pair->first, Token{1}, Interest::readable, Trigger::level));

  Events events(8);
  for (int i = 0; i < 50; ++i) {
    HangGuard guard(waker);
    const std::error_code ec = poll.poll(events, 0ns);
    ASSERT_FALSE(guard.stop()) << "poll with a zero timeout waited as if forever";
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_TRUE(events.empty()) << "nothing is ready, yet " << events.size() << " events";
  }
}

TEST(PollTimeout, ZeroStillReportsAReadyLevelSource) {
  Poll poll = test::make_poll();
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [tx, rx] = *pair;
  const Token token{7};
  ASSERT_FALSE(poll.registry().add(rx, token, Interest::readable, Trigger::level));
  ASSERT_TRUE(test::write_all(tx, "ready"));
  ASSERT_TRUE(test::wait_readable(poll, token));
  // Level: ready on every poll, a non-blocking one included.
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(test::polls_with_event(poll, token, 1, 0ns, test::readable), 1) << "poll " << i;
}

TEST(PollEvents, ZeroCapacityIsInvalidArgument) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  // Something ready, so that a backend that forgot the check would try to
  // store an event into no room (ASan sees that).
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [tx, rx] = *pair;
  ASSERT_FALSE(poll.registry().add(rx, Token{1}, Interest::readable, Trigger::level));
  ASSERT_TRUE(test::write_all(tx, "x"));

  Events none(0);
  EXPECT_EQ(none.capacity(), 0u);
  const std::optional<std::chrono::nanoseconds> timeouts[] = {0ns, 20ms, std::nullopt};
  for (const auto& timeout : timeouts) {
    HangGuard guard(waker);
    const std::error_code ec = poll.poll(none, timeout);
    ASSERT_FALSE(guard.stop()) << "poll with no room for events blocked instead of failing";
    // ASSERT: a poll that accepted no room at all could spin forever on the
    // next, unbounded, wait (no guard can break a loop that never waits).
    ASSERT_EQ(ec, std::errc::invalid_argument) << ec.message();
    ASSERT_EQ(ec, errc::zero_capacity) << ec.message();
    EXPECT_TRUE(none.empty());
  }
  // The Poll still works after the refusal.
  EXPECT_TRUE(test::wait_readable(poll, Token{1}));
}

// A timeout is never cut short: sub-millisecond waits round up where the OS
// counts milliseconds (truncating 999 us to 0 ms is the classic bug), and a
// poll that returns with no event must have waited the whole timeout. Only a
// lower bound is asserted: a loaded machine may sleep longer.
void expect_timeouts_not_cut_short(Poll& poll, Waker& waker) {
  const std::chrono::nanoseconds timeouts[] = {
      1ns,   1us,  10us, 100us, 250us, 500us, 900us, 999us, 1ms,
      1001us, 1100us, 1500us, 1999us, 2ms, 2500us, 5ms, 10ms, 20ms};
  Events events(8);
  for (const auto timeout : timeouts) {
    for (int rep = 0; rep < 4; ++rep) {
      HangGuard guard(waker);
      const auto start = steady_clock::now();
      const std::error_code ec = poll.poll(events, timeout);
      const auto elapsed = steady_clock::now() - start;
      ASSERT_FALSE(guard.stop()) << "a " << timeout.count() << " ns timeout waited as if forever";
      ASSERT_FALSE(ec) << ec.message();
      // Nothing is registered that could become ready.
      EXPECT_TRUE(events.empty()) << events.size() << " events";
      if (events.empty()) {
        EXPECT_GE(elapsed, timeout) << "returned after " << elapsed.count() << " ns of a "
                                    << timeout.count() << " ns timeout";
      }
    }
  }
}

TEST(PollTimeout, SubMillisecondAndSmallTimeoutsNeverReturnEarly) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  expect_timeouts_not_cut_short(poll, waker);
}

TEST(PollTimeout, SmallTimeoutsNeverReturnEarlyWithIdleRegistrations) {
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);
  // Registered but never ready: both ends of a connection nobody writes to,
  // one edge-triggered, one level-triggered.
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  ASSERT_FALSE(poll.registry().add(pair->first, Token{1}, Interest::readable));
  ASSERT_FALSE(poll.registry().add(pair->second, Token{2}, Interest::readable, Trigger::level));
  expect_timeouts_not_cut_short(poll, waker);
}

TEST(PollTimeout, LongerTimeoutsNeverReturnEarly) {
  Poll poll = test::make_poll();
  Events events(8);
  for (const auto timeout : {50ms, 120ms, 300ms}) {
    const auto start = steady_clock::now();
    const std::error_code ec = poll.poll(events, timeout);
    const auto elapsed = steady_clock::now() - start;
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_TRUE(events.empty());
    EXPECT_GE(elapsed, timeout);
  }
}

#if EVQ_POSIX
// SIGUSR1 with an empty handler installed without SA_RESTART, so that a
// blocked epoll_wait/poll returns EINTR; restored afterwards.
std::atomic<int> g_signals{0};
extern "C" void count_signal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

class InterruptingSignal {
 public:
  InterruptingSignal() {
    struct sigaction sa {};
    sa.sa_handler = count_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: interrupted waits fail with EINTR
    EXPECT_EQ(sigaction(SIGUSR1, &sa, &old_), 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    EXPECT_EQ(pthread_sigmask(SIG_UNBLOCK, &set, &old_mask_), 0);
  }
  ~InterruptingSignal() {
    sigaction(SIGUSR1, &old_, nullptr);
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }

 private:
  struct sigaction old_ {};
  sigset_t old_mask_{};
};

TEST(PollSignals, TimedPollIsNotCutShortByEintr) {
  InterruptingSignal signal_installed;
  Poll poll = test::make_poll();
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  ASSERT_FALSE(poll.registry().add(pair->second, Token{1}, Interest::readable, Trigger::level));

  const pthread_t poller = pthread_self();
  Events events(8);
  for (const auto timeout : {20ms, 100ms, 250ms}) {
    std::atomic<bool> done{false};
    std::thread sender([&] {
      while (!done.load()) {
        pthread_kill(poller, SIGUSR1);
        std::this_thread::sleep_for(500us);  // pacing only
      }
    });
    const auto start = steady_clock::now();
    const std::error_code ec = poll.poll(events, timeout);
    const auto elapsed = steady_clock::now() - start;
    done = true;
    sender.join();
    ASSERT_FALSE(ec) << "EINTR must be retried inside poll(): " << ec.message();
    EXPECT_TRUE(events.empty()) << events.size() << " events";
    EXPECT_GE(elapsed, timeout) << "a signal cut the timeout short";
  }
}

TEST(PollSignals, UnboundedPollReturnsOnlyForItsWaker) {
  InterruptingSignal signal_installed;
  Poll poll = test::make_poll();
  Waker waker = make_waker(poll);

  const pthread_t poller = pthread_self();
  const int base = g_signals.load();
  constexpr int kSignals = 20;
  std::atomic<bool> polling{false};
  std::atomic<bool> returned{false};
  std::thread sender([&] {
    while (!polling.load()) std::this_thread::yield();
    // Every signal is handled on the poller thread; most land while it is
    // blocked in poll(). The waker comes only after all of them.
    const auto until = steady_clock::now() + 60s;
    while (g_signals.load() - base < kSignals && !returned.load() && steady_clock::now() < until) {
      pthread_kill(poller, SIGUSR1);
      std::this_thread::sleep_for(1ms);  // pacing only
    }
    (void)waker.wake();
  });

  Events events(8);
  polling = true;
  const std::error_code ec = poll.poll(events, std::nullopt);
  returned = true;
  const int handled = g_signals.load() - base;
  sender.join();

  ASSERT_FALSE(ec) << "EINTR must be retried inside poll(): " << ec.message();
  ASSERT_FALSE(events.empty()) << "poll(forever) returned with no event after " << handled
                               << " signals";
  bool woken = false;
  for (const Event& e : events) woken |= e.token() == kWakerToken;
  EXPECT_TRUE(woken) << "poll(forever) returned without its waker after " << handled
                     << " signals";
  EXPECT_GE(handled, kSignals) << "poll returned before the waker was woken";
}
#endif  // EVQ_POSIX

TEST(PollMove, MoveConstructionKeepsRegistrationsWorking) {
  Poll first = test::make_poll();
  const Backend backend = first.backend();
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [tx, rx] = *pair;
  const Token io{1};
  ASSERT_FALSE(first.registry().add(rx, io, Interest::readable, Trigger::level));
  Waker waker = make_waker(first);

  Poll second(std::move(first));
  EXPECT_EQ(second.backend(), backend);

  ASSERT_TRUE(test::write_all(tx, "moved"));
  EXPECT_TRUE(test::wait_readable(second, io));
  ASSERT_FALSE(waker.wake());
  EXPECT_TRUE(test::wait_for(second, kWakerToken, test::every_event));
  // The registry taken again from the new owner knows the registration.
  EXPECT_FALSE(second.registry().modify(rx, Token{2}, Interest::readable, Trigger::level));
  EXPECT_TRUE(test::wait_readable(second, Token{2}));
  EXPECT_FALSE(second.registry().remove(rx));
}

TEST(PollMove, MoveAssignmentKeepsRegistrationsWorking) {
  Poll first = test::make_poll();
  Poll target = test::make_poll();
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [tx, rx] = *pair;
  ASSERT_FALSE(first.registry().add(rx, Token{1}, Interest::readable));  // edge
  Waker waker = make_waker(first);

  // The target's own queue is released here; the moved one carries on.
  target = std::move(first);

  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(test::write_all(tx, "moved"));
    ASSERT_TRUE(test::wait_readable(target, Token{1})) << "round " << round;
    const auto drained = test::read_until_would_block(rx);
    EXPECT_FALSE(drained.error) << drained.error.message();
    EXPECT_EQ(drained.bytes, 5u);
  }
  ASSERT_FALSE(waker.wake());
  EXPECT_TRUE(test::wait_for(target, kWakerToken, test::every_event));
  EXPECT_FALSE(target.registry().remove(rx));
}

}  // namespace
}  // namespace evq
