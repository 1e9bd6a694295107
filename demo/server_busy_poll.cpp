// Non-blocking sockets, one thread, no readiness API: try to accept, then try
// to read every socket in turn, forever. It answers quickly at small N, but it
// never sleeps, and each sweep costs one system call per connection.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "server_harness.hpp"
#include "servers.hpp"

namespace demo {
namespace {

// Writes all of buf, spinning on would-block: replies are tiny, so a full
// send buffer means the client stopped reading; give up after a while.
bool send_all(int fd, const char* buf, std::size_t len) {
  std::size_t done = 0;
  for (int spins = 0; done < len && spins < 1'000'000; ++spins) {
    const ssize_t w = ::send(fd, buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      done += static_cast<std::size_t>(w);
    } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return false;
    }
  }
  return done == len;
}

}  // namespace

int run_busy_poll_server() {
  std::uint16_t port = 0;
  const int listener = server::posix_listener(true, &port);
  server::announce_ready(port, "-");
  std::vector<int> fds;
  char buf[4096];
  for (;;) {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        server::fail("accept", errno);
      }
      server::set_nodelay(fd);
      fds.push_back(fd);
      server::accepted.fetch_add(1, std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < fds.size();) {
      const ssize_t n = ::recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
      const bool open = n > 0 ? send_all(fds[i], buf, static_cast<std::size_t>(n))
                              : n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
      if (open) {
        ++i;
      } else {
        ::close(fds[i]);
        fds[i] = fds.back();
        fds.pop_back();
      }
    }
  }
}

}  // namespace demo
