// evq completion: one thread, one Ring. Where the readiness model is told
// "this socket can be read" and then reads, this one asks for the read up
// front and is told "the data is in a buffer": natively on io_uring (Linux)
// and IOCP (Windows), emulated over the readiness backend elsewhere.
//
// Each connection keeps one operation in flight: a recv() that takes a
// buffer from a shared BufferPool only when data arrives, then writes of
// that buffer until it is all echoed; then the buffer goes back and the next
// recv() starts. So N idle connections hold no buffer at all, where the
// blocking models park a stack and a buffer per connection.
#include <evq/evq.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server_harness.hpp"
#include "servers.hpp"

namespace demo {
namespace {

constexpr evq::Token accept_token{0};
constexpr std::uint64_t first_connection = 1;  // slot i has token first_connection + i
constexpr int accepts_in_flight = 16;          // a burst of connects is taken in one pass
constexpr std::size_t buffer_size = 4096;      // as the readiness server's read buffer
constexpr std::uint32_t buffers = 1024;        // data in flight at once, not connections

struct Connection {
  evq::TcpStream stream;
  std::uint32_t buffer_id = 0;  // while echoing: the pool buffer being written back
  std::size_t length = 0;       // bytes received into it
  std::size_t written = 0;      // bytes of it written so far
  bool starved = false;         // its recv found the pool empty
};

// Held by pointer: a socket must not move while an operation on it is in
// flight.
class Connections {
 public:
  std::uint64_t insert(evq::TcpStream stream) {
    std::uint64_t i;
    if (!free_.empty()) {
      i = free_.back();
      free_.pop_back();
    } else {
      i = slots_.size();
      slots_.emplace_back();
    }
    slots_[i] = std::make_unique<Connection>(Connection{std::move(stream)});
    return i;
  }
  Connection* find(std::uint64_t i) { return i < slots_.size() ? slots_[i].get() : nullptr; }
  void erase(std::uint64_t i) {
    slots_[i].reset();  // closes the socket: its only operation has completed
    free_.push_back(i);
  }

 private:
  std::vector<std::unique_ptr<Connection>> slots_;
  std::vector<std::uint64_t> free_;
};

evq::Token token_of(std::uint64_t slot) { return evq::Token{first_connection + slot}; }

}  // namespace

int run_evq_ring_server() {
  // Declared before the Ring, so destroyed after it (the process never gets
  // there, but the order is the one Ring's header asks for).
  auto listener = evq::TcpListener::bind(
      evq::SocketAddr::v4({server::listen_octets[0], server::listen_octets[1], server::listen_octets[2],
                           server::listen_octets[3]},
                          0));
  if (!listener) server::fail("TcpListener::bind", listener.error());
  auto local = listener->local_addr();
  if (!local) server::fail("local_addr", local.error());
  auto pool = evq::BufferPool::create(buffer_size, buffers);
  if (!pool) server::fail("BufferPool::create", pool.error());
  Connections conns;
  std::vector<std::uint64_t> starved;  // connections waiting for a pool buffer

  auto ring = evq::Ring::create();
  if (!ring) server::fail("Ring::create", ring.error());
  for (int i = 0; i < accepts_in_flight; ++i)
    if (auto ec = ring->accept(*listener, accept_token)) server::fail("Ring::accept", ec);
  const std::string backend =
      std::string(evq::to_string(ring->backend())) + (ring->is_native() ? "" : ", emulated");
  server::announce_ready(local->port(), backend);

  auto start_recv = [&](std::uint64_t slot) {
    if (auto ec = ring->recv(conns.find(slot)->stream, *pool, token_of(slot))) server::fail("Ring::recv", ec);
  };
  // A buffer came back: the longest-starved connection still open gets it.
  auto feed_starved = [&] {
    while (!starved.empty()) {
      const std::uint64_t slot = starved.back();
      starved.pop_back();
      Connection* c = conns.find(slot);
      if (c && c->starved) {
        c->starved = false;
        start_recv(slot);
        return;
      }
    }
  };
  auto finish = [&](std::uint64_t slot, Connection& c, bool holds_buffer) {
    if (holds_buffer) {
      pool->release(c.buffer_id);
      feed_starved();
    }
    conns.erase(slot);
  };

  evq::Completions completions(1024);
  for (;;) {
    if (auto ec = ring->wait(completions, std::nullopt)) server::fail("Ring::wait", ec);
    for (evq::Completion& done : completions) {
      if (done.token() == accept_token) {
        if (auto stream = done.take_stream()) {
          stream->set_nodelay(true);
          start_recv(conns.insert(std::move(*stream)));
          server::accepted.fetch_add(1, std::memory_order_relaxed);
        } else if (done.error() != std::errc::operation_canceled) {
          server::fail("accept", done.error());
        }
        if (auto ec = ring->accept(*listener, accept_token)) server::fail("Ring::accept", ec);
        continue;
      }
      const std::uint64_t slot = static_cast<std::uint64_t>(done.token()) - first_connection;
      Connection* c = conns.find(slot);
      if (!c) continue;
      if (done.op() == evq::RingOp::recv) {
        if (done.error() == std::errc::no_buffer_space) {
          c->starved = true;
          starved.push_back(slot);
          continue;
        }
        if (!done.ok() || done.bytes() == 0) {  // reset, or end of stream
          finish(slot, *c, false);
          continue;
        }
        c->buffer_id = done.buffer_id();
        c->length = done.bytes();
        c->written = 0;
      } else {  // RingOp::write
        if (!done.ok()) {
          finish(slot, *c, true);
          continue;
        }
        c->written += done.bytes();
        if (c->written == c->length) {
          pool->release(c->buffer_id);
          start_recv(slot);
          feed_starved();
          continue;
        }
      }
      // Echo what is left of the buffer (a write may take only part of it).
      const auto rest = pool->buffer(c->buffer_id).subspan(c->written, c->length - c->written);
      if (auto ec = ring->write(c->stream, rest, token_of(slot))) server::fail("Ring::write", ec);
    }
  }
}

}  // namespace demo
