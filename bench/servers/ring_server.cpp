// evq Ring (completion API) echo server, public API only.
//   ring_server [--backend default|io_uring|epoll|poll] [--port P] [--requests N]
// default (also without --backend): Ring::create(), the platform's best engine (native io_uring once
// it lands, the emulation over epoll until then). Any other name: that
// backend; epoll and poll are always the emulation (force_emulation).
//
// The same work as the readiness servers: 64 KiB reads, TCP_NODELAY, no
// allocation per request. A completion API cannot share one static read
// buffer between connections (reads are in flight at once), so reads take a
// 64 KiB buffer from a BufferPool only when data arrives; an idle connection
// holds none. One operation in flight per connection: recv, then write.
#include <evq/evq.hpp>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace {

constexpr evq::Token kAccept{~std::uint64_t{0}};
constexpr int kAcceptsInFlight = 16;
constexpr std::uint32_t kPoolBuffers = 1024;      // >= kCompletions: each completion holds at most one
constexpr std::size_t kCompletions = 512;

struct Connection {
  evq::TcpStream stream;
  std::uint32_t buffer_id = 0;
  std::size_t length = 0;
  bool starved = false;
};

}  // namespace

int main(int argc, char** argv) {
  const bench::Options o = bench::parse_options(argc, argv);
  evq::RingOptions opts;
  std::optional<evq::Backend> backend;
  if (o.backend && std::strcmp(o.backend, "default") != 0) {
    backend = evq::backend_from_string(o.backend);
    if (!backend) return std::fprintf(stderr, "unknown backend %s\n", o.backend), 2;
    opts.force_emulation = *backend != evq::Backend::io_uring;
  }
  // Sockets and the pool before the Ring: ~Ring ends every operation first.
  auto listener = evq::TcpListener::bind(evq::SocketAddr::loopback_v4(static_cast<std::uint16_t>(o.port)));
  if (!listener) return std::fprintf(stderr, "bind: %s\n", listener.error().message().c_str()), 1;
  auto pool = evq::BufferPool::create(bench::kReadBuffer, kPoolBuffers);
  if (!pool) return std::fprintf(stderr, "pool: %s\n", pool.error().message().c_str()), 1;
  std::vector<std::unique_ptr<Connection>> conns;  // by slot; a socket must not move while in flight
  std::vector<std::uint64_t> free_slots, starved;
  conns.reserve(1024);

  auto ring_or = backend ? evq::Ring::create(*backend, opts) : evq::Ring::create(opts);
  if (!ring_or) return std::fprintf(stderr, "ring: %s\n", ring_or.error().message().c_str()), 1;
  evq::Ring ring = std::move(*ring_or);
  std::fprintf(stderr, "ring: backend %s, %s\n", std::string(evq::to_string(ring.backend())).c_str(),
               ring.is_native() ? "native" : "emulated");
  for (int i = 0; i < kAcceptsInFlight; ++i)
    if (auto ec = ring.accept(*listener, kAccept)) return std::fprintf(stderr, "accept: %s\n", ec.message().c_str()), 1;
  auto addr = listener->local_addr();
  bench::announce(addr ? addr->port() : 0);

  const std::uint64_t limit = o.limit_bytes();
  std::uint64_t echoed = 0;
  auto close_slot = [&](std::uint64_t slot) {
    conns[slot].reset();
    free_slots.push_back(slot);
  };
  auto start_recv = [&](std::uint64_t slot) {
    if (ring.recv(conns[slot]->stream, *pool, evq::Token{slot})) close_slot(slot);
  };

  evq::Completions completions(kCompletions);
  for (;;) {
    if (auto ec = ring.wait(completions, std::nullopt))
      return std::fprintf(stderr, "wait: %s\n", ec.message().c_str()), 1;
    for (evq::Completion& c : completions) {
      if (c.token() == kAccept) {
        if (auto stream = c.take_stream()) {
          stream->set_nodelay(true);
          std::uint64_t slot;
          if (!free_slots.empty()) {
            slot = free_slots.back();
            free_slots.pop_back();
          } else {
            slot = conns.size();
            conns.emplace_back();
          }
          conns[slot] = std::make_unique<Connection>(Connection{std::move(*stream)});
          start_recv(slot);
        }
        if (auto ec = ring.accept(*listener, kAccept))
          return std::fprintf(stderr, "accept: %s\n", ec.message().c_str()), 1;
        continue;
      }
      const auto slot = static_cast<std::uint64_t>(c.token());
      Connection* conn = slot < conns.size() ? conns[slot].get() : nullptr;
      if (!conn) continue;
      if (c.op() == evq::RingOp::recv) {
        if (c.error() == std::errc::no_buffer_space) {
          conn->starved = true;
          starved.push_back(slot);
          continue;
        }
        if (!c.ok() || c.bytes() == 0) {
          close_slot(slot);
          continue;
        }
        conn->buffer_id = c.buffer_id();
        conn->length = c.bytes();
        if (ring.write(conn->stream, pool->buffer(conn->buffer_id).first(conn->length), evq::Token{slot})) {
          pool->release(conn->buffer_id);
          close_slot(slot);
        }
        continue;
      }
      // RingOp::write. A short write never happens at these sizes; treat it as an error.
      pool->release(conn->buffer_id);
      if (!c.ok() || c.bytes() != conn->length) {
        close_slot(slot);
        continue;
      }
      echoed += c.bytes();
      if (echoed >= limit) return 0;
      start_recv(slot);
      while (!starved.empty()) {  // a buffer came back: one starved connection may read again
        const std::uint64_t next = starved.back();
        starved.pop_back();
        if (next < conns.size() && conns[next] && conns[next]->starved) {
          conns[next]->starved = false;
          start_recv(next);
          break;
        }
      }
    }
  }
}
