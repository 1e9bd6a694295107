// Sends messages to an echo server and checks every byte comes back.
//   echo_client [host:port] [connections] [messages]   (default 127.0.0.1:7000 10 1000)
#include <evq/evq.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Client {
  evq::TcpStream stream;
  std::size_t sent = 0, received = 0, messages_left = 0;
  bool connected = false;
};

constexpr std::size_t kMessage = 64;

std::byte pattern(std::size_t i) { return static_cast<std::byte>(i * 131 + 7); }

}  // namespace

int main(int argc, char** argv) {
  const auto addr = evq::SocketAddr::parse(argc > 1 ? argv[1] : "127.0.0.1:7000");
  const int n = argc > 2 ? std::atoi(argv[2]) : 10;
  const int messages = argc > 3 ? std::atoi(argv[3]) : 1000;
  if (!addr || n <= 0 || messages <= 0) {
    std::fprintf(stderr, "usage: echo_client [host:port] [connections] [messages]\n");
    return 2;
  }
  auto poll = evq::Poll::create();
  if (!poll) return std::fprintf(stderr, "poll: %s\n", poll.error().message().c_str()), 1;

  std::vector<Client> clients;
  clients.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto s = evq::TcpStream::connect(*addr);
    if (!s) return std::fprintf(stderr, "connect: %s\n", s.error().message().c_str()), 1;
    clients.push_back(Client{std::move(*s), 0, 0, static_cast<std::size_t>(messages), false});
    poll->registry().add(clients.back().stream, evq::Token{static_cast<std::uint64_t>(i)},
                         evq::Interest::readable | evq::Interest::writable);
  }

  const auto start = std::chrono::steady_clock::now();
  std::size_t done = 0;
  evq::Events events(1024);
  std::byte buf[4096];
  while (done < clients.size()) {
    if (auto ec = poll->poll(events, std::chrono::seconds(10))) {
      std::fprintf(stderr, "poll: %s\n", ec.message().c_str());
      return 1;
    }
    if (events.empty()) return std::fprintf(stderr, "timed out\n"), 1;
    for (const evq::Event& ev : events) {
      Client& c = clients[static_cast<std::size_t>(ev.token())];
      if (!c.connected && ev.is_writable()) {
        if (auto ec = c.stream.take_error()) return std::fprintf(stderr, "connect: %s\n", ec.message().c_str()), 1;
        c.connected = true;
      }
      const std::size_t total = c.messages_left * kMessage;
      // One message in flight per connection: write it, then read it back.
      while (c.connected && c.sent < total && c.sent == c.received) {
        std::byte msg[kMessage];
        for (std::size_t i = 0; i < kMessage; ++i) msg[i] = pattern(c.sent + i);
        auto w = c.stream.write(msg);
        if (!w) break;
        c.sent += *w;
      }
      for (;;) {
        auto r = c.stream.read(buf);
        if (!r || *r == 0) break;
        for (std::size_t i = 0; i < *r; ++i)
          if (buf[i] != pattern(c.received + i)) return std::fprintf(stderr, "corrupt echo\n"), 1;
        c.received += *r;
        while (c.sent < total && c.sent == c.received) {
          std::byte msg[kMessage];
          for (std::size_t i = 0; i < kMessage; ++i) msg[i] = pattern(c.sent + i);
          auto w = c.stream.write(msg);
          if (!w) break;
          c.sent += *w;
        }
      }
      if (c.received == total && c.messages_left) {
        c.messages_left = 0;  // finished: count once
        ++done;
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d connections x %d messages echoed intact in %.3f s (%.0f round trips/s)\n", n, messages,
              secs, n * static_cast<double>(messages) / secs);
  return 0;
}
