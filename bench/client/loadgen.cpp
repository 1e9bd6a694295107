// evq benchmark load generator: one thread, epoll.
//   loadgen --port P [--conns C] [--size S] [--duration SEC] [--warmup SEC]
//           [--rate R] [--server-pid PID] [--until-closed] [--hold SEC]
// Closed loop (default): each of C connections sends S bytes, waits for the
// S-byte echo, records the round trip and sends again.
// Open loop (--rate R): R requests/s in total, request k due at start + k/R,
// given to the connections in turn and sent at its due time whether or not the
// connection's earlier requests were answered (echo keeps order, so each
// connection keeps a FIFO of due times). Latency counts from the due time, not
// the actual send: a stalled server is charged for every request it delayed
// (no coordinated omission).
// Prints one JSON object: requests/s over the measured window, latency
// p50/p99/p99.9 in microseconds, and with --server-pid the server's user and
// system CPU seconds over that same window (/proc/PID/stat).
// --until-closed: no time limit; stop when the server closes every connection
// (the server's --requests N runs). --hold SEC: connect C idle connections,
// print "connected", hold them SEC seconds, exit (the idle-memory workload).
// Above 1,000 connections the sockets are bound to 127.0.0.1..16 in turn
// (IP_BIND_ADDRESS_NO_PORT), so connect() does not crawl through one address's
// ephemeral ports.
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
  Clock::time_point sent;              // closed loop
  std::vector<Clock::time_point> due;  // open loop: due times of requests in flight, a FIFO ring
  std::size_t head = 0, count = 0;
};

int connect_one(int port, std::size_t index, bool spread) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) std::perror("socket"), std::exit(1);
  if (spread) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + static_cast<std::uint32_t>(index % 16));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) < 0) std::perror("bind"), std::exit(1);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) std::perror("connect"), std::exit(1);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// utime and stime of a process in seconds; {0, 0} when it cannot be read.
struct CpuTimes {
  double user = 0, sys = 0;
};
CpuTimes cpu_of(int pid) {
  if (pid <= 0) return {};
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return {};
  char line[1024];
  const std::size_t n = std::fread(line, 1, sizeof line - 1, f);
  std::fclose(f);
  line[n] = 0;
  const char* p = std::strrchr(line, ')');  // the command name may hold spaces
  if (!p) return {};
  unsigned long long ut = 0, st = 0;
  // after ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return {};
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {static_cast<double>(ut) / hz, static_cast<double>(st) / hz};
}
}  // namespace

int main(int argc, char** argv) {
  int port = 0, server_pid = 0;
  std::size_t conns = 100, size = 64;
  double duration = 5, warmup = 1, hold = 0, rate = 0;
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
    else if (!std::strcmp(argv[i], "--rate")) rate = std::atof(next());
    else if (!std::strcmp(argv[i], "--server-pid")) server_pid = std::atoi(next());
    else if (!std::strcmp(argv[i], "--until-closed")) until_closed = true;
    else std::fprintf(stderr, "unknown option %s\n", argv[i]), std::exit(2);
  }
  if (size == 0 || conns == 0) std::fprintf(stderr, "--size and --conns must be positive\n"), std::exit(2);
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);

  std::vector<Conn> cs(conns);
  for (std::size_t i = 0; i < cs.size(); ++i) cs[i].fd = connect_one(port, i, conns > 1000);
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
  const bool open_loop = rate > 0;
  // Open loop: a connection never has more in flight than this (the run is
  // overloaded long before; the server's socket buffers would fill anyway).
  constexpr std::size_t kMaxInFlight = 4096;
  if (open_loop)
    for (auto& c : cs) c.due.resize(kMaxInFlight);
  std::vector<char> msg(size, 'x');
  std::vector<char> buf(std::max<std::size_t>(size, 65536));
  std::vector<std::uint32_t> rtt_ns;
  rtt_ns.reserve(1 << 24);

  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
  const auto stop_at = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  std::size_t open = cs.size();
  auto close_conn = [&](Conn& c) {
    ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.fd = -1;
    --open;
  };
  if (!open_loop) {
    for (auto& c : cs) {
      c.sent = Clock::now();
      if (::write(c.fd, msg.data(), size) != static_cast<ssize_t>(size)) std::perror("write"), std::exit(1);
    }
  }
  const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(open_loop ? 1.0 / rate : 1.0));
  Clock::time_point next_due = start;
  std::size_t next_conn = 0;
  std::uint64_t measured = 0, dropped = 0;
  bool measuring = until_closed;
  CpuTimes cpu0 = cpu_of(server_pid), cpu1{};
  std::vector<epoll_event> events(1024);
  Clock::time_point now = start;
  while (open > 0) {
    int timeout_ms = 200;
    if (open_loop) {
      now = Clock::now();
      // Send every request now due (a late client sends the backlog at once;
      // latency still counts from each due time).
      while (next_due <= now) {
        Conn& c = cs[next_conn];
        next_conn = (next_conn + 1) % cs.size();
        if (c.fd >= 0 && c.count < kMaxInFlight) {
          c.due[(c.head + c.count) % kMaxInFlight] = next_due;
          ++c.count;
          if (::write(c.fd, msg.data(), size) != static_cast<ssize_t>(size)) close_conn(c);
        } else {
          ++dropped;
        }
        next_due += interval;
      }
      // Sub-millisecond spacing: do not sleep in epoll_wait (the client has its own core).
      timeout_ms = next_due - now < std::chrono::milliseconds(1) ? 0 : 1;
    }
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
    now = Clock::now();
    if (!measuring && now >= measure_from) {
      measuring = true;
      cpu0 = cpu_of(server_pid);
    }
    if (!until_closed && now >= stop_at) break;
    for (int i = 0; i < n; ++i) {
      Conn& c = cs[events[static_cast<std::size_t>(i)].data.u64];
      if (c.fd < 0) continue;
      const ssize_t r = ::read(c.fd, buf.data(), buf.size());
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        close_conn(c);
        continue;
      }
      c.got += static_cast<std::size_t>(r);
      while (c.got >= size) {  // closed loop: at most once; open loop: every answered request
        c.got -= size;
        Clock::time_point from = c.sent;
        if (open_loop) {
          if (c.count == 0) break;  // more echoed than sent: cannot happen with a correct server
          from = c.due[c.head];
          c.head = (c.head + 1) % kMaxInFlight;
          --c.count;
        }
        if (measuring) {
          ++measured;
          if (rtt_ns.size() < rtt_ns.capacity())
            rtt_ns.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - from).count(), UINT32_MAX)));
        }
        if (!open_loop) {
          c.sent = now;
          if (::write(c.fd, msg.data(), size) != static_cast<ssize_t>(size)) close_conn(c);
          break;
        }
      }
    }
  }
  cpu1 = cpu_of(server_pid);
  const double secs = until_closed ? std::chrono::duration<double>(now - start).count() : duration;
  auto pct = [&](double p) -> double {
    if (rtt_ns.empty()) return 0;
    const std::size_t k = std::min(rtt_ns.size() - 1, static_cast<std::size_t>(p * static_cast<double>(rtt_ns.size())));
    std::nth_element(rtt_ns.begin(), rtt_ns.begin() + static_cast<std::ptrdiff_t>(k), rtt_ns.end());
    return rtt_ns[k] / 1000.0;
  };
  const double p50 = pct(0.50), p99 = pct(0.99), p999 = pct(0.999);
  // Open loop: requests still unanswered at the end are at least this late.
  std::uint64_t unanswered = 0;
  for (const auto& c : cs) unanswered += c.count;
  std::printf("{\"requests\": %llu, \"seconds\": %.3f, \"rps\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f, "
              "\"p999_us\": %.2f, \"srv_user_s\": %.4f, \"srv_sys_s\": %.4f, \"unanswered\": %llu, \"dropped\": %llu}\n",
              static_cast<unsigned long long>(measured), secs, static_cast<double>(measured) / secs, p50, p99, p999,
              cpu1.user - cpu0.user, cpu1.sys - cpu0.sys, static_cast<unsigned long long>(unanswered),
              static_cast<unsigned long long>(dropped));
  return 0;
}
