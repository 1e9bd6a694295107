// tests/registry_thread_test.cpp: Registry used from other threads while one
// thread is inside Poll::poll (API.md: "safe to use from any thread, while
// another polls"). Meant to run clean under TSan as well.
#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
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

// Gives the poller time to block before the other thread acts. Coverage
// only: the tests pass whichever comes first.
constexpr auto kLetPollerBlock = 20ms;

// A registration added by another thread must wake a poll() that is already
// blocked (poll(2) must rebuild its descriptor set; epoll sees it at once).
TEST(RegistryThreads, AddFromAnotherThreadWakesBlockedPoll) {
  Poll poll = test::make_poll();
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    auto pair = test::connected_tcp_pair();
    ASSERT_TRUE(pair);
    TcpStream& a = pair->first;
    TcpStream& b = pair->second;
    const Token token{static_cast<std::uint64_t>(round + 1)};
    const Trigger trigger = round % 2 ? Trigger::level : Trigger::edge;
    const bool write_first = round % 4 < 2;
    std::atomic<bool> stop{false};
    std::error_code add_error;
    test::ThreadGroup other(stop);
    other.spawn([&] {
      std::this_thread::sleep_for(kLetPollerBlock);
      if (write_first) (void)test::write_all(a, "x");
      add_error = poll.registry().add(b, token, Interest::readable, trigger);
      if (!write_first) (void)test::write_all(a, "x");
    });
    const auto ev = test::wait_readable(poll, token);
    other.wait();
    ASSERT_FALSE(add_error) << add_error.message();
    EXPECT_TRUE(ev) << "the blocked poll never saw the registration added by another thread";
    EXPECT_FALSE(poll.registry().remove(b));
  }
}

TEST(RegistryThreads, ModifyFromAnotherThreadWakesBlockedPoll) {
  Poll poll = test::make_poll();
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& a = pair->first;
  const Token token{1};
  // Writable, nothing to read: quiet until the interest becomes writable.
  ASSERT_FALSE(poll.registry().add(a, token, Interest::readable, Trigger::level));
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    std::atomic<bool> stop{false};
    std::error_code modify_error;
    test::ThreadGroup other(stop);
    other.spawn([&] {
      std::this_thread::sleep_for(kLetPollerBlock);
      modify_error = poll.registry().modify(a, token, Interest::writable, Trigger::level);
    });
    const auto ev = test::wait_writable(poll, token);
    other.wait();
    ASSERT_FALSE(modify_error) << modify_error.message();
    EXPECT_TRUE(ev) << "the blocked poll never saw the interest changed by another thread";
    ASSERT_FALSE(poll.registry().modify(a, token, Interest::readable, Trigger::level));
  }
  EXPECT_FALSE(poll.registry().remove(a));
}

// Remove from another thread while the poller blocks; then data arrives for
// the removed socket and a waker ends the poll. No poll that began after
// remove() returned may report the removed registration.
TEST(RegistryThreads, RemoveFromAnotherThreadWhilePolling) {
  Poll poll = test::make_poll();
  const Token io{1}, wake{2};
  auto waker = Waker::create(poll.registry(), wake);
  ASSERT_TRUE(waker) << waker.error().message();
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    auto pair = test::connected_tcp_pair();
    ASSERT_TRUE(pair);
    TcpStream& a = pair->first;
    TcpStream& b = pair->second;
    ASSERT_FALSE(poll.registry().add(b, io, Interest::readable,
                                     round % 2 ? Trigger::level : Trigger::edge));
    std::atomic<bool> removed{false};
    std::atomic<bool> stop{false};
    std::error_code remove_error;
    test::ThreadGroup other(stop);
    other.spawn([&] {
      std::this_thread::sleep_for(kLetPollerBlock);
      remove_error = poll.registry().remove(b);
      removed = true;
      (void)test::write_all(a, "after remove");
      (void)waker->wake();
    });
    Events events(64);
    bool woken = false;
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    while (!woken && std::chrono::steady_clock::now() < until) {
      const bool began_after_remove = removed.load();
      ASSERT_FALSE(poll.poll(events, until - std::chrono::steady_clock::now()));
      for (const Event& e : events) {
        woken |= e.token() == wake;
        if (began_after_remove) {
          EXPECT_NE(e.token(), io) << "event after remove() returned";
        }
      }
    }
    other.wait();
    ASSERT_FALSE(remove_error) << remove_error.message();
    EXPECT_TRUE(woken);
    // The data sits unread in the removed socket: still nothing.
    EXPECT_EQ(test::polls_with_event(poll, io, 3, 30ms), 0) << "event after remove() returned";
  }
}

#if EVQ_POSIX
// Stress: four threads each add, modify and remove (or destroy) pipes with
// data in them, while the main thread polls. Every event must name a token
// that was added, and none may name one whose removal returned before the
// poll began. Bounded: a fixed number of iterations.
TEST(RegistryThreads, StressFourThreadsAddAndRemoveWhileOnePolls) {
  test::ignore_sigpipe();
  constexpr int kThreads = 4, kIterations = 400;
  constexpr std::size_t kTokens = std::size_t{kThreads} * kIterations;
  constexpr std::uint64_t kNotRemoved = ~std::uint64_t{0};

  Poll poll = test::make_poll();
  Registry& registry = poll.registry();
  // Index into these by token - 1.
  auto added = std::make_unique<std::atomic<bool>[]>(kTokens);
  auto removed_before_poll = std::make_unique<std::atomic<std::uint64_t>[]>(kTokens);
  for (std::size_t i = 0; i < kTokens; ++i) {
    added[i] = false;
    removed_before_poll[i] = kNotRemoved;
  }
  std::atomic<std::uint64_t> polls_begun{0};
  std::atomic<int> finished{0};
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};

  test::ThreadGroup workers(stop);
  for (int t = 0; t < kThreads; ++t) {
    workers.spawn([&, t] {
      const Trigger triggers[] = {Trigger::edge, Trigger::level, Trigger::oneshot};
      for (int i = 0; i < kIterations && !stop.load(); ++i) {
        const std::size_t index = std::size_t(t) * kIterations + std::size_t(i);
        const Token token{index + 1};
        auto p = evq::pipe();
        if (!p) {
          ++failures;
          break;
        }
        std::optional<PipeSender> tx(std::move(p->first));
        std::optional<PipeReceiver> rx(std::move(p->second));
        added[index] = true;
        if (registry.add(*rx, token, Interest::readable, triggers[i % 3])) ++failures;
        (void)tx->write(test::bytes("x"));
        if (i % 5 == 0 && registry.modify(*rx, token, Interest::readable, Trigger::level))
          ++failures;
        if (i % 2 == 0) {
          if (registry.remove(*rx)) ++failures;
        } else {
          rx.reset();  // destruction leaves the registry
        }
        // Every poll numbered above this began after the removal returned.
        removed_before_poll[index] = polls_begun.load();
        if (i % 3 == 0) std::this_thread::yield();
      }
      ++finished;
    });
  }

  Events events(16);  // small, so events wait in the kernel between polls
  std::size_t delivered = 0;
  int stale = 0, unknown = 0;
  const auto until = std::chrono::steady_clock::now() + 20 * kDeadline;
  while (finished.load() < kThreads && std::chrono::steady_clock::now() < until) {
    const std::uint64_t this_poll = polls_begun.fetch_add(1) + 1;
    ASSERT_FALSE(poll.poll(events, 10ms));
    for (const Event& e : events) {
      const auto value = static_cast<std::uint64_t>(e.token());
      if (value == 0 || value > kTokens || !added[value - 1].load()) {
        ++unknown;
        continue;
      }
      ++delivered;
      if (removed_before_poll[value - 1].load() < this_poll) ++stale;
    }
  }
  workers.wait();
  EXPECT_EQ(finished.load(), kThreads) << "the workers did not finish within the deadline";
  EXPECT_EQ(failures.load(), 0) << "add/modify/remove failed on a worker thread";
  EXPECT_EQ(unknown, 0) << "events with tokens never registered";
  EXPECT_EQ(stale, 0) << "events delivered by polls that began after their remove() returned";
  // Everything is removed now: any event is stale.
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(poll.poll(events, 20ms));
    EXPECT_TRUE(events.empty()) << events.size() << " events after every registration left";
  }
  RecordProperty("events_delivered", static_cast<int>(delivered));
}
#endif  // EVQ_POSIX

}  // namespace
}  // namespace evq
