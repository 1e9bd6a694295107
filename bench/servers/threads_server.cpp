// Blocking thread-per-connection echo server.
#include <atomic>
#include <thread>

#include "common.hpp"

namespace {
std::atomic<std::uint64_t> echoed{0};
std::uint64_t limit = 0;

void serve(int fd) {
  static thread_local char buf[bench::kReadBuffer];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0 || ::write(fd, buf, static_cast<std::size_t>(r)) != r) break;
    if (echoed.fetch_add(static_cast<std::uint64_t>(r), std::memory_order_relaxed) +
            static_cast<std::uint64_t>(r) >= limit)
      std::exit(0);
  }
  ::close(fd);
}
}  // namespace

int main(int argc, char** argv) {
  const bench::Options o = bench::parse_options(argc, argv);
  limit = o.limit_bytes();
  const int lfd = bench::listen_socket(o.port, false);
  bench::announce(bench::bound_port(lfd));
  for (;;) {
    const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    bench::set_nodelay(c);
    std::thread t(serve, c);
    t.detach();
  }
}
