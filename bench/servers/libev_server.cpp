// libev echo server: one ev_io watcher per connection (level-triggered).
#include <ev.h>

#include <vector>

#include "common.hpp"

namespace {
char buf[bench::kReadBuffer];
std::uint64_t echoed = 0;
std::uint64_t limit = 0;
std::vector<ev_io*> watchers;  // by fd, reused; allocated once per fd number

void on_conn(struct ev_loop* loop, ev_io* w, int) {
  const ssize_t r = ::read(w->fd, buf, sizeof buf);
  if (r < 0 && errno == EAGAIN) return;
  if (r <= 0 || ::write(w->fd, buf, static_cast<std::size_t>(r)) != r) {
    ev_io_stop(loop, w);
    ::close(w->fd);
    return;
  }
  echoed += static_cast<std::uint64_t>(r);
  if (echoed >= limit) ev_break(loop, EVBREAK_ALL);
}

void on_accept(struct ev_loop* loop, ev_io* w, int) {
  const int c = ::accept4(w->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) return;
  bench::set_nodelay(c);
  if (static_cast<std::size_t>(c) >= watchers.size()) watchers.resize(static_cast<std::size_t>(c) + 1, nullptr);
  if (!watchers[static_cast<std::size_t>(c)]) watchers[static_cast<std::size_t>(c)] = new ev_io;
  ev_io* cw = watchers[static_cast<std::size_t>(c)];
  ev_io_init(cw, on_conn, c, EV_READ);
  ev_io_start(loop, cw);
}
}  // namespace

int main(int argc, char** argv) {
  const bench::Options o = bench::parse_options(argc, argv);
  limit = o.limit_bytes();
  struct ev_loop* loop = ev_default_loop(EVBACKEND_EPOLL);
  const int lfd = bench::listen_socket(o.port, true);
  ev_io lw;
  ev_io_init(&lw, on_accept, lfd, EV_READ);
  ev_io_start(loop, &lw);
  bench::announce(bench::bound_port(lfd));
  ev_run(loop, 0);
  return 0;
}
