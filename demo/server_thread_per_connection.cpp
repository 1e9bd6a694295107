// Blocking sockets, one thread per connection: the textbook server. Each
// thread gets the platform's default stack, as a naive server's would.
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "blocking_echo.hpp"
#include "server_harness.hpp"
#include "servers.hpp"

namespace demo {
namespace {

void* connection_thread(void* arg) {
  serve_blocking_connection(static_cast<int>(reinterpret_cast<std::intptr_t>(arg)));
  return nullptr;
}

}  // namespace

int run_thread_per_connection_server() {
  std::uint16_t port = 0;
  const int listener = server::posix_listener(false, &port);
  server::announce_ready(port, "-");
  for (std::uint64_t n = 1;; ++n) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      server::fail("accept", errno);
    }
    server::set_nodelay(fd);
    pthread_t thread;
    const int rc = ::pthread_create(&thread, nullptr, connection_thread,
                                    reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
    if (rc != 0) server::fail("creating thread " + std::to_string(n), rc);
    ::pthread_detach(thread);
    server::accepted.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace demo
