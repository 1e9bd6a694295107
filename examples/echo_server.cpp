// A complete evq echo server: one thread, one Poll, edge-triggered.
//   echo_server [port]        (default 7000; SIGINT/SIGTERM stop it cleanly)
#include <evq/evq.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

evq::Waker* g_stop = nullptr;  // the only thing a signal handler touches

extern "C" void on_signal(int) {
  // Waker::wake is a single atomic exchange and at most one write(2): safe
  // in a signal handler.
  if (g_stop) g_stop->wake();
}

struct Connection {
  evq::TcpStream stream;
  std::vector<std::byte> pending;  // read but not yet written back
};

constexpr evq::Token kListener{0};
constexpr evq::Token kStop{1};

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 7000;
  if (port <= 0 || port > 65535) {
    std::fprintf(stderr, "usage: echo_server [port]\n");
    return 2;
  }
#ifdef SIGPIPE  // POSIX only; Windows has no SIGPIPE
  std::signal(SIGPIPE, SIG_IGN);
#endif

  auto poll = evq::Poll::create();
  if (!poll) return std::fprintf(stderr, "poll: %s\n", poll.error().message().c_str()), 1;
  auto listener = evq::TcpListener::bind(evq::SocketAddr::v4({0, 0, 0, 0}, static_cast<std::uint16_t>(port)));
  if (!listener) return std::fprintf(stderr, "bind: %s\n", listener.error().message().c_str()), 1;
  auto stop = evq::Waker::create(poll->registry(), kStop);
  if (!stop) return std::fprintf(stderr, "waker: %s\n", stop.error().message().c_str()), 1;
  g_stop = &*stop;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  poll->registry().add(*listener, kListener, evq::Interest::readable);
  std::printf("echo server on port %d, backend %s\n", port,
              std::string(evq::to_string(poll->backend())).c_str());
  std::fflush(stdout);

  std::unordered_map<std::uint64_t, Connection> conns;
  std::uint64_t next_token = 2;
  evq::Events events(1024);
  std::byte buf[64 * 1024];

  for (;;) {
    if (auto ec = poll->poll(events, std::nullopt)) {
      std::fprintf(stderr, "poll: %s\n", ec.message().c_str());
      return 1;
    }
    for (const evq::Event& ev : events) {
      if (ev.token() == kStop) {
        std::printf("stopping: %zu connections open\n", conns.size());
        return 0;  // destructors close every socket
      }
      if (ev.token() == kListener) {
        for (;;) {  // edge-triggered: accept until would-block
          auto accepted = listener->accept();
          if (!accepted) break;  // would_block, or EMFILE: try again on the next event
          const evq::Token t{next_token++};
          auto& c = conns.emplace(static_cast<std::uint64_t>(t), Connection{std::move(accepted->first), {}})
                        .first->second;
          c.stream.set_nodelay(true);
          poll->registry().add(c.stream, t, evq::Interest::readable | evq::Interest::writable);
        }
        continue;
      }
      auto it = conns.find(static_cast<std::uint64_t>(ev.token()));
      if (it == conns.end()) continue;
      Connection& c = it->second;
      bool closed = false;
      for (;;) {  // read until would-block, echoing as we go
        if (!c.pending.empty()) {
          auto w = c.stream.write(c.pending);
          if (!w) {
            closed = w.error() != std::errc::operation_would_block;
            break;  // wait for writable
          }
          c.pending.erase(c.pending.begin(), c.pending.begin() + static_cast<std::ptrdiff_t>(*w));
          if (!c.pending.empty()) continue;
        }
        auto r = c.stream.read(buf);
        if (!r) {
          closed = r.error() != std::errc::operation_would_block;
          break;
        }
        if (*r == 0) {
          closed = true;
          break;
        }
        c.pending.assign(buf, buf + *r);
      }
      if (closed) conns.erase(it);  // ~TcpStream removes and closes
    }
  }
}
