// UDP: send_to/recv_from, connected send/recv, truncation, errors, hygiene.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <evq/evq.hpp>
#include <string>
#include <utility>

#include "support/net_helpers.hpp"
#include "support/wait.hpp"

namespace evq {
namespace {

using test::bytes;
using test::kDeadline;

constexpr Token kA{1};
constexpr Token kB{2};

UdpSocket bind_loopback(const SocketAddr& where = SocketAddr::loopback_v4(0)) {
  auto s = UdpSocket::bind(where);
  if (!s) {
    ADD_FAILURE() << "bind " << where.to_string() << ": " << s.error().message();
    std::abort();
  }
  return std::move(*s);
}

// Receives one datagram on `socket` (registered readable with `token`),
// waiting for events while it would block.
std::optional<std::pair<std::string, SocketAddr>> recv_one(Poll& poll, Token token,
                                                           UdpSocket& socket,
                                                           std::size_t room = 2048) {
  std::string buf(room, '\0');
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  for (;;) {
    auto r = socket.recv_from(test::buffer(buf));
    if (r) return std::pair(buf.substr(0, r->first), r->second);
    if (r.error() != std::errc::operation_would_block) {
      ADD_FAILURE() << "recv_from: " << r.error().message();
      return std::nullopt;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until || !test::wait_for(poll, token, test::any_event, until - now)) {
      ADD_FAILURE() << "no datagram";
      return std::nullopt;
    }
  }
}

TEST(Udp, SendToRecvFrom) {
  Poll poll = test::make_poll();
  UdpSocket a = bind_loopback();
  UdpSocket b = bind_loopback();
  const SocketAddr a_addr = *a.local_addr();
  const SocketAddr b_addr = *b.local_addr();
  EXPECT_NE(b_addr.port(), 0);
  ASSERT_FALSE(poll.registry().add(b, kB, Interest::readable));

  auto sent = a.send_to(bytes("ping"), b_addr);
  ASSERT_TRUE(sent) << sent.error().message();
  EXPECT_EQ(*sent, 4u);
  auto got = recv_one(poll, kB, b);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first, "ping");
  EXPECT_EQ(got->second, a_addr);
}

TEST(Udp, ReadableEventAfterWouldBlock) {
  // Edge: once an event was delivered, the registration fires again only
  // after a receive saw would-block (on poll(2): the socket's re-arm hook).
  Poll poll = test::make_poll();
  UdpSocket a = bind_loopback();
  UdpSocket b = bind_loopback();
  ASSERT_FALSE(poll.registry().add(b, kB, Interest::readable));
  std::string buf(64, '\0');
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(b.recv_from(test::buffer(buf)).error(), std::errc::operation_would_block);
    ASSERT_EQ(*a.send_to(bytes("again"), *b.local_addr()), 5u);
    ASSERT_TRUE(test::wait_readable(poll, kB)) << "round " << round;
    auto got = recv_one(poll, kB, b);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->first, "again");
  }
}

TEST(Udp, ConnectedSendRecv) {
  Poll poll = test::make_poll();
  UdpSocket a = bind_loopback();
  UdpSocket b = bind_loopback();
  ASSERT_FALSE(a.connect(*b.local_addr()));
  ASSERT_FALSE(b.connect(*a.local_addr()));
  EXPECT_EQ(*a.peer_addr(), *b.local_addr());
  ASSERT_FALSE(poll.registry().add(a, kA, Interest::readable));
  ASSERT_FALSE(poll.registry().add(b, kB, Interest::readable));

  ASSERT_EQ(*a.send(bytes("hello")), 5u);
  std::string buf(64, '\0');
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  for (;;) {
    auto r = b.recv(test::buffer(buf));
    if (r) {
      EXPECT_EQ(buf.substr(0, *r), "hello");
      break;
    }
    ASSERT_EQ(r.error(), std::errc::operation_would_block) << r.error().message();
    ASSERT_TRUE(
        test::wait_for(poll, kB, test::any_event, until - std::chrono::steady_clock::now()));
  }
  ASSERT_EQ(*b.send(bytes("back")), 4u);
  auto got = recv_one(poll, kA, a);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first, "back");
  EXPECT_EQ(got->second, *b.local_addr());
}

TEST(Udp, LongDatagramIsTruncated) {
  Poll poll = test::make_poll();
  UdpSocket a = bind_loopback();
  UdpSocket b = bind_loopback();
  ASSERT_FALSE(poll.registry().add(b, kB, Interest::readable));
  const std::string big(100, 'q');
  ASSERT_EQ(*a.send_to(bytes(big), *b.local_addr()), 100u);
  ASSERT_EQ(*a.send_to(bytes("next"), *b.local_addr()), 4u);

  auto got = recv_one(poll, kB, b, 10);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first, std::string(10, 'q'));
  // The rest of the long datagram is gone; the next one arrives whole.
  got = recv_one(poll, kB, b);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first, "next");
}

TEST(Udp, RecvWouldBlockWhenEmpty) {
  UdpSocket a = bind_loopback();
  std::array<std::byte, 8> buf;
  EXPECT_EQ(a.recv(buf).error(), std::errc::operation_would_block);
  EXPECT_EQ(a.recv_from(buf).error(), std::errc::operation_would_block);
}

TEST(Udp, UnconnectedHasNoPeerAndNoError) {
  UdpSocket a = bind_loopback();
  EXPECT_EQ(a.peer_addr().error(), std::errc::not_connected);
  EXPECT_FALSE(a.take_error());
}

TEST(Udp, Ipv6Loopback) {
  auto probe = UdpSocket::bind(SocketAddr::loopback_v6(0));
  if (!probe) GTEST_SKIP() << "no IPv6 loopback here: " << probe.error().message();
  Poll poll = test::make_poll();
  UdpSocket a = std::move(*probe);
  UdpSocket b = bind_loopback(SocketAddr::loopback_v6(0));
  ASSERT_FALSE(poll.registry().add(b, kB, Interest::readable));
  ASSERT_EQ(*a.send_to(bytes("v6"), *b.local_addr()), 2u);
  auto got = recv_one(poll, kB, b);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first, "v6");
  EXPECT_TRUE(got->second.is_ipv6());
  EXPECT_EQ(got->second, *a.local_addr());
}

TEST(Udp, MovedFromObjectsReportBadDescriptor) {
  UdpSocket a = bind_loopback();
  UdpSocket moved = std::move(a);
  std::array<std::byte, 8> buf;
  const SocketAddr to = *moved.local_addr();
  EXPECT_EQ(a.send(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(a.recv(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(a.send_to(buf, to).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(a.recv_from(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(a.connect(to), std::errc::bad_file_descriptor);
  EXPECT_EQ(a.local_addr().error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(a.peer_addr().error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(a.take_error(), std::errc::bad_file_descriptor);
}

#if EVQ_POSIX  // close-on-exec and O_NONBLOCK are fcntl flags
TEST(Udp, DescriptorsAreCloseOnExecAndNonBlocking) {
  UdpSocket a = bind_loopback();
  EVQ_EXPECT_FD_FLAGS(a);
}
#endif

TEST(Udp, NoDescriptorLeak) {
  const int before = test::count_open_fds();
  if (before < 0) GTEST_SKIP() << "cannot list open descriptors here";
  for (int i = 0; i < 20; ++i) {
    UdpSocket a = bind_loopback();
    EXPECT_FALSE(UdpSocket::bind(*a.local_addr()));  // in use: the error path closes
    ASSERT_EQ(*a.send_to(bytes("x"), *a.local_addr()), 1u);
  }
  EXPECT_EQ(test::count_open_fds(), before);
}

}  // namespace
}  // namespace evq
