// Blocking sockets, a fixed pool of threads: one acceptor queues connections,
// each worker serves one connection until it closes. When connections
// outnumber workers, the rest wait in the queue and their clients starve:
// that is the point this model makes.
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "blocking_echo.hpp"
#include "server_harness.hpp"
#include "servers.hpp"

namespace demo {
namespace {

struct ConnectionQueue {
  std::mutex mu;
  std::condition_variable ready;
  std::deque<int> fds;
};

void* worker_thread(void* arg) {
  auto& queue = *static_cast<ConnectionQueue*>(arg);
  for (;;) {
    int fd;
    {
      std::unique_lock lock(queue.mu);
      queue.ready.wait(lock, [&] { return !queue.fds.empty(); });
      fd = queue.fds.front();
      queue.fds.pop_front();
    }
    serve_blocking_connection(fd);
  }
}

}  // namespace

int run_thread_pool_server(int threads) {
  std::uint16_t port = 0;
  const int listener = server::posix_listener(false, &port);
  static ConnectionQueue queue;  // lives as long as the process
  for (int i = 0; i < threads; ++i) {
    pthread_t thread;
    const int rc = ::pthread_create(&thread, nullptr, worker_thread, &queue);
    if (rc != 0) server::fail("creating pool thread " + std::to_string(i + 1), rc);
    ::pthread_detach(thread);
  }
  server::announce_ready(port, "-");
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      server::fail("accept", errno);
    }
    server::set_nodelay(fd);
    {
      std::lock_guard lock(queue.mu);
      queue.fds.push_back(fd);
    }
    queue.ready.notify_one();
    server::accepted.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace demo
