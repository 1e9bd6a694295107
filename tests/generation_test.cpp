// tests/generation_test.cpp: token generations (DESIGN.md "no stale
// events"). Under traffic, a registration is removed, its socket closed, a new
// socket opened (the kernel hands out the same descriptor number at once) and
// registered with a new token; no poll that began after remove() returned may
// deliver the old token. Completion-style backends (io_uring, IOCP) and
// poll(2) keep old readiness around the longest, so this is where stale or
// misdirected events would show.
#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "support/fd_count.hpp"
#include "support/io_helpers.hpp"
#include "support/thread_group.hpp"
#include "support/wait.hpp"

namespace evq {
namespace {

using namespace std::chrono_literals;
using test::kDeadline;

#if EVQ_POSIX
constexpr int kPairs = 16;
constexpr auto kBoth = Interest::readable | Interest::writable;

// One socket pair with both ends registered, and the tokens they carry.
struct Slot {
  std::optional<UnixStream> a, b;
  Token token_a{}, token_b{};
};

class TokenSource {
 public:
  explicit TokenSource(std::size_t capacity) : live_(capacity + 1, false) {}
  Token next() {
    const std::uint64_t v = ++last_;
    live_.at(v) = true;
    return Token{v};
  }
  void retire(Token t) { live_.at(static_cast<std::uint64_t>(t)) = false; }
  bool live(Token t) const {
    const auto v = static_cast<std::uint64_t>(t);
    return v < live_.size() && live_[v];
  }

 private:
  std::uint64_t last_ = 0;
  std::vector<bool> live_;
};

// Opens a pair, registers both ends with fresh tokens and puts a byte in
// each direction so that both are readable as well as writable.
void open_slot(Registry& registry, Slot& slot, TokenSource& tokens, Trigger trigger) {
  auto pair = UnixStream::pair();
  ASSERT_TRUE(pair) << pair.error().message();
  slot.a.emplace(std::move(pair->first));
  slot.b.emplace(std::move(pair->second));
  slot.token_a = tokens.next();
  slot.token_b = tokens.next();
  ASSERT_FALSE(registry.add(*slot.a, slot.token_a, kBoth, trigger));
  ASSERT_FALSE(registry.add(*slot.b, slot.token_b, kBoth, trigger));
  ASSERT_TRUE(test::write_all(*slot.a, "a"));
  ASSERT_TRUE(test::write_all(*slot.b, "b"));
}

void run_single_threaded(Trigger trigger, int iterations);

void check_single_threaded(Trigger trigger) {
  constexpr int kIterations = 3000;
  const int fds_before = test::list_open_fds().count;
  run_single_threaded(trigger, kIterations);
  // 6,000 sockets opened and closed, 12,000 registrations: none may linger.
  EXPECT_EQ(test::list_open_fds().count, fds_before) << "descriptors leaked";
}

void run_single_threaded(Trigger trigger, int iterations) {
  Poll poll = test::make_poll();
  Registry& registry = poll.registry();
  TokenSource tokens(2 * static_cast<std::size_t>(kPairs + iterations));
  std::vector<Slot> slots(kPairs);
  for (Slot& slot : slots) {
    open_slot(registry, slot, tokens, trigger);
    if (testing::Test::HasFatalFailure()) return;
  }

  // Small on purpose: most ready events stay queued in the kernel (or in a
  // completion ring) from one poll to the next, across the removals.
  Events events(4);
  int reused = 0, stale = 0;
  std::size_t delivered = 0;
  auto check_poll = [&] {
    ASSERT_FALSE(poll.poll(events, 0ns));
    for (const Event& e : events) {
      ++delivered;
      if (!tokens.live(e.token())) ++stale;
    }
  };

  for (int i = 0; i < iterations; ++i) {
    Slot& slot = slots[static_cast<std::size_t>(i * 7) % kPairs];
    check_poll();
    // Traffic on another pair: new readiness while this one goes away.
    Slot& busy = slots[static_cast<std::size_t>(i * 7 + 3) % kPairs];
    (void)busy.a->write(test::bytes("t"));

    const int old_numbers[2] = {slot.a->native_handle(), slot.b->native_handle()};
    ASSERT_FALSE(registry.remove(*slot.a)) << i;
    ASSERT_FALSE(registry.remove(*slot.b)) << i;
    tokens.retire(slot.token_a);
    tokens.retire(slot.token_b);
    if (i % 2) check_poll();  // sometimes a poll between remove and reuse
    slot.a.reset();
    slot.b.reset();
    open_slot(registry, slot, tokens, trigger);
    if (testing::Test::HasFatalFailure()) return;
    const int new_numbers[2] = {slot.a->native_handle(), slot.b->native_handle()};
    if ((new_numbers[0] == old_numbers[0] && new_numbers[1] == old_numbers[1]) ||
        (new_numbers[0] == old_numbers[1] && new_numbers[1] == old_numbers[0]))
      ++reused;
    // Keep the buffers from filling: edge/oneshot registrations need a read
    // to would-block before they fire again, and that is traffic too.
    if (i % 4 == 0) {
      (void)test::read_until_would_block(*busy.b);
      if (trigger == Trigger::oneshot) {
        ASSERT_FALSE(registry.modify(*busy.b, busy.token_b, kBoth, Trigger::oneshot));
      }
    }
  }
  for (int i = 0; i < 10; ++i) check_poll();

  EXPECT_EQ(stale, 0) << "events carried tokens removed before the poll began";
  EXPECT_GT(delivered, 0u);
  // The scenario under test needs the numbers to come back at once; the
  // kernel gives out the lowest free ones, which these are.
  EXPECT_GE(reused, iterations / 2) << "descriptor numbers were not reused: the test proves less";
}

TEST(Generations, NoStaleEventAfterRemoveLevel) { check_single_threaded(Trigger::level); }
TEST(Generations, NoStaleEventAfterRemoveEdge) { check_single_threaded(Trigger::edge); }
TEST(Generations, NoStaleEventAfterRemoveOneshot) { check_single_threaded(Trigger::oneshot); }

// The same churn on a second thread while the main thread polls without
// pause. A poll is numbered before it begins; the mutator records, after
// remove() returned, how many polls had begun; an event of that registration
// in a poll numbered higher is stale.
void run_remove_on_other_thread(Trigger trigger);

void check_remove_on_other_thread(Trigger trigger) {
  const int fds_before = test::list_open_fds().count;
  run_remove_on_other_thread(trigger);
  EXPECT_EQ(test::list_open_fds().count, fds_before) << "descriptors leaked";
}

void run_remove_on_other_thread(Trigger trigger) {
  constexpr int kIterations = 2000;
  constexpr std::uint64_t kNotRemoved = ~std::uint64_t{0};
  constexpr std::size_t kTokens = 2 * (kPairs + kIterations) + 1;

  Poll poll = test::make_poll();
  Registry& registry = poll.registry();
  auto added = std::make_unique<std::atomic<bool>[]>(kTokens);
  auto removed_before_poll = std::make_unique<std::atomic<std::uint64_t>[]>(kTokens);
  for (std::size_t i = 0; i < kTokens; ++i) {
    added[i] = false;
    removed_before_poll[i] = kNotRemoved;
  }
  std::atomic<std::uint64_t> polls_begun{0};
  std::atomic<bool> done{false};
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  int reused = 0;

  test::ThreadGroup mutator(stop);
  mutator.spawn([&] {
    std::uint64_t last_token = 0;
    std::vector<Slot> slots(kPairs);
    auto open = [&](Slot& slot) {
      auto pair = UnixStream::pair();
      if (!pair) return false;
      slot.a.emplace(std::move(pair->first));
      slot.b.emplace(std::move(pair->second));
      slot.token_a = Token{++last_token};
      slot.token_b = Token{++last_token};
      added[static_cast<std::uint64_t>(slot.token_a)] = true;
      added[static_cast<std::uint64_t>(slot.token_b)] = true;
      if (registry.add(*slot.a, slot.token_a, kBoth, trigger)) return false;
      if (registry.add(*slot.b, slot.token_b, kBoth, trigger)) return false;
      (void)slot.a->write(test::bytes("a"));
      (void)slot.b->write(test::bytes("b"));
      return true;
    };
    for (Slot& slot : slots)
      if (!open(slot)) ++failures;
    for (int i = 0; i < kIterations && !stop.load() && failures.load() == 0; ++i) {
      Slot& slot = slots[static_cast<std::size_t>(i * 5) % kPairs];
      Slot& busy = slots[static_cast<std::size_t>(i * 5 + 2) % kPairs];
      (void)busy.a->write(test::bytes("t"));
      const int old_numbers[2] = {slot.a->native_handle(), slot.b->native_handle()};
      if (registry.remove(*slot.a) || registry.remove(*slot.b)) ++failures;
      const std::uint64_t begun = polls_begun.load();
      removed_before_poll[static_cast<std::uint64_t>(slot.token_a)] = begun;
      removed_before_poll[static_cast<std::uint64_t>(slot.token_b)] = begun;
      slot.a.reset();
      slot.b.reset();
      if (!open(slot)) ++failures;
      if ((slot.a->native_handle() == old_numbers[0] && slot.b->native_handle() == old_numbers[1]) ||
          (slot.a->native_handle() == old_numbers[1] && slot.b->native_handle() == old_numbers[0]))
        ++reused;
      if (i % 4 == 0) {
        (void)test::read_until_would_block(*busy.b);
        if (trigger == Trigger::oneshot &&
            registry.modify(*busy.b, busy.token_b, kBoth, Trigger::oneshot))
          ++failures;
      }
    }
    // Remove the rest before the poller stops, so that its last polls see
    // removals too.
    for (Slot& slot : slots) {
      if (!slot.a) continue;
      if (registry.remove(*slot.a) || registry.remove(*slot.b)) ++failures;
      const std::uint64_t begun = polls_begun.load();
      removed_before_poll[static_cast<std::uint64_t>(slot.token_a)] = begun;
      removed_before_poll[static_cast<std::uint64_t>(slot.token_b)] = begun;
    }
    done = true;
  });

  Events events(4);
  int stale = 0, unknown = 0;
  std::size_t delivered = 0;
  const auto until = std::chrono::steady_clock::now() + 20 * kDeadline;
  bool last_round = false;
  while (!last_round && std::chrono::steady_clock::now() < until) {
    last_round = done.load();  // one more poll after the mutator finished
    const std::uint64_t this_poll = polls_begun.fetch_add(1) + 1;
    ASSERT_FALSE(poll.poll(events, 5ms));
    for (const Event& e : events) {
      const auto value = static_cast<std::uint64_t>(e.token());
      if (value == 0 || value >= kTokens || !added[value].load()) {
        ++unknown;
        continue;
      }
      ++delivered;
      if (removed_before_poll[value].load() < this_poll) ++stale;
    }
  }
  mutator.wait();
  EXPECT_TRUE(done.load()) << "the mutator did not finish within the deadline";
  EXPECT_EQ(failures.load(), 0) << "pair/add/remove/modify failed on the mutator thread";
  EXPECT_EQ(unknown, 0) << "events with tokens never registered";
  EXPECT_EQ(stale, 0) << "events delivered by polls that began after their remove() returned";
  EXPECT_GT(delivered, 0u);
  EXPECT_GE(reused, kIterations / 2) << "descriptor numbers were not reused: the test proves less";
}

TEST(Generations, NoStaleEventWhenRemovedOnAnotherThreadLevel) {
  check_remove_on_other_thread(Trigger::level);
}
TEST(Generations, NoStaleEventWhenRemovedOnAnotherThreadEdge) {
  check_remove_on_other_thread(Trigger::edge);
}
#endif  // EVQ_POSIX

}  // namespace
}  // namespace evq
