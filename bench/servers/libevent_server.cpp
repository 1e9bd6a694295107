// libevent echo server: plain events (EV_READ|EV_PERSIST), no bufferevents.
#include <event2/event.h>

#include "common.hpp"

namespace {
char buf[bench::kReadBuffer];
std::uint64_t echoed = 0;
std::uint64_t limit = 0;
event_base* base = nullptr;

void on_conn(evutil_socket_t fd, short, void* arg) {
  const ssize_t r = ::read(fd, buf, sizeof buf);
  if (r < 0 && errno == EAGAIN) return;
  if (r <= 0 || ::write(fd, buf, static_cast<std::size_t>(r)) != r) {
    event_free(static_cast<event*>(arg));
    ::close(fd);
    return;
  }
  echoed += static_cast<std::uint64_t>(r);
  if (echoed >= limit) event_base_loopbreak(base);
}

void on_accept(evutil_socket_t lfd, short, void*) {
  const int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) return;
  bench::set_nodelay(c);
  event* e = event_new(base, c, EV_READ | EV_PERSIST, on_conn, event_self_cbarg());
  event_add(e, nullptr);
}
}  // namespace

int main(int argc, char** argv) {
  const bench::Options o = bench::parse_options(argc, argv);
  limit = o.limit_bytes();
  base = event_base_new();
  const int lfd = bench::listen_socket(o.port, true);
  event* le = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept, nullptr);
  event_add(le, nullptr);
  bench::announce(bench::bound_port(lfd));
  event_base_dispatch(base);
  event_free(le);
  event_base_free(base);
  return 0;
}
