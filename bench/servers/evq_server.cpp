// evq Poll echo server, level-triggered, public API only.
//   evq_server [--backend epoll|poll|io_uring] [--port P] [--requests N]   (default epoll)
#include <evq/evq.hpp>

#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  const bench::Options o = bench::parse_options(argc, argv);
  const auto backend = evq::backend_from_string(o.backend ? o.backend : "epoll");
  if (!backend) return std::fprintf(stderr, "unknown backend %s\n", o.backend ? o.backend : ""), 2;
  auto poll = evq::Poll::create(*backend);
  if (!poll) return std::fprintf(stderr, "poll: %s\n", poll.error().message().c_str()), 1;
  auto listener = evq::TcpListener::bind(evq::SocketAddr::loopback_v4(static_cast<std::uint16_t>(o.port)));
  if (!listener) return std::fprintf(stderr, "bind: %s\n", listener.error().message().c_str()), 1;
  evq::Registry& reg = poll->registry();
  constexpr evq::Token kListener{~std::uint64_t{0}};
  if (auto ec = reg.add(*listener, kListener, evq::Interest::readable, evq::Trigger::level))
    return std::fprintf(stderr, "add: %s\n", ec.message().c_str()), 1;
  auto addr = listener->local_addr();
  bench::announce(addr ? addr->port() : 0);

  // Connection slots indexed by token; a free list reuses them. Allocation
  // happens only when a connection arrives, never per request.
  std::vector<std::optional<evq::TcpStream>> conns;
  std::vector<std::uint64_t> free_slots;
  conns.reserve(1024);
  static std::byte buf[bench::kReadBuffer];
  evq::Events events(1024);
  const std::uint64_t limit = o.limit_bytes();
  std::uint64_t echoed = 0;

  auto drop = [&](std::uint64_t slot) {
    reg.remove(*conns[slot]);
    conns[slot].reset();
    free_slots.push_back(slot);
  };

  for (;;) {
    if (auto ec = poll->poll(events, std::nullopt))
      return std::fprintf(stderr, "poll: %s\n", ec.message().c_str()), 1;
    for (const evq::Event& ev : events) {
      if (ev.token() == kListener) {
        auto accepted = listener->accept();
        if (!accepted) continue;
        std::uint64_t slot;
        if (!free_slots.empty()) {
          slot = free_slots.back();
          free_slots.pop_back();
        } else {
          slot = conns.size();
          conns.emplace_back();
        }
        conns[slot].emplace(std::move(accepted->first));
        conns[slot]->set_nodelay(true);
        reg.add(*conns[slot], evq::Token{slot}, evq::Interest::readable, evq::Trigger::level);
        continue;
      }
      const auto slot = static_cast<std::uint64_t>(ev.token());
      evq::TcpStream& s = *conns[slot];
      auto r = s.read(buf);
      if (!r) {
        if (r.error() == std::errc::operation_would_block) continue;
        drop(slot);
        continue;
      }
      if (*r == 0) {
        drop(slot);
        continue;
      }
      auto w = s.write(std::span<const std::byte>(buf, *r));
      if (!w || *w != *r) {
        drop(slot);
        continue;
      }
      echoed += *r;
      if (echoed >= limit) return 0;
    }
  }
}
