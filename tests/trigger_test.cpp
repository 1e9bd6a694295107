// tests/trigger_test.cpp: edge, level and oneshot semantics, on evq's own
// pipes and sockets (every trigger on every backend, emulated where the OS
// lacks one) and on a raw SourceFd (only the triggers the OS has).
//
// Edge tests always read or write until would-block before they expect the
// next event: that is the contract (poll.hpp), and on poll(2) it is what
// re-arms the emulated edge trigger. Spurious events may happen, so "fires
// once" is checked as "does not fire on every poll", never as "never again";
// only a disarmed oneshot registration is held to "no event at all".
#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <string_view>
#include <utility>
#include <vector>

#include "support/io_helpers.hpp"
#include "support/wait.hpp"

namespace evq {
namespace {

using namespace std::chrono_literals;
using test::kDeadline;

constexpr auto kQuiet = 50ms;  // one poll of a "nothing more should come" check

// Reads until `expected` bytes came, waiting for readability of `token` when
// the reader would block (TCP may split a message).
template <class Reader>
void read_exactly(Poll& poll, Reader& reader, Token token, std::size_t expected) {
  std::size_t got = 0;
  for (;;) {
    const auto drained = test::read_until_would_block(reader);
    ASSERT_FALSE(drained.error) << drained.error.message();
    ASSERT_FALSE(drained.eof);
    got += drained.bytes;
    ASSERT_LE(got, expected);
    if (got == expected) return;
    ASSERT_TRUE(test::wait_readable(poll, token)) << got << " of " << expected << " bytes";
  }
}

// Edge: one event per rise of readability; it does not repeat on every poll
// while data stays unread; after a drain to would-block, new data fires again.
template <class Writer, class Reader>
void check_edge_readable(Writer& writer, Reader& reader, bool default_trigger = false) {
  Poll poll = test::make_poll();
  const Token token{1};
  ASSERT_FALSE(default_trigger
                   ? poll.registry().add(reader, token, Interest::readable)
                   : poll.registry().add(reader, token, Interest::readable, Trigger::edge));
  // Nothing to read yet: an edge registration must not report readability
  // on every poll (level would not either; this guards against "always ready").
  EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet, test::readable), 3);

  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    ASSERT_TRUE(test::write_all(writer, "edge"));
    ASSERT_TRUE(test::wait_readable(poll, token));
    // Still readable, nothing drained: level would fire on each of these.
    EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet, test::readable), 3)
        << "an edge registration fired on every poll while data stayed unread";
    read_exactly(poll, reader, token, 4);
  }
  EXPECT_FALSE(poll.registry().remove(reader));
}

// Level: an event on every poll while data remains, none once drained.
template <class Writer, class Reader>
void check_level_readable(Writer& writer, Reader& reader) {
  Poll poll = test::make_poll();
  const Token token{2};
  ASSERT_FALSE(poll.registry().add(reader, token, Interest::readable, Trigger::level));
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    ASSERT_TRUE(test::write_all(writer, "level!"));
    ASSERT_TRUE(test::wait_readable(poll, token));
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(test::next_poll_has(poll, token, test::readable)) << "poll " << i;
    // Partly read: still ready, still firing.
    std::byte one[1];
    auto n = reader.read(one);
    ASSERT_TRUE(n) << n.error().message();
    ASSERT_EQ(*n, 1u);
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(test::next_poll_has(poll, token, test::readable)) << "after a partial read, poll " << i;
    read_exactly(poll, reader, token, 5);
    EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet, test::readable), 3)
        << "a level registration kept firing after the data was gone";
  }
  EXPECT_FALSE(poll.registry().remove(reader));
}

// Oneshot: one event, then nothing (not even for new data) until modify
// re-arms the registration.
template <class Writer, class Reader>
void check_oneshot_readable(Writer& writer, Reader& reader) {
  Poll poll = test::make_poll();
  const Token token{3};
  ASSERT_FALSE(poll.registry().add(reader, token, Interest::readable, Trigger::oneshot));
  ASSERT_TRUE(test::write_all(writer, "one"));
  ASSERT_TRUE(test::wait_readable(poll, token));
  // Disarmed: the API rules out any event here, so none is tolerated.
  EXPECT_EQ(test::polls_with_event(poll, token, 2, kQuiet), 0) << "fired while disarmed";
  read_exactly(poll, reader, token, 3);  // would-block must not re-arm a oneshot either
  ASSERT_TRUE(test::write_all(writer, "more"));
  EXPECT_EQ(test::polls_with_event(poll, token, 3, kQuiet), 0) << "new data fired a disarmed oneshot";

  for (int rearm = 0; rearm < 3; ++rearm) {
    SCOPED_TRACE(testing::Message() << "re-arm " << rearm);
    ASSERT_FALSE(poll.registry().modify(reader, token, Interest::readable, Trigger::oneshot));
    ASSERT_TRUE(test::wait_readable(poll, token)) << "modify did not re-arm the oneshot";
    EXPECT_EQ(test::polls_with_event(poll, token, 2, kQuiet), 0) << "fired while disarmed";
  }
  EXPECT_FALSE(poll.registry().remove(reader));
}

// Edge on writability: writable at first; after the send buffer filled up
// (write until would-block) and the peer drained it, writable fires again.
template <class Writer, class Reader>
void check_edge_writable(Writer& writer, Reader& reader) {
  Poll poll = test::make_poll();
  const Token wtoken{4}, rtoken{5};
  ASSERT_FALSE(poll.registry().add(writer, wtoken, Interest::writable, Trigger::edge));
  ASSERT_FALSE(poll.registry().add(reader, rtoken, Interest::readable, Trigger::level));
  ASSERT_TRUE(test::wait_writable(poll, wtoken));

  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    const auto filled = test::write_until_would_block(writer);
    ASSERT_FALSE(filled.error) << filled.error.message();
    ASSERT_TRUE(filled.would_block);
    ASSERT_GT(filled.bytes, 0u);

    // Drain it all. Writability rises somewhere on the way: collect the
    // writer's events seen meanwhile instead of losing them.
    bool writable_again = false;
    std::size_t got = 0;
    while (got < filled.bytes) {
      std::vector<Event> others;
      const auto ev = test::wait_for(poll, rtoken, test::readable, kDeadline, &others);
      for (const Event& e : others) writable_again |= e.token() == wtoken && e.is_writable();
      ASSERT_TRUE(ev) << got << " of " << filled.bytes << " bytes drained";
      const auto drained = test::read_until_would_block(reader);
      ASSERT_FALSE(drained.error) << drained.error.message();
      got += drained.bytes;
    }
    ASSERT_EQ(got, filled.bytes);
    if (!writable_again) writable_again = test::wait_writable(poll, wtoken).has_value();
    EXPECT_TRUE(writable_again) << "no writable edge after the buffer drained";
  }
  EXPECT_FALSE(poll.registry().remove(writer));
  EXPECT_FALSE(poll.registry().remove(reader));
}

// --- evq pipes (POSIX) ---------------------------------------------------

#if EVQ_POSIX
struct PipePair {
  PipeSender tx;
  PipeReceiver rx;
};

std::optional<PipePair> make_pipe() {
  auto p = evq::pipe();
  if (!p) {
    ADD_FAILURE() << "pipe: " << p.error().message();
    return std::nullopt;
  }
  return PipePair{std::move(p->first), std::move(p->second)};
}

std::optional<std::pair<UnixStream, UnixStream>> make_unix_pair() {
  auto p = UnixStream::pair();
  if (!p) {
    ADD_FAILURE() << "UnixStream::pair: " << p.error().message();
    return std::nullopt;
  }
  return std::move(*p);
}

TEST(EdgeTrigger, ReadablePipe) {
  auto p = make_pipe();
  ASSERT_TRUE(p);
  check_edge_readable(p->tx, p->rx);
}
TEST(EdgeTrigger, ReadableUnixStream) {
  auto p = make_unix_pair();
  ASSERT_TRUE(p);
  check_edge_readable(p->first, p->second);
}
TEST(EdgeTrigger, IsTheDefault) {
  auto p = make_pipe();
  ASSERT_TRUE(p);
  check_edge_readable(p->tx, p->rx, /*default_trigger=*/true);
}
TEST(EdgeTrigger, WritablePipe) {
  test::ignore_sigpipe();
  auto p = make_pipe();
  ASSERT_TRUE(p);
  check_edge_writable(p->tx, p->rx);
}
TEST(EdgeTrigger, WritableUnixStream) {
  auto p = make_unix_pair();
  ASSERT_TRUE(p);
  check_edge_writable(p->first, p->second);
}

TEST(LevelTrigger, ReadablePipe) {
  auto p = make_pipe();
  ASSERT_TRUE(p);
  check_level_readable(p->tx, p->rx);
}
TEST(LevelTrigger, ReadableUnixStream) {
  auto p = make_unix_pair();
  ASSERT_TRUE(p);
  check_level_readable(p->first, p->second);
}

TEST(OneshotTrigger, ReadablePipe) {
  auto p = make_pipe();
  ASSERT_TRUE(p);
  check_oneshot_readable(p->tx, p->rx);
}
TEST(OneshotTrigger, ReadableUnixStream) {
  auto p = make_unix_pair();
  ASSERT_TRUE(p);
  check_oneshot_readable(p->first, p->second);
}
#endif  // EVQ_POSIX

// --- TCP (every platform) --------------------------------------------------

TEST(EdgeTrigger, ReadableTcp) {
  auto p = test::connected_tcp_pair();
  ASSERT_TRUE(p);
  check_edge_readable(p->first, p->second);
}
TEST(EdgeTrigger, WritableTcp) {
  auto p = test::connected_tcp_pair();
  ASSERT_TRUE(p);
  check_edge_writable(p->first, p->second);
}
TEST(LevelTrigger, ReadableTcp) {
  auto p = test::connected_tcp_pair();
  ASSERT_TRUE(p);
  check_level_readable(p->first, p->second);
}
TEST(LevelTrigger, WritableTcpFiresWhileWritable) {
  auto p = test::connected_tcp_pair();
  ASSERT_TRUE(p);
  Poll poll = test::make_poll();
  const Token token{6};
  ASSERT_FALSE(poll.registry().add(p->first, token, Interest::writable, Trigger::level));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(test::next_poll_has(poll, token, test::writable)) << i;
  EXPECT_FALSE(poll.registry().remove(p->first));
}
TEST(OneshotTrigger, ReadableTcp) {
  auto p = test::connected_tcp_pair();
  ASSERT_TRUE(p);
  check_oneshot_readable(p->first, p->second);
}
TEST(OneshotTrigger, WritableTcpFiresOncePerArm) {
  auto p = test::connected_tcp_pair();
  ASSERT_TRUE(p);
  Poll poll = test::make_poll();
  const Token token{7};
  ASSERT_FALSE(poll.registry().add(p->first, token, Interest::writable, Trigger::oneshot));
  for (int arm = 0; arm < 3; ++arm) {
    ASSERT_TRUE(test::wait_writable(poll, token)) << "arm " << arm;
    // Still writable, but disarmed.
    EXPECT_EQ(test::polls_with_event(poll, token, 2, kQuiet), 0) << "arm " << arm;
    ASSERT_FALSE(poll.registry().modify(p->first, token, Interest::writable, Trigger::oneshot));
  }
  EXPECT_FALSE(poll.registry().remove(p->first));
}

// --- raw SourceFd (POSIX) --------------------------------------------------

#if EVQ_POSIX
TEST(SourceFdTrigger, LevelWorksOnEveryBackend) {
  Poll poll = test::make_poll();
  test::RawPipe pipe;
  SourceFd source(pipe.read_fd());
  const Token token{10};
  ASSERT_FALSE(poll.registry().add(source, token, Interest::readable, Trigger::level));
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    ASSERT_TRUE(pipe.write("raw"));
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(test::next_poll_has(poll, token, test::readable)) << i;
    EXPECT_EQ(pipe.drain(), 3u);
    EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet, test::readable), 3)
        << "kept firing after the data was gone";
  }
  // SourceFd has no link: remove it before the descriptor closes.
  EXPECT_FALSE(poll.registry().remove(source));
}

TEST(SourceFdTrigger, OneshotWorksOnEveryBackend) {
  Poll poll = test::make_poll();
  test::RawPipe pipe;
  SourceFd source(pipe.read_fd());
  const Token token{11};
  ASSERT_FALSE(poll.registry().add(source, token, Interest::readable, Trigger::oneshot));
  ASSERT_TRUE(pipe.write("raw"));
  ASSERT_TRUE(test::wait_readable(poll, token));
  EXPECT_EQ(test::polls_with_event(poll, token, 2, kQuiet), 0) << "fired while disarmed";
  EXPECT_EQ(pipe.drain(), 3u);
  ASSERT_TRUE(pipe.write("more"));
  EXPECT_EQ(test::polls_with_event(poll, token, 2, kQuiet), 0) << "new data fired a disarmed oneshot";
  for (int rearm = 0; rearm < 2; ++rearm) {
    ASSERT_FALSE(poll.registry().modify(source, token, Interest::readable, Trigger::oneshot));
    ASSERT_TRUE(test::wait_readable(poll, token)) << "re-arm " << rearm;
    EXPECT_EQ(test::polls_with_event(poll, token, 2, kQuiet), 0) << "re-arm " << rearm;
  }
  EXPECT_FALSE(poll.registry().remove(source));
}

// Backend-specific by design (poll.hpp, source.hpp): a raw descriptor has no
// would-block hook, so a backend without a native edge trigger cannot emulate
// one for it. poll(2) refuses; epoll, kqueue and io_uring have it natively.
TEST(SourceFdTrigger, EdgeIsNativeOrRefused) {
  Poll poll = test::make_poll();
  test::RawPipe pipe;
  SourceFd source(pipe.read_fd());
  const Token token{12};
  const std::error_code ec = poll.registry().add(source, token, Interest::readable, Trigger::edge);

  if (poll.backend() == Backend::poll) {
    EXPECT_EQ(ec, errc::trigger_unsupported) << ec.message();
    EXPECT_EQ(ec, std::errc::operation_not_supported) << ec.message();
    // The refused add left nothing behind: the same source registers with a
    // trigger poll(2) has.
    ASSERT_FALSE(poll.registry().add(source, token, Interest::readable, Trigger::level));
    ASSERT_TRUE(pipe.write("x"));
    EXPECT_TRUE(test::wait_readable(poll, token));
    EXPECT_FALSE(poll.registry().remove(source));
    return;
  }

  ASSERT_FALSE(ec) << to_string(poll.backend()) << " has a native edge trigger: " << ec.message();
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    ASSERT_TRUE(pipe.write("edge"));
    ASSERT_TRUE(test::wait_readable(poll, token));
    EXPECT_LT(test::polls_with_event(poll, token, 3, kQuiet, test::readable), 3)
        << "an edge registration fired on every poll while data stayed unread";
    EXPECT_EQ(pipe.drain(), 4u);
  }
  EXPECT_FALSE(poll.registry().remove(source));
}
#endif  // EVQ_POSIX

}  // namespace
}  // namespace evq
