// tests/echo_test.cpp: whole echo loops through evq: a 1 MiB random payload
// edge-triggered in one thread, 9,000 concurrent connections in one process,
// and accept under EMFILE. Each heavy test checks that it leaks no
// descriptor.
#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support/fd_count.hpp"
#include "support/io_helpers.hpp"
#include "support/wait.hpp"

#if EVQ_POSIX
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace evq {
namespace {

using namespace std::chrono_literals;
using std::chrono::steady_clock;
using test::kDeadline;

// Counts descriptors at construction; the test compares at the end, after
// every evq object of the test is gone.
class FdLeakCheck {
 public:
  FdLeakCheck() : before_(test::list_open_fds().count) {}
  void expect_no_leak() const {
    if (before_ < 0) return;  // cannot list descriptors here
    EXPECT_EQ(test::list_open_fds().count, before_) << "descriptors leaked";
  }

 private:
  int before_;
};

// Writes `data[offset..]` until would-block or done; returns false on error.
bool write_some(TcpStream& s, const std::vector<std::byte>& data, std::size_t& offset) {
  while (offset < data.size()) {
    const std::size_t n = std::min<std::size_t>(data.size() - offset, 256 * 1024);
    auto w = s.write(std::span<const std::byte>(data.data() + offset, n));
    if (!w) {
      if (test::is_would_block(w.error())) return true;
      ADD_FAILURE() << "write: " << w.error().message();
      return false;
    }
    offset += *w;
  }
  return true;
}

// A server connection's echo buffer: read until would-block, then write back
// until would-block or empty.
struct EchoConnection {
  TcpStream stream;
  std::vector<std::byte> pending;
  std::size_t sent = 0;  // of pending

  bool flush() {
    if (!write_some(stream, pending, sent)) return false;
    if (sent == pending.size()) {
      pending.clear();
      sent = 0;
    }
    return true;
  }
  bool on_readable() {
    const auto d = test::read_until_would_block(stream, &pending);
    if (d.error) {
      ADD_FAILURE() << "server read: " << d.error.message();
      return false;
    }
    return flush();
  }
};

TEST(Echo, OneMebibyteRandomPayloadComesBackIntact) {
  FdLeakCheck fds;
  {
    const std::uint64_t seed = std::random_device{}();
    RecordProperty("seed", std::to_string(seed));
    std::mt19937_64 rng(seed);
    std::vector<std::byte> payload(1 << 20);
    for (auto& b : payload) b = static_cast<std::byte>(rng());

    Poll poll = test::make_poll();
    auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
    ASSERT_TRUE(listener) << listener.error().message();
    auto addr = listener->local_addr();
    ASSERT_TRUE(addr) << addr.error().message();
    auto client = TcpStream::connect(*addr);
    ASSERT_TRUE(client) << client.error().message();

    const Token tl{1}, tc{2}, ts{3};
    const Interest both = Interest::readable | Interest::writable;
    ASSERT_FALSE(poll.registry().add(*listener, tl, Interest::readable, Trigger::edge));
    ASSERT_FALSE(poll.registry().add(*client, tc, both, Trigger::edge));

    std::optional<EchoConnection> server;
    bool connected = false;
    std::size_t sent = 0;
    std::vector<std::byte> received;
    received.reserve(payload.size());
    std::size_t events_seen = 0;

    Events events(64);
    auto last_progress = steady_clock::now();
    std::size_t last_total = 0;
    while (received.size() < payload.size()) {
      const std::size_t total = sent + received.size() + (server ? server->pending.size() : 0);
      if (total != last_total) {
        last_total = total;
        last_progress = steady_clock::now();
      }
      ASSERT_LT(steady_clock::now() - last_progress, 3 * kDeadline)
          << "stalled: sent " << sent << ", received " << received.size()
          << (connected ? "" : ", not connected") << (server ? "" : ", not accepted")
          << ": an edge event went missing";
      ASSERT_FALSE(poll.poll(events, kDeadline));
      for (const Event& e : events) {
        ++events_seen;
        ASSERT_FALSE(e.is_error()) << "error event for token " << static_cast<std::uint64_t>(e.token());
        if (e.token() == tl) {
          for (;;) {
            auto accepted = listener->accept();
            if (!accepted) {
              ASSERT_TRUE(test::is_would_block(accepted.error())) << accepted.error().message();
              break;
            }
            ASSERT_FALSE(server) << "a second connection";
            server.emplace(EchoConnection{std::move(accepted->first), {}, 0});
            ASSERT_FALSE(poll.registry().add(server->stream, ts, both, Trigger::edge));
          }
        } else if (e.token() == tc) {
          if (e.is_writable()) {
            if (!connected) {
              const std::error_code err = client->take_error();
              ASSERT_FALSE(err) << "connect: " << err.message();
              connected = true;
            }
            ASSERT_TRUE(write_some(*client, payload, sent));
          }
          if (e.is_readable()) {
            const auto d = test::read_until_would_block(*client, &received);
            ASSERT_FALSE(d.error) << d.error.message();
            ASSERT_FALSE(d.eof) << "server closed";
            ASSERT_LE(received.size(), payload.size());
          }
        } else if (e.token() == ts) {
          ASSERT_TRUE(server);
          if (e.is_readable()) {
            ASSERT_TRUE(server->on_readable());
          }
          if (e.is_writable()) {
            ASSERT_TRUE(server->flush());
          }
        }
      }
    }
    ASSERT_EQ(received.size(), payload.size());
    const auto mismatch = std::mismatch(received.begin(), received.end(), payload.begin());
    EXPECT_TRUE(mismatch.first == received.end())
        << "first differing byte at offset " << (mismatch.first - received.begin()) << " (seed "
        << seed << ")";
    RecordProperty("events", static_cast<int>(events_seen));
  }
  fds.expect_no_leak();
}

#if EVQ_POSIX
// Raises the soft descriptor limit for one test and puts it back.
class NofileLimit {
 public:
  NofileLimit() { ok_ = getrlimit(RLIMIT_NOFILE, &saved_) == 0; }
  ~NofileLimit() { restore(); }
  bool ok() const { return ok_; }
  rlim_t soft() const { return saved_.rlim_cur; }
  rlim_t hard() const { return saved_.rlim_max; }
  bool set_soft(rlim_t soft) {
    rlimit l = saved_;
    l.rlim_cur = soft;
    changed_ = true;
    return setrlimit(RLIMIT_NOFILE, &l) == 0;
  }
  void restore() {
    if (changed_) setrlimit(RLIMIT_NOFILE, &saved_);
    changed_ = false;
  }

 private:
  rlimit saved_{};
  bool ok_ = false;
  bool changed_ = false;
};

// 9,000 connections, both ends in this process: 18,000 descriptors of the
// 20,000 this machine allows (DESIGN.md). All in one Poll, edge-triggered.
TEST(Echo, NineThousandConcurrentConnections) {
  constexpr std::size_t kConnections = 9000;
  constexpr rlim_t kNeeded = 2 * kConnections + 200;
  NofileLimit limit;
  ASSERT_TRUE(limit.ok());
  if (limit.soft() < kNeeded) {
    if (limit.hard() != RLIM_INFINITY && limit.hard() < kNeeded)
      GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << limit.hard() << " < " << kNeeded;
    ASSERT_TRUE(limit.set_soft(kNeeded));
  }

  FdLeakCheck fds;
  {
    Poll poll = test::make_poll();
    auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
    ASSERT_TRUE(listener) << listener.error().message();
    auto addr = listener->local_addr();
    ASSERT_TRUE(addr) << addr.error().message();

    const Interest both = Interest::readable | Interest::writable;
    constexpr std::uint64_t kListener = 0, kClientBase = 1, kServerBase = 1'000'000;
    ASSERT_FALSE(poll.registry().add(*listener, Token{kListener}, Interest::readable));

    struct Client {
      std::optional<TcpStream> stream;
      bool connected = false;
      std::vector<std::byte> got;
      bool done = false;
    };
    std::vector<Client> clients(kConnections);
    std::vector<EchoConnection> servers;
    servers.reserve(kConnections);  // no reallocation: but moves would be fine too
    auto message = [](std::size_t i) {
      std::vector<std::byte> m(8);
      for (int k = 0; k < 8; ++k) m[k] = static_cast<std::byte>((i >> (8 * (k % 4))) ^ k);
      return m;
    };

    std::size_t started = 0, accepted = 0, connected = 0, echoed = 0;
    Events events(1024);
    auto last_progress = steady_clock::now();
    std::size_t last_total = 0;
    while (echoed < kConnections) {
      // Keep a bounded number of handshakes ahead of accept(), so that the
      // listen backlog never overflows (an overflow costs SYN retransmits
      // of a second or more, not correctness).
      while (started < kConnections && started - accepted < 512) {
        auto c = TcpStream::connect(*addr);
        ASSERT_TRUE(c) << "connect #" << started << ": " << c.error().message();
        clients[started].stream.emplace(std::move(*c));
        ASSERT_FALSE(poll.registry().add(*clients[started].stream, Token{kClientBase + started},
                                         both, Trigger::edge))
            << started;
        ++started;
      }
      const std::size_t total = started + accepted + connected + echoed;
      if (total != last_total) {
        last_total = total;
        last_progress = steady_clock::now();
      }
      ASSERT_LT(steady_clock::now() - last_progress, 6 * kDeadline)
          << "stalled: started " << started << ", accepted " << accepted << ", connected "
          << connected << ", echoed " << echoed;
      ASSERT_FALSE(poll.poll(events, kDeadline));
      for (const Event& e : events) {
        const auto t = static_cast<std::uint64_t>(e.token());
        if (t == kListener) {
          for (;;) {
            auto a = listener->accept();
            if (!a) {
              ASSERT_TRUE(test::is_would_block(a.error())) << "accept: " << a.error().message();
              break;
            }
            servers.push_back(EchoConnection{std::move(a->first), {}, 0});
            ASSERT_FALSE(poll.registry().add(servers.back().stream, Token{kServerBase + accepted},
                                             both, Trigger::edge));
            ++accepted;
          }
        } else if (t >= kServerBase) {
          ASSERT_LT(t - kServerBase, servers.size());
          EchoConnection& s = servers[t - kServerBase];
          if (e.is_readable()) {
            ASSERT_TRUE(s.on_readable());
          }
          if (e.is_writable()) {
            ASSERT_TRUE(s.flush());
          }
        } else {
          ASSERT_GE(t, kClientBase);
          ASSERT_LT(t - kClientBase, started);
          const std::size_t i = t - kClientBase;
          Client& c = clients[i];
          ASSERT_FALSE(e.is_error()) << "client " << i << ": " << c.stream->take_error().message();
          if (e.is_writable() && !c.connected) {
            const std::error_code err = c.stream->take_error();
            ASSERT_FALSE(err) << "client " << i << " connect: " << err.message();
            c.connected = true;
            ++connected;
            const auto m = message(i);
            auto w = c.stream->write(m);
            ASSERT_TRUE(w) << "client " << i << " write: " << w.error().message();
            ASSERT_EQ(*w, m.size());
          }
          if (e.is_readable()) {
            const auto d = test::read_until_would_block(*c.stream, &c.got);
            ASSERT_FALSE(d.error) << "client " << i << ": " << d.error.message();
            ASSERT_FALSE(d.eof) << "client " << i << ": server closed";
            ASSERT_LE(c.got.size(), 8u) << "client " << i;
            if (c.got.size() == 8 && !c.done) {
              EXPECT_TRUE(c.got == message(i)) << "client " << i << " got another's bytes";
              c.done = true;
              ++echoed;
            }
          }
        }
      }
    }
    EXPECT_EQ(accepted, kConnections);
    EXPECT_EQ(servers.size(), kConnections);
    // Close with a reset: 9,000 sockets in TIME_WAIT would hold 9,000 local
    // ports for a minute, and the suite runs this test once per backend and
    // per sanitizer build.
    for (Client& c : clients) (void)c.stream->set_linger(std::chrono::seconds{0});
    clients.clear();
    servers.clear();
  }
  fds.expect_no_leak();
}

// Accept under EMFILE: with no descriptor left, accept() reports
// too_many_files_open and leaves the connection queued; existing connections
// and the listener keep working, and once descriptors are free again the
// queued connections are accepted and new ones announced.
TEST(Echo, AcceptUnderEmfileKeepsListenerAndConnections) {
  NofileLimit limit;
  ASSERT_TRUE(limit.ok());
  FdLeakCheck fds;
  {
    Poll poll = test::make_poll();
    auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
    ASSERT_TRUE(listener) << listener.error().message();
    auto addr = listener->local_addr();
    ASSERT_TRUE(addr) << addr.error().message();
    const Token tl{1};
    ASSERT_FALSE(poll.registry().add(*listener, tl, Interest::readable));  // edge

    std::uint64_t next_token = 100;
    struct Conn {
      TcpStream client, server;
      Token tc, ts;
    };

    // Connects one client and waits until the handshake is done (so the
    // connection sits in the accept queue).
    auto connect_client = [&](std::optional<TcpStream>& out, Token& token) {
      auto c = TcpStream::connect(*addr);
      ASSERT_TRUE(c) << c.error().message();
      token = Token{next_token++};
      ASSERT_FALSE(poll.registry().add(*c, token, Interest::readable | Interest::writable));
      ASSERT_TRUE(test::wait_writable(poll, token));
      const std::error_code err = c->take_error();
      ASSERT_FALSE(err) << err.message();
      out.emplace(std::move(*c));
    };
    // accept(), waiting for the listener's edge after a would-block.
    auto accept_one = [&](std::optional<TcpStream>& out) {
      for (;;) {
        auto a = listener->accept();
        if (a) {
          out.emplace(std::move(a->first));
          return;
        }
        ASSERT_TRUE(test::is_would_block(a.error())) << a.error().message();
        ASSERT_TRUE(test::wait_readable(poll, tl)) << "no connection came";
      }
    };
    // One message each way through a connection, edge-triggered.
    auto echo = [&](Conn& c, const std::string& text) {
      ASSERT_TRUE(test::write_all(c.client, text));
      std::vector<std::byte> at_server;
      while (at_server.size() < text.size()) {
        ASSERT_TRUE(test::wait_readable(poll, c.ts)) << "server side got " << at_server.size();
        const auto d = test::read_until_would_block(c.server, &at_server);
        ASSERT_FALSE(d.error) << d.error.message();
      }
      ASSERT_TRUE(test::write_all(c.server, text));
      std::vector<std::byte> at_client;
      // The client's first edge may have been taken by the server's wait:
      // read before waiting (edge means: read until would-block).
      for (;;) {
        const auto d = test::read_until_would_block(c.client, &at_client);
        ASSERT_FALSE(d.error) << d.error.message();
        if (at_client.size() >= text.size()) break;
        ASSERT_TRUE(test::wait_readable(poll, c.tc)) << "client side got " << at_client.size();
      }
      ASSERT_EQ(at_client.size(), text.size());
      EXPECT_EQ(std::memcmp(at_client.data(), text.data(), text.size()), 0);
    };
    auto establish = [&](std::vector<Conn>& into) {
      std::optional<TcpStream> client, server;
      Token tc{};
      connect_client(client, tc);
      if (testing::Test::HasFatalFailure()) return;
      accept_one(server);
      if (testing::Test::HasFatalFailure()) return;
      const Token ts{next_token++};
      ASSERT_FALSE(poll.registry().add(*server, ts, Interest::readable | Interest::writable));
      into.push_back(Conn{std::move(*client), std::move(*server), tc, ts});
    };

    std::vector<Conn> established;
    for (int i = 0; i < 4; ++i) {
      establish(established);
      ASSERT_FALSE(testing::Test::HasFatalFailure());
      echo(established.back(), "hello " + std::to_string(i));
      ASSERT_FALSE(testing::Test::HasFatalFailure());
    }

    // Three connections complete the handshake but are not accepted yet.
    constexpr int kQueued = 3;
    std::vector<std::pair<TcpStream, Token>> queued;
    for (int i = 0; i < kQueued; ++i) {
      std::optional<TcpStream> c;
      Token tc{};
      connect_client(c, tc);
      ASSERT_FALSE(testing::Test::HasFatalFailure());
      queued.emplace_back(std::move(*c), tc);
    }

    // UBSan's vptr check validates a (vtable, type) pair it has not seen
    // before by probing memory through a pipe (sanitizer_common's
    // IsAccessibleMemoryRange); with no descriptor free that probe fails and
    // it reports a bogus "invalid vptr". Compare error codes both ways once
    // now, so that the virtual calls made in the window below (system and
    // generic category's equivalent()) are known pairs already.
    for (const int e : {EMFILE, EAGAIN}) {
      const std::error_code ec(e, std::system_category());
      EXPECT_EQ(ec == std::errc::too_many_files_open, e == EMFILE);
      EXPECT_EQ(ec == std::errc::operation_would_block, e == EAGAIN);
    }

    // No descriptor left: lower the soft limit to just above the highest one
    // in use and fill every free number below it.
    const auto listing = test::list_open_fds();
    ASSERT_GT(listing.highest, 0);
    ASSERT_TRUE(limit.set_soft(static_cast<rlim_t>(listing.highest) + 8))
        << std::generic_category().message(errno);
    std::vector<int> fillers;
    for (;;) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        ASSERT_EQ(errno, EMFILE);
        break;
      }
      fillers.push_back(fd);
    }
    auto free_fillers = [&] {
      for (int fd : fillers) ::close(fd);
      fillers.clear();
    };

    // accept() reports EMFILE. Retry after a would-block only: the
    // connections may still be on their way into the queue.
    std::error_code accept_error;
    for (int tries = 0; tries < 100; ++tries) {
      auto a = listener->accept();
      if (a) {
        free_fillers();
        FAIL() << "accept succeeded with no descriptor free";
      }
      accept_error = a.error();
      if (!test::is_would_block(accept_error)) break;
      if (!test::wait_readable(poll, tl)) break;
    }
    EXPECT_EQ(accept_error, std::errc::too_many_files_open) << accept_error.message();
    // Repeated attempts keep failing the same way, not with would-block: the
    // kernel keeps the connections queued.
    for (int i = 0; i < 3; ++i) {
      auto a = listener->accept();
      EXPECT_FALSE(a);
      if (!a) {
        EXPECT_EQ(a.error(), std::errc::too_many_files_open) << a.error().message();
      }
    }

    // Existing connections work without any new descriptor.
    for (std::size_t i = 0; i < established.size(); ++i) {
      echo(established[i], "under EMFILE " + std::to_string(i));
      if (testing::Test::HasFatalFailure()) {
        free_fillers();
        return;
      }
    }

    // Free descriptors, restore the limit: the queued connections come out.
    free_fillers();
    limit.restore();
    std::size_t accepted_now = 0;
    while (accepted_now < static_cast<std::size_t>(kQueued)) {
      auto a = listener->accept();
      if (!a) {
        ASSERT_TRUE(test::is_would_block(a.error())) << a.error().message();
        ASSERT_TRUE(test::wait_readable(poll, tl))
            << "queued connections were lost: " << accepted_now << " of " << kQueued;
        continue;
      }
      const Token ts{next_token++};
      ASSERT_FALSE(poll.registry().add(a->first, ts, Interest::readable | Interest::writable));
      // Match it with its client through the ports.
      auto peer = a->first.peer_addr();
      ASSERT_TRUE(peer) << peer.error().message();
      bool matched = false;
      for (auto& [client, tc] : queued) {
        if (client.native_handle() == invalid_handle) continue;  // matched already
        auto local = client.local_addr();
        ASSERT_TRUE(local);
        if (*local == *peer) {
          established.push_back(Conn{std::move(client), std::move(a->first), tc, ts});
          matched = true;
          break;
        }
      }
      ASSERT_TRUE(matched) << "accepted " << peer->to_string() << ", which no queued client is";
      ++accepted_now;
    }
    {
      auto extra = listener->accept();  // to would-block: re-arms the edge
      ASSERT_FALSE(extra) << "a connection nobody made";
      ASSERT_TRUE(test::is_would_block(extra.error())) << extra.error().message();
    }

    // The listener still announces new connections: its edge, re-armed by
    // the would-block above, fires for a new one. (Waiting for the event
    // before accept() is the point: accept() alone would find the queued
    // connection without it.)
    {
      auto c = TcpStream::connect(*addr);
      ASSERT_TRUE(c) << c.error().message();
      const Token tc{next_token++};
      ASSERT_FALSE(poll.registry().add(*c, tc, Interest::readable | Interest::writable));
      ASSERT_TRUE(test::wait_readable(poll, tl)) << "the listener stopped reporting connections";
      std::optional<TcpStream> server;
      accept_one(server);
      ASSERT_FALSE(testing::Test::HasFatalFailure());
      ASSERT_FALSE(c->take_error());
      const Token ts{next_token++};
      ASSERT_FALSE(poll.registry().add(*server, ts, Interest::readable | Interest::writable));
      established.push_back(Conn{std::move(*c), std::move(*server), tc, ts});
    }
    for (std::size_t i = 0; i < established.size(); ++i) {
      echo(established[i], "after EMFILE " + std::to_string(i));
      ASSERT_FALSE(testing::Test::HasFatalFailure());
    }
  }
  limit.restore();
  fds.expect_no_leak();
}
#endif  // EVQ_POSIX

}  // namespace
}  // namespace evq
