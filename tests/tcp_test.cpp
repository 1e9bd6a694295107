// TCP: connect/accept/read/write with events, vectored I/O, half-close,
// reset, refused connects, options, errors, descriptor hygiene.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <evq/evq.hpp>
#include <string>
#include <vector>

#include "support/net_helpers.hpp"
#include "support/wait.hpp"

namespace evq {
namespace {

using namespace std::chrono_literals;
using test::bytes;
using test::kDeadline;

constexpr Token kListener{1};
constexpr Token kClient{2};
constexpr Token kServer{3};

TEST(Tcp, ConnectAcceptReadWriteWithEvents) {
  Poll poll = test::make_poll();
  auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
  ASSERT_TRUE(listener) << listener.error().message();
  auto addr = listener->local_addr();
  ASSERT_TRUE(addr);
  EXPECT_TRUE(addr->is_ipv4());
  EXPECT_NE(addr->port(), 0);
  ASSERT_FALSE(poll.registry().add(*listener, kListener, Interest::readable));

  auto client = TcpStream::connect(*addr);
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_FALSE(poll.registry().add(*client, kClient, Interest::readable | Interest::writable));

  // The connect completes: the client turns writable with no error.
  ASSERT_TRUE(test::wait_writable(poll, kClient));
  EXPECT_FALSE(client->take_error());
  auto peer = client->peer_addr();
  ASSERT_TRUE(peer) << peer.error().message();
  EXPECT_EQ(*peer, *addr);

  // The listener turns readable: accept until would-block (edge).
  std::optional<TcpStream> server;
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (!server) {
    auto accepted = listener->accept();
    if (accepted) {
      EXPECT_EQ(accepted->second, *client->local_addr());
      server.emplace(std::move(accepted->first));
      break;
    }
    ASSERT_EQ(accepted.error(), std::errc::operation_would_block) << accepted.error().message();
    ASSERT_TRUE(test::wait_readable(poll, kListener, until - std::chrono::steady_clock::now()));
  }
  EXPECT_EQ(*server->peer_addr(), *client->local_addr());
  EXPECT_EQ(*server->local_addr(), *addr);
  ASSERT_FALSE(poll.registry().add(*server, kServer, Interest::readable | Interest::writable));

  ASSERT_TRUE(test::write_all(poll, kClient, *client, bytes("hello")));
  EXPECT_EQ(test::read_exactly(poll, kServer, *server, 5), "hello");
  ASSERT_TRUE(test::write_all(poll, kServer, *server, bytes("world!")));
  EXPECT_EQ(test::read_exactly(poll, kClient, *client, 6), "world!");

  // Nothing more: the next read would block.
  std::array<std::byte, 16> buf;
  auto r = server->read(buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::operation_would_block);
}

TEST(Tcp, ReadableEventAfterWouldBlock) {
  // Edge: once an event was delivered, the registration fires again only
  // after a read saw would-block (on poll(2): the socket's re-arm hook).
  Poll poll = test::make_poll();
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  ASSERT_FALSE(poll.registry().add(pair->server, kServer, Interest::readable));
  for (int round = 0; round < 5; ++round) {
    std::array<std::byte, 64> buf;
    auto r = pair->server.read(buf);
    ASSERT_FALSE(r);
    ASSERT_EQ(r.error(), std::errc::operation_would_block);
    const std::string msg = "round " + std::to_string(round);
    ASSERT_EQ(*pair->client.write(bytes(msg)), msg.size());
    ASSERT_TRUE(test::wait_readable(poll, kServer)) << "round " << round;
    EXPECT_EQ(test::read_exactly(poll, kServer, pair->server, msg.size()), msg);
  }
}

TEST(Tcp, AcceptEventAfterWouldBlock) {
  Poll poll = test::make_poll();
  auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
  ASSERT_TRUE(listener);
  ASSERT_FALSE(poll.registry().add(*listener, kListener, Interest::readable));
  std::vector<TcpStream> keep;
  for (int round = 0; round < 3; ++round) {
    auto none = listener->accept();
    ASSERT_FALSE(none);
    ASSERT_EQ(none.error(), std::errc::operation_would_block);
    auto client = TcpStream::connect(*listener->local_addr());
    ASSERT_TRUE(client);
    keep.push_back(std::move(*client));
    ASSERT_TRUE(test::wait_readable(poll, kListener)) << "round " << round;
    auto accepted = listener->accept();
    ASSERT_TRUE(accepted) << accepted.error().message();
    keep.push_back(std::move(accepted->first));
  }
}

TEST(Tcp, AcceptWouldBlockWhenNothingPending) {
  auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
  ASSERT_TRUE(listener);
  auto r = listener->accept();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::operation_would_block);
}

TEST(Tcp, BindAddressInUse) {
  auto first = TcpListener::bind(SocketAddr::loopback_v4(0));
  ASSERT_TRUE(first);
  auto second = TcpListener::bind(*first->local_addr());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), std::errc::address_in_use);
}

TEST(Tcp, VectoredIo) {
  Poll poll = test::make_poll();
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  ASSERT_FALSE(poll.registry().add(pair->server, kServer, Interest::readable));

  const std::string a = "ab", b = "cde", c = "fghij";
  const IoSlice out[] = {bytes(a), bytes(b), bytes(c)};
  auto w = pair->client.write_vectored(out);
  ASSERT_TRUE(w) << w.error().message();
  ASSERT_EQ(*w, 10u);

  std::string got;
  std::string first(4, '\0'), second(16, '\0');
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (got.size() < 10) {
    const IoSliceMut in[] = {test::buffer(first), test::buffer(second)};
    auto r = pair->server.read_vectored(in);
    if (!r) {
      ASSERT_EQ(r.error(), std::errc::operation_would_block) << r.error().message();
      ASSERT_TRUE(
          test::wait_for(poll, kServer, test::any_event, until - std::chrono::steady_clock::now()));
      continue;
    }
    ASSERT_GT(*r, 0u);
    got += first.substr(0, std::min<std::size_t>(*r, 4));
    if (*r > 4) got += second.substr(0, *r - 4);
  }
  EXPECT_EQ(got, "abcdefghij");
}

TEST(Tcp, VectoredWritePassesAtMost64Slices) {
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  const std::string one = "x";
  std::vector<IoSlice> slices(100, bytes(one));
  auto w = pair->client.write_vectored(slices);
  ASSERT_TRUE(w) << w.error().message();
  EXPECT_EQ(*w, 64u);
}

TEST(Tcp, PeekDoesNotConsume) {
  Poll poll = test::make_poll();
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  ASSERT_FALSE(poll.registry().add(pair->server, kServer, Interest::readable, Trigger::level));
  ASSERT_EQ(*pair->client.write(bytes("peek")), 4u);
  ASSERT_TRUE(test::wait_readable(poll, kServer));
  std::string buf(4, '\0');
  auto p = pair->server.peek(test::buffer(buf));
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_GT(*p, 0u);
  EXPECT_EQ(buf.substr(0, *p), std::string("peek").substr(0, *p));
  EXPECT_EQ(test::read_exactly(poll, kServer, pair->server, 4), "peek");
}

TEST(Tcp, HalfCloseIsReadClosedAndCanStillWriteBack) {
  Poll poll = test::make_poll();
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  // Level: the flag check below must not depend on which event came first.
  ASSERT_FALSE(poll.registry().add(pair->server, kServer, Interest::readable, Trigger::level));
  ASSERT_FALSE(poll.registry().add(pair->client, kClient, Interest::readable));

  ASSERT_FALSE(pair->client.shutdown(Shutdown::write));
  auto e = test::wait_for(poll, kServer, [](const Event& ev) { return ev.is_read_closed(); });
  ASSERT_TRUE(e) << "no read-closed event";
  EXPECT_FALSE(e->is_error());

  std::array<std::byte, 16> buf;
  auto r = pair->server.read(buf);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, 0u);

  // The other direction still works.
  ASSERT_EQ(*pair->server.write(bytes("bye")), 3u);
  EXPECT_EQ(test::read_exactly(poll, kClient, pair->client, 3), "bye");
  ASSERT_FALSE(pair->server.shutdown(Shutdown::write));
  EXPECT_EQ(test::read_to_end(poll, kClient, pair->client), "");
}

TEST(Tcp, ResetByPeer) {
  Poll poll = test::make_poll();
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  ASSERT_FALSE(poll.registry().add(pair->server, kServer, Interest::readable, Trigger::level));

  ASSERT_FALSE(pair->client.set_linger(0s));
  { TcpStream gone = std::move(pair->client); }  // closes with RST

  auto e = test::wait_for(poll, kServer,
                          [](const Event& ev) { return ev.is_error() || ev.is_read_closed(); });
  ASSERT_TRUE(e) << "no error or read-closed event after reset";
  std::array<std::byte, 16> buf;
  auto r = pair->server.read(buf);
  if (r) {
    EXPECT_EQ(*r, 0u);
  } else {
    EXPECT_EQ(r.error(), std::errc::connection_reset) << r.error().message();
  }
}

TEST(Tcp, ConnectRefused) {
  Poll poll = test::make_poll();
  SocketAddr addr;
  {
    auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
    ASSERT_TRUE(listener);
    addr = *listener->local_addr();
  }  // closed: nothing listens on addr now

  auto client = TcpStream::connect(addr);
  if (!client) {  // some kernels refuse a loopback connect at once
    EXPECT_EQ(client.error(), std::errc::connection_refused) << client.error().message();
    return;
  }
  ASSERT_FALSE(poll.registry().add(*client, kClient, Interest::writable, Trigger::level));
  std::error_code err;
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (!err) {
    auto e = test::wait_for(
        poll, kClient, [](const Event& ev) { return ev.is_writable() || ev.is_error(); },
        until - std::chrono::steady_clock::now());
    ASSERT_TRUE(e) << "connect never finished";
    err = client->take_error();  // empty on a spurious event: still connecting
  }
  EXPECT_EQ(err, std::errc::connection_refused) << err.message();
#if EVQ_POSIX  // Winsock keeps a failed connect's SO_ERROR after it is read
  EXPECT_FALSE(client->take_error()) << "take_error clears the error";
#endif
}

TEST(Tcp, NodelayRoundTrip) {
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  ASSERT_FALSE(pair->client.set_nodelay(true));
  auto on = pair->client.nodelay();
  ASSERT_TRUE(on);
  EXPECT_TRUE(*on);
  ASSERT_FALSE(pair->client.set_nodelay(false));
  auto off = pair->client.nodelay();
  ASSERT_TRUE(off);
  EXPECT_FALSE(*off);
}

TEST(Tcp, LingerSetAndClear) {
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  EXPECT_FALSE(pair->client.set_linger(5s));
  EXPECT_FALSE(pair->client.set_linger(std::nullopt));
  EXPECT_EQ(pair->client.set_linger(-1s), std::errc::invalid_argument);
}

TEST(Tcp, TakeErrorEmptyOnGoodSocket) {
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  EXPECT_FALSE(pair->client.take_error());
  EXPECT_FALSE(pair->server.take_error());
}

TEST(Tcp, WriteToClosedPeerFailsWithoutSigpipe) {
  // Default SIGPIPE disposition kills the process: MSG_NOSIGNAL must hold.
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  { TcpStream gone = std::move(pair->server); }
  Poll poll = test::make_poll();
  ASSERT_FALSE(poll.registry().add(pair->client, kClient, Interest::readable, Trigger::level));
  std::error_code err;
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (!err && std::chrono::steady_clock::now() < until) {
    auto w = pair->client.write(bytes("ping"));
    if (!w)
      err = w.error();
    else
      test::got_event(poll, kClient, 10ms);  // let the peer's RST arrive
  }
  ASSERT_TRUE(err) << "writes to a closed peer kept succeeding";
  EXPECT_TRUE(err == std::errc::broken_pipe || err == std::errc::connection_reset) << err.message();
}

TEST(Tcp, WriteUntilWouldBlockThenWritable) {
  // One Poll per side, so that waiting on one never swallows the other's
  // edge event.
  Poll writer = test::make_poll();
  Poll reader = test::make_poll();
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  ASSERT_FALSE(writer.registry().add(pair->client, kClient, Interest::writable));
  ASSERT_FALSE(reader.registry().add(pair->server, kServer, Interest::readable));
  ASSERT_TRUE(test::wait_writable(writer, kClient));  // the first edge: room to write

  const std::string chunk(64 * 1024, 'z');
  for (int round = 0; round < 2; ++round) {
    std::size_t sent = 0;
    for (;;) {
      auto w = pair->client.write(bytes(chunk));
      if (!w) {
        ASSERT_EQ(w.error(), std::errc::operation_would_block) << w.error().message();
        break;
      }
      sent += *w;
      ASSERT_LT(sent, 256u * 1024 * 1024) << "socket buffer never filled";
    }
    const std::string got = test::read_exactly(reader, kServer, pair->server, sent);
    EXPECT_EQ(got.size(), sent);
    EXPECT_EQ(got.find_first_not_of('z'), std::string::npos);
    // Room again: the edge registration fires writable after the would-block.
    ASSERT_TRUE(test::wait_writable(writer, kClient)) << "round " << round;
  }
}

TEST(Tcp, MovedFromObjectsReportBadDescriptor) {
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  TcpStream moved = std::move(pair->client);
  TcpStream& dead = pair->client;
  std::array<std::byte, 8> buf;
  const IoSliceMut in[] = {buf};
  const IoSlice out[] = {std::span<const std::byte>(buf)};
  EXPECT_EQ(dead.read(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.write(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.read_vectored(in).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.write_vectored(out).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.peek(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.shutdown(Shutdown::both), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.set_nodelay(true), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.nodelay().error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.set_linger(0s), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.peer_addr().error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.local_addr().error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.take_error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.native_handle(), invalid_handle);

  // The moved-to object works.
  auto w = moved.write(bytes("x"));
  EXPECT_TRUE(w) << w.error().message();

  auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
  ASSERT_TRUE(listener);
  TcpListener moved_listener = std::move(*listener);
  EXPECT_EQ(listener->accept().error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(listener->local_addr().error(), std::errc::bad_file_descriptor);
  EXPECT_TRUE(moved_listener.local_addr());
}

TEST(Tcp, Ipv6Loopback) {
  {
    auto probe = TcpListener::bind(SocketAddr::loopback_v6(0));
    if (!probe) GTEST_SKIP() << "no IPv6 loopback here: " << probe.error().message();
  }

  Poll poll = test::make_poll();
  auto pair = test::tcp_pair(SocketAddr::loopback_v6(0));
  ASSERT_TRUE(pair);
  auto local = pair->client.local_addr();
  ASSERT_TRUE(local);
  EXPECT_TRUE(local->is_ipv6());
  EXPECT_EQ(local->to_string().rfind("[::1]:", 0), 0u) << local->to_string();
  auto peer = pair->server.peer_addr();
  ASSERT_TRUE(peer);
  EXPECT_EQ(*peer, *local);

  ASSERT_FALSE(poll.registry().add(pair->server, kServer, Interest::readable));
  ASSERT_EQ(*pair->client.write(bytes("six")), 3u);
  EXPECT_EQ(test::read_exactly(poll, kServer, pair->server, 3), "six");
}

TEST(Tcp, Ipv6ListenerIsIpv6Only) {
  auto v6 = TcpListener::bind(SocketAddr::parse("[::]:0").value());
  if (!v6) GTEST_SKIP() << "no IPv6 here: " << v6.error().message();
  // With IPV6_V6ONLY the IPv4 wildcard on the same port is still free.
  auto v4 = TcpListener::bind(SocketAddr::v4({0, 0, 0, 0}, v6->local_addr()->port()));
  EXPECT_TRUE(v4) << v4.error().message();
}

#if EVQ_POSIX  // close-on-exec and O_NONBLOCK are fcntl flags
TEST(Tcp, DescriptorsAreCloseOnExecAndNonBlocking) {
  auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
  ASSERT_TRUE(listener);
  EVQ_EXPECT_FD_FLAGS(*listener);
  auto pair = test::tcp_pair();
  ASSERT_TRUE(pair);
  EVQ_EXPECT_FD_FLAGS(pair->client);
  EVQ_EXPECT_FD_FLAGS(pair->server);  // accepted
}
#endif

TEST(Tcp, NoDescriptorLeak) {
  Poll poll = test::make_poll();
  const int before = test::count_open_fds();
  if (before < 0) GTEST_SKIP() << "cannot list open descriptors here";
  for (int i = 0; i < 20; ++i) {
    auto pair = test::tcp_pair();
    ASSERT_TRUE(pair);
    ASSERT_FALSE(poll.registry().add(pair->server, kServer, Interest::readable));
    ASSERT_EQ(*pair->client.write(bytes("x")), 1u);
    EXPECT_EQ(test::read_exactly(poll, kServer, pair->server, 1), "x");

    // Error paths close what they opened.
    auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
    ASSERT_TRUE(listener);
    EXPECT_FALSE(listener->accept());
    EXPECT_FALSE(TcpListener::bind(*listener->local_addr()));
    TcpStream moved = std::move(pair->client);
  }
  EXPECT_EQ(test::count_open_fds(), before);
}

}  // namespace
}  // namespace evq
