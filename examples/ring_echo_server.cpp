// The echo server written against the completion API: one thread, one Ring.
//   ring_echo_server [port]   (default 7001; SIGINT/SIGTERM stop it cleanly)
//
// Each connection keeps exactly one operation in flight: a recv() that takes
// a buffer from a shared BufferPool only when data arrives, then writes of
// that buffer until all of it is echoed, then the buffer goes back and the
// next recv() starts. Idle connections hold no buffer. The same program runs
// on every backend: natively on io_uring, emulated over epoll/kqueue/poll
// (EVQ_BACKEND picks one).
#include <evq/evq.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

evq::RingWaker* g_stop = nullptr;  // the only thing a signal handler touches

extern "C" void on_signal(int) {
  // One atomic exchange and at most one write(2): safe in a signal handler.
  if (g_stop) g_stop->wake();
}

constexpr evq::Token kAccept{0};
constexpr evq::Token kStop{1};
constexpr std::uint64_t kFirstConnection = 2;  // connection i has token kFirstConnection + i
constexpr int kAcceptsInFlight = 16;           // so a burst of connects is taken in one pass
constexpr std::size_t kBufferSize = 16 * 1024;
constexpr std::uint32_t kBuffers = 1024;

struct Connection {
  evq::TcpStream stream;
  std::uint32_t buffer_id = 0;  // while echoing: the pool buffer being written back
  std::size_t length = 0;       // bytes received into it
  std::size_t written = 0;      // bytes of it written so far
  bool starved = false;         // its recv found the pool empty: waiting for a buffer
};

// Connections by slot; a slot is reused once its connection closed. Held by
// pointer: a socket must not move while an operation on it is in flight.
class Connections {
 public:
  std::size_t add(evq::TcpStream stream) {
    std::size_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = items_.size();
      items_.emplace_back();
    }
    items_[slot] = std::make_unique<Connection>(Connection{std::move(stream)});
    ++open_;
    return slot;
  }
  Connection* find(std::size_t slot) { return slot < items_.size() ? items_[slot].get() : nullptr; }
  void close(std::size_t slot) {
    items_[slot].reset();
    free_.push_back(slot);
    --open_;
  }
  std::size_t open() const { return open_; }

 private:
  std::vector<std::unique_ptr<Connection>> items_;
  std::vector<std::size_t> free_;
  std::size_t open_ = 0;
};

evq::Token token_of(std::size_t slot) { return evq::Token{kFirstConnection + slot}; }

int fail(const char* what, std::error_code ec) {
  std::fprintf(stderr, "%s: %s\n", what, ec.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 7001;
  if (port <= 0 || port > 65535) {
    std::fprintf(stderr, "usage: ring_echo_server [port]\n");
    return 2;
  }
#ifdef SIGPIPE  // POSIX only; Windows has no SIGPIPE
  std::signal(SIGPIPE, SIG_IGN);
#endif

  // Declared before the Ring, so destroyed after it: ~Ring ends every
  // operation first, and only then do the sockets and the pool go.
  auto listener = evq::TcpListener::bind(evq::SocketAddr::v4({0, 0, 0, 0}, static_cast<std::uint16_t>(port)));
  if (!listener) return fail("bind", listener.error());
  auto pool = evq::BufferPool::create(kBufferSize, kBuffers);
  if (!pool) return fail("pool", pool.error());
  Connections conns;
  std::vector<std::size_t> starved;  // connections whose recv found the pool empty

  auto ring = evq::Ring::create();
  if (!ring) return fail("ring", ring.error());
  auto stop = evq::RingWaker::create(*ring, kStop);
  if (!stop) return fail("waker", stop.error());
  g_stop = &*stop;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  for (int i = 0; i < kAcceptsInFlight; ++i)
    if (auto ec = ring->accept(*listener, kAccept)) return fail("accept", ec);
  std::printf("ring echo server on port %d, backend %s (%s)\n", port,
              std::string(evq::to_string(ring->backend())).c_str(), ring->is_native() ? "native" : "emulated");
  std::fflush(stdout);

  auto start_recv = [&](std::size_t slot) {
    Connection& c = *conns.find(slot);
    if (ring->recv(c.stream, *pool, token_of(slot))) conns.close(slot);
  };

  evq::Completions completions(256);
  for (;;) {
    if (auto ec = ring->wait(completions, std::nullopt)) return fail("wait", ec);
    for (evq::Completion& c : completions) {
      if (c.op() == evq::RingOp::wake) {
        std::printf("stopping: %zu connections open\n", conns.open());
        g_stop = nullptr;
        return 0;  // ~Ring cancels what is in flight, then the sockets close
      }
      if (c.token() == kAccept) {
        if (auto stream = c.take_stream()) {
          stream->set_nodelay(true);
          start_recv(conns.add(std::move(*stream)));
        }
        // Accepted or failed (EMFILE, say): keep kAcceptsInFlight going.
        if (auto ec = ring->accept(*listener, kAccept)) return fail("accept", ec);
        continue;
      }
      const std::size_t slot = static_cast<std::uint64_t>(c.token()) - kFirstConnection;
      Connection* conn = conns.find(slot);
      if (!conn) continue;
      if (c.op() == evq::RingOp::recv) {
        if (c.error() == std::errc::no_buffer_space) {
          conn->starved = true;  // retried when a buffer comes back
          starved.push_back(slot);
          continue;
        }
        if (!c.ok() || c.bytes() == 0) {  // reset, or end of stream
          conns.close(slot);
          continue;
        }
        conn->buffer_id = c.buffer_id();
        conn->length = c.bytes();
        conn->written = 0;
      } else {  // RingOp::write
        if (!c.ok()) {
          pool->release(conn->buffer_id);
          conns.close(slot);
          continue;
        }
        conn->written += c.bytes();
        if (conn->written == conn->length) {
          pool->release(conn->buffer_id);
          start_recv(slot);
          // The slot may have closed, or been reused, since it starved.
          while (!starved.empty()) {
            Connection* next = conns.find(starved.back());
            const std::size_t next_slot = starved.back();
            starved.pop_back();
            if (next && next->starved) {
              next->starved = false;
              start_recv(next_slot);
              break;
            }
          }
          continue;
        }
      }
      // Echo what is left of the buffer (a write may take only part of it).
      const auto rest = pool->buffer(conn->buffer_id).subspan(conn->written, conn->length - conn->written);
      if (ring->write(conn->stream, rest, token_of(slot))) {
        pool->release(conn->buffer_id);
        conns.close(slot);
      }
    }
  }
}
