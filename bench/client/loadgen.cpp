// evq benchmark load generator: closed loop, one thread, epoll.
//   loadgen --port P [--conns C] [--size S] [--duration SEC] [--warmup SEC]
//           [--until-closed] [--hold SEC]
// Each of C connections sends S bytes, waits for the S-byte echo, records the
// round trip and sends again. Prints one JSON object: requests/s over the
// measured window and round-trip p50/p99 in microseconds.
// --until-closed: no time limit; stop when the server closes every connection
// (the server's --requests N runs). --hold SEC: connect C idle connections,
// print "connected", hold them SEC seconds, exit (the idle-memory workload).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  std::size_t got = 0;
  Clock::time_point sent;
};

int connect_one(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) std::perror("socket"), std::exit(1);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) std::perror("connect"), std::exit(1);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}
}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::size_t conns = 100, size = 64;
  double duration = 5, warmup = 1, hold = 0;
  bool until_closed = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) std::fprintf(stderr, "missing value for %s\n", argv[i]), std::exit(2);
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--port")) port = std::atoi(next());
    else if (!std::strcmp(argv[i], "--conns")) conns = std::strtoull(next(), nullptr, 10);
    else if (!std::strcmp(argv[i], "--size")) size = std::strtoull(next(), nullptr, 10);
    else if (!std::strcmp(argv[i], "--duration")) duration = std::atof(next());
    else if (!std::strcmp(argv[i], "--warmup")) warmup = std::atof(next());
    else if (!std::strcmp(argv[i], "--hold")) hold = std::atof(next());
    else if (!std::strcmp(argv[i], "--until-closed")) until_closed = true;
    else std::fprintf(stderr, "unknown option %s\n", argv[i]), std::exit(2);
  }
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);

  std::vector<Conn> cs(conns);
  for (auto& c : cs) c.fd = connect_one(port);
  if (hold > 0) {
    std::printf("connected\n");
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(hold));
    return 0;
  }

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  for (std::size_t i = 0; i < cs.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  std::vector<char> msg(size, 'x');
  std::vector<char> buf(std::max<std::size_t>(size, 65536));
  std::vector<std::uint32_t> rtt_ns;
  rtt_ns.reserve(1 << 24);

  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
  const auto stop_at = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  for (auto& c : cs) {
    c.sent = Clock::now();
    if (::write(c.fd, msg.data(), size) != static_cast<ssize_t>(size)) std::perror("write"), std::exit(1);
  }
  std::uint64_t measured = 0;
  std::size_t open = cs.size();
  std::vector<epoll_event> events(1024);
  Clock::time_point now = start;
  while (open > 0) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    now = Clock::now();
    if (!until_closed && now >= stop_at) break;
    for (int i = 0; i < n; ++i) {
      Conn& c = cs[events[static_cast<std::size_t>(i)].data.u64];
      const ssize_t r = ::read(c.fd, buf.data(), buf.size());
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
        --open;
        continue;
      }
      c.got += static_cast<std::size_t>(r);
      if (c.got < size) continue;
      c.got -= size;
      if (until_closed || now >= measure_from) {
        ++measured;
        if (rtt_ns.size() < rtt_ns.capacity())
          rtt_ns.push_back(static_cast<std::uint32_t>(
              std::min<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent).count(),
                                     UINT32_MAX)));
      }
      c.sent = now;
      if (::write(c.fd, msg.data(), size) != static_cast<ssize_t>(size)) {
        ::close(c.fd);
        c.fd = -1;
        --open;
      }
    }
  }
  const double secs = until_closed ? std::chrono::duration<double>(now - start).count() : duration;
  auto pct = [&](double p) -> double {
    if (rtt_ns.empty()) return 0;
    const std::size_t k = std::min(rtt_ns.size() - 1, static_cast<std::size_t>(p * static_cast<double>(rtt_ns.size())));
    std::nth_element(rtt_ns.begin(), rtt_ns.begin() + static_cast<std::ptrdiff_t>(k), rtt_ns.end());
    return rtt_ns[k] / 1000.0;
  };
  const double p50 = pct(0.50), p99 = pct(0.99);
  std::printf("{\"requests\": %llu, \"seconds\": %.3f, \"rps\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f}\n",
              static_cast<unsigned long long>(measured), secs, static_cast<double>(measured) / secs, p50, p99);
  return 0;
}
