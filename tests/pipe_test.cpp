// Pipes: read/write with events, end of stream, broken pipe, hygiene.
#include <gtest/gtest.h>

#include <array>
#include <csignal>
#include <evq/evq.hpp>
#include <string>
#include <utility>

#include "support/net_helpers.hpp"
#include "support/wait.hpp"

#if EVQ_POSIX  // the type under test exists on POSIX only

namespace evq {
namespace {

using test::bytes;

constexpr Token kSender{1};
constexpr Token kReceiver{2};

std::pair<PipeSender, PipeReceiver> make_pipe() {
  auto p = pipe();
  if (!p) {
    ADD_FAILURE() << "pipe: " << p.error().message();
    std::abort();
  }
  return std::move(*p);
}

// Ignores SIGPIPE for one scope.
class IgnoreSigpipe {
 public:
  IgnoreSigpipe() : old_(std::signal(SIGPIPE, SIG_IGN)) {}
  ~IgnoreSigpipe() { std::signal(SIGPIPE, old_); }
  IgnoreSigpipe(const IgnoreSigpipe&) = delete;
  IgnoreSigpipe& operator=(const IgnoreSigpipe&) = delete;

 private:
  void (*old_)(int);
};

TEST(Pipe, ReadWriteWithEvents) {
  Poll poll = test::make_poll();
  auto [tx, rx] = make_pipe();
  ASSERT_FALSE(poll.registry().add(rx, kReceiver, Interest::readable));
  ASSERT_FALSE(poll.registry().add(tx, kSender, Interest::writable));
  ASSERT_TRUE(test::wait_writable(poll, kSender));

  std::array<std::byte, 16> buf;
  for (int round = 0; round < 5; ++round) {
    // Would-block, then an event: the edge registration re-arms each time.
    EXPECT_EQ(rx.read(buf).error(), std::errc::operation_would_block);
    const std::string msg = "msg " + std::to_string(round);
    ASSERT_TRUE(test::write_all(poll, kSender, tx, bytes(msg)));
    ASSERT_TRUE(test::wait_readable(poll, kReceiver)) << "round " << round;
    EXPECT_EQ(test::read_exactly(poll, kReceiver, rx, msg.size()), msg);
  }
}

TEST(Pipe, EndOfStreamWhenSenderDropped) {
  Poll poll = test::make_poll();
  auto [tx, rx] = make_pipe();
  ASSERT_FALSE(poll.registry().add(rx, kReceiver, Interest::readable));
  ASSERT_EQ(*tx.write(bytes("last words")), 10u);
  { PipeSender gone = std::move(tx); }
  EXPECT_EQ(test::read_to_end(poll, kReceiver, rx), "last words");
  std::array<std::byte, 4> buf;
  auto r = rx.read(buf);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, 0u);
}

TEST(Pipe, ReceiverSeesReadClosed) {
  Poll poll = test::make_poll();
  auto [tx, rx] = make_pipe();
  // Level: the flag check must not depend on which event came first.
  ASSERT_FALSE(poll.registry().add(rx, kReceiver, Interest::readable, Trigger::level));
  { PipeSender gone = std::move(tx); }
  auto e = test::wait_for(poll, kReceiver, [](const Event& ev) { return ev.is_read_closed(); });
  EXPECT_TRUE(e) << "no read-closed event after the sender closed";
}

TEST(Pipe, BrokenPipeWithSigpipeIgnored) {
  IgnoreSigpipe ignore;
  auto [tx, rx] = make_pipe();
  { PipeReceiver gone = std::move(rx); }
  auto w = tx.write(bytes("nobody listens"));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error(), std::errc::broken_pipe) << w.error().message();
}

TEST(Pipe, WriteUntilWouldBlockThenWritable) {
  // One Poll per end, so that waiting on one never swallows the other's event.
  Poll writer = test::make_poll();
  Poll reader = test::make_poll();
  auto [tx, rx] = make_pipe();
  ASSERT_FALSE(writer.registry().add(tx, kSender, Interest::writable));
  ASSERT_FALSE(reader.registry().add(rx, kReceiver, Interest::readable));
  ASSERT_TRUE(test::wait_writable(writer, kSender));  // the first edge

  const std::string chunk(16 * 1024, 'p');
  for (int round = 0; round < 2; ++round) {
    std::size_t sent = 0;
    for (;;) {
      auto w = tx.write(bytes(chunk));
      if (!w) {
        ASSERT_EQ(w.error(), std::errc::operation_would_block) << w.error().message();
        break;
      }
      sent += *w;
      ASSERT_LT(sent, 64u * 1024 * 1024) << "pipe never filled";
    }
    const std::string got = test::read_exactly(reader, kReceiver, rx, sent);
    EXPECT_EQ(got.size(), sent);
    ASSERT_TRUE(test::wait_writable(writer, kSender)) << "round " << round;
  }
}

TEST(Pipe, DescriptorsAreCloseOnExecAndNonBlocking) {
  auto [tx, rx] = make_pipe();
  EVQ_EXPECT_FD_FLAGS(tx);
  EVQ_EXPECT_FD_FLAGS(rx);
}

TEST(Pipe, MovedFromObjectsReportBadDescriptor) {
  auto [tx, rx] = make_pipe();
  PipeSender tx2 = std::move(tx);
  PipeReceiver rx2 = std::move(rx);
  std::array<std::byte, 4> buf;
  EXPECT_EQ(tx.write(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(rx.read(buf).error(), std::errc::bad_file_descriptor);
  ASSERT_EQ(*tx2.write(bytes("ok")), 2u);
  EXPECT_EQ(*rx2.read(buf), 2u);
}

TEST(Pipe, NoDescriptorLeak) {
  Poll poll = test::make_poll();
  const int before = test::count_open_fds();
  if (before < 0) GTEST_SKIP() << "cannot list open descriptors here";
  for (int i = 0; i < 50; ++i) {
    auto [tx, rx] = make_pipe();
    ASSERT_FALSE(poll.registry().add(rx, kReceiver, Interest::readable));
    ASSERT_EQ(*tx.write(bytes("x")), 1u);
  }
  EXPECT_EQ(test::count_open_fds(), before);
}

}  // namespace
}  // namespace evq

#endif  // EVQ_POSIX
