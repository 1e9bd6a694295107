// tests/modify_test.cpp: Registry::modify between interests, between
// triggers, and to another token.
#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <utility>
#include <vector>

#include "support/io_helpers.hpp"
#include "support/wait.hpp"

namespace evq {
namespace {

using namespace std::chrono_literals;
using test::kDeadline;

constexpr auto kQuiet = 50ms;

// Waits until `token` was reported both readable and writable, in one event
// or in several (kqueue, for one, reports the two filters apart).
bool wait_readable_and_writable(Poll& poll, Token token) {
  bool r = false, w = false;
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  Events events(64);
  while (!(r && w)) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return false;
    if (auto ec = poll.poll(events, until - now)) {
      ADD_FAILURE() << "poll: " << ec.message();
      return false;
    }
    for (const Event& e : events) {
      if (e.token() != token) continue;
      r |= e.is_readable();
      w |= e.is_writable();
    }
  }
  return true;
}

// Level keeps the checks simple: a registration fires on every poll exactly
// while the source is ready for one of its interests.
TEST(ModifyInterest, ReadableToWritableToBothLevel) {
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  Poll poll = test::make_poll();
  const Token token{1};

  // Writable but with nothing to read: a readable-only registration is quiet.
  ASSERT_FALSE(poll.registry().add(a, token, Interest::readable, Trigger::level));
  EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet), 3)
      << "a readable-only registration fired on every poll of a socket with nothing to read";

  ASSERT_FALSE(poll.registry().modify(a, token, Interest::writable, Trigger::level));
  ASSERT_TRUE(test::wait_writable(poll, token)) << "modify to writable had no effect";
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(test::next_poll_has(poll, token, test::writable)) << i;

  // Back to readable: the writable interest must really be gone.
  ASSERT_FALSE(poll.registry().modify(a, token, Interest::readable, Trigger::level));
  EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet), 3)
      << "the writable interest survived modify to readable";
  ASSERT_TRUE(test::write_all(b, "x"));
  ASSERT_TRUE(test::wait_readable(poll, token));

  ASSERT_FALSE(poll.registry().modify(a, token, Interest::readable | Interest::writable,
                                      Trigger::level));
  EXPECT_TRUE(wait_readable_and_writable(poll, token));
  EXPECT_FALSE(poll.registry().remove(a));
}

// The same steps with edge triggering, where each event needs a rise of
// readiness: writability is made to rise by filling the send buffer and
// draining it from the peer.
TEST(ModifyInterest, ReadableToWritableToBothEdge) {
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  Poll poll = test::make_poll();
  const Token token{1}, peer{2};
  ASSERT_FALSE(poll.registry().add(a, token, Interest::readable, Trigger::edge));
  ASSERT_FALSE(poll.registry().add(b, peer, Interest::readable, Trigger::level));

  // Readable edge.
  ASSERT_TRUE(test::write_all(b, "r1"));
  ASSERT_TRUE(test::wait_readable(poll, token));
  EXPECT_EQ(test::read_until_would_block(a).bytes, 2u);

  // Fill a's send buffer while only readable is asked for, then ask for
  // writable: the drain by the peer must produce a writable edge.
  const auto filled = test::write_until_would_block(a);
  ASSERT_TRUE(filled.would_block) << filled.error.message();
  ASSERT_FALSE(poll.registry().modify(a, token, Interest::writable, Trigger::edge));
  bool writable_seen = false;
  std::size_t got = 0;
  while (got < filled.bytes) {
    std::vector<Event> others;
    ASSERT_TRUE(test::wait_for(poll, peer, test::readable, kDeadline, &others));
    for (const Event& e : others) writable_seen |= e.token() == token && e.is_writable();
    got += test::read_until_would_block(b).bytes;
  }
  if (!writable_seen) writable_seen = test::wait_writable(poll, token).has_value();
  EXPECT_TRUE(writable_seen) << "no writable edge after modify to writable";

  // Both: new data brings a readable edge, a refill and drain a writable one.
  ASSERT_FALSE(poll.registry().modify(a, token, Interest::readable | Interest::writable,
                                      Trigger::edge));
  ASSERT_TRUE(test::write_all(b, "r2"));
  ASSERT_TRUE(test::wait_readable(poll, token));
  EXPECT_EQ(test::read_until_would_block(a).bytes, 2u);
  const auto refilled = test::write_until_would_block(a);
  ASSERT_TRUE(refilled.would_block) << refilled.error.message();
  writable_seen = false;
  got = 0;
  while (got < refilled.bytes) {
    std::vector<Event> others;
    ASSERT_TRUE(test::wait_for(poll, peer, test::readable, kDeadline, &others));
    for (const Event& e : others) writable_seen |= e.token() == token && e.is_writable();
    got += test::read_until_would_block(b).bytes;
  }
  if (!writable_seen) writable_seen = test::wait_writable(poll, token).has_value();
  EXPECT_TRUE(writable_seen) << "no writable edge with readable|writable";
  EXPECT_FALSE(poll.registry().remove(a));
  EXPECT_FALSE(poll.registry().remove(b));
}

// level -> oneshot -> oneshot (re-arm) -> edge -> level, with data waiting.
TEST(ModifyTrigger, LevelOneshotEdgeLevel) {
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [tx, rx] = *pair;
  Poll poll = test::make_poll();
  const Token token{3};

  ASSERT_FALSE(poll.registry().add(rx, token, Interest::readable, Trigger::level));
  ASSERT_TRUE(test::write_all(tx, "abc"));
  ASSERT_TRUE(test::wait_readable(poll, token));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(test::next_poll_has(poll, token, test::readable));

  // Oneshot with data waiting: one event, then disarmed.
  ASSERT_FALSE(poll.registry().modify(rx, token, Interest::readable, Trigger::oneshot));
  ASSERT_TRUE(test::wait_readable(poll, token)) << "modify to oneshot did not arm it";
  EXPECT_EQ(test::polls_with_event(poll, token, 2, kQuiet), 0) << "level survived modify to oneshot";
  ASSERT_FALSE(poll.registry().modify(rx, token, Interest::readable, Trigger::oneshot));
  ASSERT_TRUE(test::wait_readable(poll, token)) << "modify did not re-arm the oneshot";
  EXPECT_EQ(test::polls_with_event(poll, token, 2, kQuiet), 0);

  // Edge: drain to would-block, then each new write is one rise.
  ASSERT_FALSE(poll.registry().modify(rx, token, Interest::readable, Trigger::edge));
  (void)test::polls_with_event(poll, token, 1, kQuiet);  // an event for the data at modify time may come
  EXPECT_EQ(test::read_until_would_block(rx).bytes, 3u);
  EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet), 3);
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(test::write_all(tx, "d"));
    ASSERT_TRUE(test::wait_readable(poll, token)) << "edge after modify, round " << round;
    EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet, test::readable), 3)
        << "oneshot or level survived modify to edge";
    EXPECT_EQ(test::read_until_would_block(rx).bytes, 1u);
  }

  // Back to level with data waiting: fires on every poll again.
  ASSERT_TRUE(test::write_all(tx, "e"));
  ASSERT_TRUE(test::wait_readable(poll, token));
  ASSERT_FALSE(poll.registry().modify(rx, token, Interest::readable, Trigger::level));
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(test::next_poll_has(poll, token, test::readable)) << "level after edge, poll " << i;
  EXPECT_EQ(test::read_until_would_block(rx).bytes, 1u);
  EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet), 3);
  EXPECT_FALSE(poll.registry().remove(rx));
}

// An edge event was delivered and the data left unread (no would-block, so an
// emulated edge stays disarmed); modify to level must report it again.
TEST(ModifyTrigger, EdgeToLevelWithUndrainedData) {
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [tx, rx] = *pair;
  Poll poll = test::make_poll();
  const Token token{4};
  ASSERT_FALSE(poll.registry().add(rx, token, Interest::readable, Trigger::edge));
  ASSERT_TRUE(test::write_all(tx, "undrained"));
  ASSERT_TRUE(test::wait_readable(poll, token));

  ASSERT_FALSE(poll.registry().modify(rx, token, Interest::readable, Trigger::level));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(test::next_poll_has(poll, token, test::readable)) << i;

  // And back to edge: the usual drain-then-rise cycle works.
  ASSERT_FALSE(poll.registry().modify(rx, token, Interest::readable, Trigger::edge));
  (void)test::polls_with_event(poll, token, 1, kQuiet);
  EXPECT_EQ(test::read_until_would_block(rx).bytes, 9u);
  ASSERT_TRUE(test::write_all(tx, "again"));
  EXPECT_TRUE(test::wait_readable(poll, token));
  EXPECT_FALSE(poll.registry().remove(rx));
}

// A new token given by modify is the one reported, also for readiness that
// was already pending when modify ran; the old token never shows again.
TEST(ModifyToken, NewTokenIsReported) {
  auto pair = test::connected_tcp_pair();
  ASSERT_TRUE(pair);
  auto& [tx, rx] = *pair;
  Poll poll = test::make_poll();
  const Token t1{11}, t2{12}, t3{13}, t4{14};

  ASSERT_FALSE(poll.registry().add(rx, t1, Interest::readable, Trigger::level));
  ASSERT_TRUE(test::write_all(tx, "pending"));
  ASSERT_TRUE(test::wait_readable(poll, t1));

  auto expect_only = [&](Token wanted, const std::vector<Token>& stale, const char* step) {
    std::vector<Event> others;
    const auto ev = test::wait_for(poll, wanted, test::readable, kDeadline, &others);
    EXPECT_TRUE(ev) << step << ": no event with the new token";
    for (const Event& e : others)
      for (Token old : stale)
        EXPECT_NE(e.token(), old) << step << ": an event with a replaced token";
    for (int i = 0; i < 2; ++i) {
      Events events(64);
      ASSERT_FALSE(poll.poll(events, kQuiet));
      for (const Event& e : events)
        for (Token old : stale) EXPECT_NE(e.token(), old) << step << ": an event with a replaced token";
    }
  };

  // Readiness pending in the kernel when the token changes.
  ASSERT_FALSE(poll.registry().modify(rx, t2, Interest::readable, Trigger::level));
  expect_only(t2, {t1}, "level");

  // Together with a change of trigger.
  ASSERT_FALSE(poll.registry().modify(rx, t3, Interest::readable, Trigger::oneshot));
  expect_only(t3, {t1, t2}, "oneshot");

  ASSERT_FALSE(poll.registry().modify(rx, t4, Interest::readable, Trigger::edge));
  (void)test::polls_with_event(poll, t4, 1, kQuiet);
  EXPECT_EQ(test::read_until_would_block(rx).bytes, 7u);
  ASSERT_TRUE(test::write_all(tx, "new"));
  expect_only(t4, {t1, t2, t3}, "edge");
  EXPECT_FALSE(poll.registry().remove(rx));
}

#if EVQ_POSIX
TEST(ModifyToken, NewTokenIsReportedForSourceFd) {
  Poll poll = test::make_poll();
  test::RawPipe pipe;
  SourceFd source(pipe.read_fd());
  const Token t1{21}, t2{22};
  ASSERT_FALSE(poll.registry().add(source, t1, Interest::readable, Trigger::level));
  ASSERT_TRUE(pipe.write("x"));
  ASSERT_TRUE(test::wait_readable(poll, t1));
  ASSERT_FALSE(poll.registry().modify(source, t2, Interest::readable, Trigger::level));
  for (int i = 0; i < 3; ++i) {
    Events events(64);
    ASSERT_FALSE(poll.poll(events, kDeadline));
    bool seen = false;
    for (const Event& e : events) {
      EXPECT_NE(e.token(), t1) << "an event with the replaced token";
      seen |= e.token() == t2;
    }
    EXPECT_TRUE(seen) << "poll " << i;
  }
  EXPECT_FALSE(poll.registry().remove(source));
}

// Backend-specific by design: poll(2) cannot give a raw descriptor an edge
// trigger (see trigger_test). A refused modify changes nothing: the old
// token and trigger stay in force.
TEST(ModifyTrigger, SourceFdToEdgeIsNativeOrRefusedWithoutChange) {
  Poll poll = test::make_poll();
  test::RawPipe pipe;
  SourceFd source(pipe.read_fd());
  const Token t1{31}, t2{32};
  ASSERT_FALSE(poll.registry().add(source, t1, Interest::readable, Trigger::level));
  ASSERT_TRUE(pipe.write("x"));
  ASSERT_TRUE(test::wait_readable(poll, t1));

  const std::error_code ec = poll.registry().modify(source, t2, Interest::readable, Trigger::edge);
  if (poll.backend() == Backend::poll) {
    EXPECT_EQ(ec, errc::trigger_unsupported) << ec.message();
    EXPECT_EQ(ec, std::errc::operation_not_supported) << ec.message();
    for (int i = 0; i < 3; ++i) {
      Events events(64);
      ASSERT_FALSE(poll.poll(events, kDeadline));
      bool seen = false;
      for (const Event& e : events) {
        EXPECT_NE(e.token(), t2) << "the refused modify changed the token";
        seen |= e.token() == t1 && e.is_readable();
      }
      EXPECT_TRUE(seen) << "the refused modify disturbed the level registration, poll " << i;
    }
  } else {
    ASSERT_FALSE(ec) << to_string(poll.backend()) << " has a native edge trigger: " << ec.message();
    (void)test::polls_with_event(poll, t2, 1, kQuiet);
    EXPECT_EQ(pipe.drain(), 1u);
    ASSERT_TRUE(pipe.write("y"));
    EXPECT_TRUE(test::wait_readable(poll, t2));
    EXPECT_LT(test::polls_with_event(poll, t2, 3, kQuiet, test::readable), 3);
  }
  EXPECT_FALSE(poll.registry().remove(source));
}
#endif  // EVQ_POSIX

}  // namespace
}  // namespace evq
