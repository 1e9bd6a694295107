// Unix-domain sockets: streams (path, abstract name, pair, listener) and
// datagrams (bind, send_to/recv_from, unbound senders, pair), name errors.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <evq/evq.hpp>
#include <string>
#include <utility>
#include <vector>

#include "support/net_helpers.hpp"
#include "support/wait.hpp"

#if EVQ_POSIX  // the type under test exists on POSIX only

namespace evq {
namespace {

using test::bytes;
using test::kDeadline;

constexpr Token kListener{1};
constexpr Token kA{2};
constexpr Token kB{3};

#if defined(__linux__)
constexpr bool kAbstractNames = true;
#else
constexpr bool kAbstractNames = false;
#endif

// Accepts one connection from `listener` (registered readable as kListener).
std::optional<UnixStream> accept_one(Poll& poll, UnixListener& listener) {
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  for (;;) {
    auto s = listener.accept();
    if (s) return std::move(*s);
    if (s.error() != std::errc::operation_would_block) {
      ADD_FAILURE() << "accept: " << s.error().message();
      return std::nullopt;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until || !test::wait_for(poll, kListener, test::any_event, until - now)) {
      ADD_FAILURE() << "timed out waiting to accept";
      return std::nullopt;
    }
  }
}

// A full exchange over a listener bound to `name`.
void stream_round_trip(const std::string& name) {
  Poll poll = test::make_poll();
  auto listener = UnixListener::bind(name);
  ASSERT_TRUE(listener) << name << ": " << listener.error().message();
  EVQ_EXPECT_FD_FLAGS(*listener);
  ASSERT_FALSE(poll.registry().add(*listener, kListener, Interest::readable));

  auto client = UnixStream::connect(name);
  ASSERT_TRUE(client) << client.error().message();
  EVQ_EXPECT_FD_FLAGS(*client);
  auto server = accept_one(poll, *listener);
  ASSERT_TRUE(server);
  EVQ_EXPECT_FD_FLAGS(*server);
  EXPECT_FALSE(client->take_error());

  ASSERT_FALSE(poll.registry().add(*client, kA, Interest::readable | Interest::writable));
  ASSERT_FALSE(poll.registry().add(*server, kB, Interest::readable | Interest::writable));
  ASSERT_TRUE(test::write_all(poll, kA, *client, bytes("over unix")));
  EXPECT_EQ(test::read_exactly(poll, kB, *server, 9), "over unix");
  ASSERT_TRUE(test::write_all(poll, kB, *server, bytes("and back")));
  EXPECT_EQ(test::read_exactly(poll, kA, *client, 8), "and back");

  ASSERT_FALSE(client->shutdown(Shutdown::write));
  EXPECT_EQ(test::read_to_end(poll, kB, *server), "");
}

TEST(Unix, StreamViaPath) {
  test::TempSocketPath path;
  stream_round_trip(path.str());
}

TEST(Unix, StreamViaAbstractName) {
  if (!kAbstractNames) GTEST_SKIP() << "abstract names are Linux only";
  stream_round_trip(test::unique_abstract_name());
}

TEST(Unix, AbstractNameRefusedWhereUnsupported) {
  if (kAbstractNames) GTEST_SKIP() << "this OS has abstract names";
  EXPECT_EQ(UnixListener::bind("@evq").error(), errc::invalid_argument);
  EXPECT_EQ(UnixStream::connect("@evq").error(), errc::invalid_argument);
}

TEST(Unix, BadNames) {
  const std::string too_long(200, 'x');
  const std::string with_nul("/tmp/a\0b", 8);
  for (const std::string& name :
       {std::string(), too_long, "/tmp/" + too_long, "@" + too_long, with_nul}) {
    EXPECT_EQ(UnixListener::bind(name).error(), errc::invalid_argument) << name.size();
    EXPECT_EQ(UnixListener::bind(name).error(), std::errc::invalid_argument) << name.size();
    EXPECT_EQ(UnixStream::connect(name).error(), errc::invalid_argument) << name.size();
    EXPECT_EQ(UnixDatagram::bind(name).error(), errc::invalid_argument) << name.size();
    auto d = UnixDatagram::unbound();
    ASSERT_TRUE(d);
    EXPECT_EQ(d->connect(name), errc::invalid_argument);
    EXPECT_EQ(d->send_to(bytes("x"), name).error(), errc::invalid_argument);
  }
}

TEST(Unix, BindExistingPathIsAddressInUse) {
  test::TempSocketPath path;
  auto first = UnixListener::bind(path.str());
  ASSERT_TRUE(first) << first.error().message();
  auto second = UnixListener::bind(path.str());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), std::errc::address_in_use);
}

TEST(Unix, ConnectToMissingPath) {
  test::TempSocketPath path;
  auto s = UnixStream::connect(path.str());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), std::errc::no_such_file_or_directory) << s.error().message();
}

TEST(Unix, ListenerAcceptWouldBlock) {
  test::TempSocketPath path;
  auto listener = UnixListener::bind(path.str());
  ASSERT_TRUE(listener);
  EXPECT_EQ(listener->accept().error(), std::errc::operation_would_block);
}

TEST(Unix, ListenerEventAfterWouldBlock) {
  Poll poll = test::make_poll();
  test::TempSocketPath path;
  auto listener = UnixListener::bind(path.str());
  ASSERT_TRUE(listener);
  ASSERT_FALSE(poll.registry().add(*listener, kListener, Interest::readable));
  std::vector<UnixStream> keep;
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(listener->accept().error(), std::errc::operation_would_block);
    auto client = UnixStream::connect(path.str());
    ASSERT_TRUE(client) << client.error().message();
    keep.push_back(std::move(*client));
    ASSERT_TRUE(test::wait_readable(poll, kListener)) << "round " << round;
    auto server = listener->accept();
    ASSERT_TRUE(server) << server.error().message();
    keep.push_back(std::move(*server));
  }
}

TEST(Unix, StreamPair) {
  Poll poll = test::make_poll();
  auto pair = UnixStream::pair();
  ASSERT_TRUE(pair) << pair.error().message();
  auto& [a, b] = *pair;
  EVQ_EXPECT_FD_FLAGS(a);
  EVQ_EXPECT_FD_FLAGS(b);
  ASSERT_FALSE(poll.registry().add(a, kA, Interest::readable));
  ASSERT_FALSE(poll.registry().add(b, kB, Interest::readable));

  std::array<std::byte, 8> buf;
  for (int round = 0; round < 3; ++round) {
    // Would-block, then an event: the edge registration re-arms each time.
    ASSERT_EQ(b.read(buf).error(), std::errc::operation_would_block);
    ASSERT_EQ(*a.write(bytes("ab")), 2u);
    ASSERT_TRUE(test::wait_readable(poll, kB)) << "round " << round;
    EXPECT_EQ(test::read_exactly(poll, kB, b, 2), "ab");
  }
  ASSERT_EQ(*b.write(bytes("cd")), 2u);
  EXPECT_EQ(test::read_exactly(poll, kA, a, 2), "cd");

  // Vectored.
  const std::string x = "12", y = "345";
  const IoSlice out[] = {bytes(x), bytes(y)};
  ASSERT_EQ(*a.write_vectored(out), 5u);
  std::string got;
  std::string p(2, '\0'), q(8, '\0');
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (got.size() < 5) {
    const IoSliceMut in[] = {test::buffer(p), test::buffer(q)};
    auto r = b.read_vectored(in);
    if (!r) {
      ASSERT_EQ(r.error(), std::errc::operation_would_block) << r.error().message();
      ASSERT_TRUE(
          test::wait_for(poll, kB, test::any_event, until - std::chrono::steady_clock::now()));
      continue;
    }
    ASSERT_GT(*r, 0u);
    got += p.substr(0, std::min<std::size_t>(*r, 2));
    if (*r > 2) got += q.substr(0, *r - 2);
  }
  EXPECT_EQ(got, "12345");

  { UnixStream gone = std::move(a); }
  EXPECT_EQ(test::read_to_end(poll, kB, b), "");
}

TEST(Unix, StreamWriteToClosedPeerFailsWithoutSigpipe) {
  auto pair = UnixStream::pair();
  ASSERT_TRUE(pair);
  { UnixStream gone = std::move(pair->second); }
  auto w = pair->first.write(bytes("x"));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error(), std::errc::broken_pipe) << w.error().message();
}

TEST(Unix, DatagramBindSendToRecvFrom) {
  Poll poll = test::make_poll();
  test::TempSocketPath pa, pb;
  auto a = UnixDatagram::bind(pa.str());
  auto b = UnixDatagram::bind(pb.str());
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(b) << b.error().message();
  EVQ_EXPECT_FD_FLAGS(*a);
  ASSERT_FALSE(poll.registry().add(*b, kB, Interest::readable));

  std::string buf(64, '\0');
  EXPECT_EQ(b->recv_from(test::buffer(buf)).error(), std::errc::operation_would_block);
  ASSERT_EQ(*a->send_to(bytes("dgram"), pb.str()), 5u);
  ASSERT_TRUE(test::wait_readable(poll, kB));
  auto r = b->recv_from(test::buffer(buf));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(buf.substr(0, r->first), "dgram");
  EXPECT_EQ(r->second, pa.str());
}

TEST(Unix, DatagramFromUnboundSenderHasEmptyName) {
  Poll poll = test::make_poll();
  test::TempSocketPath pb;
  auto a = UnixDatagram::unbound();
  auto b = UnixDatagram::bind(pb.str());
  ASSERT_TRUE(a && b);
  EVQ_EXPECT_FD_FLAGS(*a);
  ASSERT_FALSE(poll.registry().add(*b, kB, Interest::readable));
  ASSERT_EQ(*a->send_to(bytes("anon"), pb.str()), 4u);
  ASSERT_TRUE(test::wait_readable(poll, kB));
  std::string buf(64, '\0');
  auto r = b->recv_from(test::buffer(buf));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(buf.substr(0, r->first), "anon");
  EXPECT_EQ(r->second, "");
}

TEST(Unix, DatagramAbstractNames) {
  if (!kAbstractNames) GTEST_SKIP() << "abstract names are Linux only";
  Poll poll = test::make_poll();
  const std::string na = test::unique_abstract_name(), nb = test::unique_abstract_name();
  auto a = UnixDatagram::bind(na);
  auto b = UnixDatagram::bind(nb);
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(b) << b.error().message();
  ASSERT_FALSE(poll.registry().add(*b, kB, Interest::readable));
  ASSERT_EQ(*a->send_to(bytes("abs"), nb), 3u);
  ASSERT_TRUE(test::wait_readable(poll, kB));
  std::string buf(64, '\0');
  auto r = b->recv_from(test::buffer(buf));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(buf.substr(0, r->first), "abs");
  EXPECT_EQ(r->second, na);
}

TEST(Unix, DatagramConnectSendRecv) {
  Poll poll = test::make_poll();
  test::TempSocketPath pb;
  auto a = UnixDatagram::unbound();
  auto b = UnixDatagram::bind(pb.str());
  ASSERT_TRUE(a && b);
  ASSERT_FALSE(a->connect(pb.str()));
  ASSERT_FALSE(poll.registry().add(*b, kB, Interest::readable));
  ASSERT_EQ(*a->send(bytes("conn")), 4u);
  ASSERT_TRUE(test::wait_readable(poll, kB));
  std::string buf(64, '\0');
  auto r = b->recv(test::buffer(buf));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(buf.substr(0, *r), "conn");
}

TEST(Unix, DatagramPair) {
  Poll poll = test::make_poll();
  auto pair = UnixDatagram::pair();
  ASSERT_TRUE(pair) << pair.error().message();
  auto& [a, b] = *pair;
  EVQ_EXPECT_FD_FLAGS(a);
  EVQ_EXPECT_FD_FLAGS(b);
  ASSERT_FALSE(poll.registry().add(a, kA, Interest::readable));
  ASSERT_FALSE(poll.registry().add(b, kB, Interest::readable));
  std::string buf(64, '\0');
  for (int round = 0; round < 3; ++round) {
    // Would-block first, then an event: the edge registration re-arms.
    EXPECT_EQ(b.recv(test::buffer(buf)).error(), std::errc::operation_would_block);
    ASSERT_EQ(*a.send(bytes("to b")), 4u);
    ASSERT_TRUE(test::wait_readable(poll, kB));
    auto r = b.recv(test::buffer(buf));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(buf.substr(0, *r), "to b");
  }
  ASSERT_EQ(*b.send(bytes("to a")), 4u);
  ASSERT_TRUE(test::wait_readable(poll, kA));
  auto r = a.recv_from(test::buffer(buf));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(buf.substr(0, r->first), "to a");
  EXPECT_EQ(r->second, "");  // a socketpair end has no name
}

TEST(Unix, MovedFromObjectsReportBadDescriptor) {
  auto pair = UnixStream::pair();
  ASSERT_TRUE(pair);
  UnixStream moved = std::move(pair->first);
  UnixStream& dead = pair->first;
  std::array<std::byte, 4> buf;
  const IoSliceMut in[] = {buf};
  const IoSlice out[] = {std::span<const std::byte>(buf)};
  EXPECT_EQ(dead.read(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.write(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.read_vectored(in).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.write_vectored(out).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.shutdown(Shutdown::both), std::errc::bad_file_descriptor);
  EXPECT_EQ(dead.take_error(), std::errc::bad_file_descriptor);

  test::TempSocketPath path;
  auto listener = UnixListener::bind(path.str());
  ASSERT_TRUE(listener);
  UnixListener moved_listener = std::move(*listener);
  EXPECT_EQ(listener->accept().error(), std::errc::bad_file_descriptor);

  auto d = UnixDatagram::pair();
  ASSERT_TRUE(d);
  UnixDatagram moved_d = std::move(d->first);
  EXPECT_EQ(d->first.send(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(d->first.recv(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(d->first.recv_from(buf).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(d->first.send_to(buf, path.str()).error(), std::errc::bad_file_descriptor);
  EXPECT_EQ(d->first.connect(path.str()), std::errc::bad_file_descriptor);
}

TEST(Unix, NoDescriptorLeak) {
  Poll poll = test::make_poll();
  const int before = test::count_open_fds();
  if (before < 0) GTEST_SKIP() << "cannot list open descriptors here";
  for (int i = 0; i < 20; ++i) {
    test::TempSocketPath path;
    auto listener = UnixListener::bind(path.str());
    ASSERT_TRUE(listener);
    EXPECT_FALSE(UnixListener::bind(path.str()));  // error path closes
    EXPECT_FALSE(UnixDatagram::bind(path.str()));  // error path closes
    ASSERT_FALSE(poll.registry().add(*listener, kListener, Interest::readable));
    auto client = UnixStream::connect(path.str());
    ASSERT_TRUE(client);
    auto server = accept_one(poll, *listener);
    ASSERT_TRUE(server);
    auto sp = UnixStream::pair();
    auto dp = UnixDatagram::pair();
    ASSERT_TRUE(sp && dp);
    test::TempSocketPath missing;
    EXPECT_FALSE(UnixStream::connect(missing.str()));  // error path closes
  }
  EXPECT_EQ(test::count_open_fds(), before);
}

}  // namespace
}  // namespace evq

#endif  // EVQ_POSIX
