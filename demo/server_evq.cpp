// evq readiness: one thread, one Poll, every socket registered. The thread
// sleeps in Poll::poll until some socket has data, then reads it and writes
// the bytes back.
//
// Level-triggered, one read per event: with small requests an edge-triggered
// loop pays a third system call per request, the read that returns
// would-block (DESIGN.md: "every event loop makes ~2 syscalls per request,
// except edge-triggered loops that read until would-block"), and the blocking
// models make two. Data left in the socket is simply reported again.
#include <evq/evq.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server_harness.hpp"
#include "servers.hpp"

namespace demo {
namespace {

constexpr evq::Token listener_token{~std::uint64_t{0}};

struct Connection {
  std::optional<evq::TcpStream> stream;  // empty in a free slot
  std::vector<std::byte> unsent;  // echo the socket could not take yet (rare)
};

// Connections live in a slab indexed by token; freed slots are reused.
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
    slots_[i].stream.emplace(std::move(stream));
    return i;
  }
  Connection* find(std::uint64_t i) { return i < slots_.size() && slots_[i].stream ? &slots_[i] : nullptr; }
  void erase(std::uint64_t i) {
    slots_[i] = Connection{};  // ~TcpStream leaves the Registry and closes
    free_.push_back(i);
  }

 private:
  std::vector<Connection> slots_;
  std::vector<std::uint64_t> free_;
};

// One read, echoed back. False when the connection ends.
bool serve(evq::Registry& registry, evq::Token token, Connection& c, std::span<std::byte> buf) {
  if (!c.unsent.empty()) {  // writable again after a full send buffer
    auto w = c.stream->write(c.unsent);
    if (!w) return w.error() == std::errc::operation_would_block;
    c.unsent.erase(c.unsent.begin(), c.unsent.begin() + static_cast<std::ptrdiff_t>(*w));
    if (!c.unsent.empty()) return true;
    registry.modify(*c.stream, token, evq::Interest::readable, evq::Trigger::level);
  }
  auto r = c.stream->read(buf);
  if (!r) return r.error() == std::errc::operation_would_block;
  if (*r == 0) return false;
  auto w = c.stream->write(buf.first(*r));
  if (!w && w.error() != std::errc::operation_would_block) return false;
  const std::size_t written = w ? *w : 0;
  if (written < *r) {
    // The send buffer is full (the client stopped reading): keep the rest,
    // stop reading and wait for writable.
    c.unsent.assign(buf.begin() + static_cast<std::ptrdiff_t>(written), buf.begin() + static_cast<std::ptrdiff_t>(*r));
    registry.modify(*c.stream, token, evq::Interest::writable, evq::Trigger::level);
  }
  return true;
}

}  // namespace

int run_evq_server(bool poll_backend) {
  auto poll = poll_backend ? evq::Poll::create(evq::Backend::poll) : evq::Poll::create();
  if (!poll) server::fail("Poll::create", poll.error());
  auto listener = evq::TcpListener::bind(
      evq::SocketAddr::v4({server::listen_octets[0], server::listen_octets[1], server::listen_octets[2],
                           server::listen_octets[3]},
                          0));
  if (!listener) server::fail("TcpListener::bind", listener.error());
  auto local = listener->local_addr();
  if (!local) server::fail("local_addr", local.error());
  evq::Registry& registry = poll->registry();
  if (auto ec = registry.add(*listener, listener_token, evq::Interest::readable)) server::fail("Registry::add", ec);
  server::announce_ready(local->port(), evq::to_string(poll->backend()));

  Connections conns;
  evq::Events events(1024);
  std::byte buf[4096];
  for (;;) {
    if (auto ec = poll->poll(events, std::nullopt)) server::fail("Poll::poll", ec);
    for (const evq::Event& ev : events) {
      if (ev.token() == listener_token) {
        for (;;) {  // accept all that wait: fewer wake-ups when many connect at once
          auto accepted = listener->accept();
          if (!accepted) {
            if (accepted.error() == std::errc::operation_would_block) break;
            server::fail("accept", accepted.error());
          }
          accepted->first.set_nodelay(true);
          const std::uint64_t i = conns.insert(std::move(accepted->first));
          if (auto ec = registry.add(*conns.find(i)->stream, evq::Token{i}, evq::Interest::readable, evq::Trigger::level))
            server::fail("Registry::add", ec);
          server::accepted.fetch_add(1, std::memory_order_relaxed);
        }
        continue;
      }
      const auto i = static_cast<std::uint64_t>(ev.token());
      Connection* c = conns.find(i);
      if (c && !serve(registry, ev.token(), *c, buf)) conns.erase(i);
    }
  }
}

}  // namespace demo
