// The floor: a hand-written level-triggered epoll echo loop in plain C++.
#include <sys/epoll.h>

#include "common.hpp"

int main(int argc, char** argv) {
  const bench::Options o = bench::parse_options(argc, argv);
  const int lfd = bench::listen_socket(o.port, true);
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  bench::announce(bench::bound_port(lfd));

  static char buf[bench::kReadBuffer];
  static epoll_event events[1024];
  const std::uint64_t limit = o.limit_bytes();
  std::uint64_t echoed = 0;
  for (;;) {
    const int n = ::epoll_wait(ep, events, 1024, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == lfd) {
        const int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) continue;
        bench::set_nodelay(c);
        epoll_event cev{};
        cev.events = EPOLLIN;
        cev.data.fd = c;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        continue;
      }
      const ssize_t r = ::read(fd, buf, sizeof buf);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        ::close(fd);  // also removes it from the epoll set
        continue;
      }
      if (::write(fd, buf, static_cast<std::size_t>(r)) != r) {
        ::close(fd);  // a short write never happens at these sizes; treat as an error
        continue;
      }
      echoed += static_cast<std::uint64_t>(r);
      if (echoed >= limit) return 0;
    }
  }
}
