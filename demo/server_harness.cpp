#include "server_harness.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace demo::server {

std::atomic<std::uint64_t> accepted{0};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "read from a signal handler");

namespace {

// snprintf is not async-signal-safe: format by hand.
char* append_number(char* out, std::uint64_t v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

std::uint64_t micros(const timeval& tv) {
  return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(tv.tv_usec);
}

extern "C" void on_snapshot_signal(int) {
  const int saved_errno = errno;
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  char line[160];
  char* p = line;
  const auto put = [&](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  put("snap ");
  p = append_number(p, micros(ru.ru_utime));
  put(" ");
  p = append_number(p, micros(ru.ru_stime));
  put(" ");
  p = append_number(p, static_cast<std::uint64_t>(ru.ru_nvcsw));
  put(" ");
  p = append_number(p, static_cast<std::uint64_t>(ru.ru_nivcsw));
  put(" ");
  p = append_number(p, accepted.load(std::memory_order_relaxed));
  put("\n");
  // One write of < PIPE_BUF bytes: atomic, never interleaved with another line.
  [[maybe_unused]] auto n = ::write(STDOUT_FILENO, line, static_cast<std::size_t>(p - line));
  errno = saved_errno;
}

void write_line(const std::string& line) {
  std::size_t done = 0;
  while (done < line.size()) {
    const auto n = ::write(STDOUT_FILENO, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

void install_snapshot_handler() {
  struct sigaction sa{};
  sa.sa_handler = on_snapshot_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGUSR1, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that goes away must not kill the server
}

void announce_ready(std::uint16_t port, std::string_view backend) {
  write_line("ready " + std::to_string(port) + " " + std::string(backend) + "\n");
}

void fail(std::string_view what, std::error_code ec) {
  // Block the snapshot signal so the error line is the last one.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  write_line("error " + std::string(what) + ": " + ec.message() + "\n");
  ::_exit(3);
}

void fail(std::string_view what, int errno_value) { fail(what, std::error_code(errno_value, std::generic_category())); }

int posix_listener(bool non_blocking, std::uint16_t* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (non_blocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) fail("socket", errno);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  std::memcpy(&sa.sin_addr, listen_octets, 4);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) fail("bind", errno);
  // Same backlog as evq's TcpListener, so every model queues connects alike.
  if (::listen(fd, 4096) != 0) fail("listen", errno);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace demo::server
