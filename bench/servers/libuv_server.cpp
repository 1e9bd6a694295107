// libuv echo server: uv_read_start with a static 64 KiB buffer, uv_try_write.
#include <uv.h>

#include "common.hpp"

namespace {
char buf[bench::kReadBuffer];
std::uint64_t echoed = 0;
std::uint64_t limit = 0;
uv_loop_t* loop = nullptr;

void on_close(uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); }

void on_alloc(uv_handle_t*, std::size_t, uv_buf_t* b) { *b = uv_buf_init(buf, sizeof buf); }

void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
  if (n == 0) return;  // EAGAIN
  if (n < 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(s), on_close);
    return;
  }
  uv_buf_t out = uv_buf_init(b->base, static_cast<unsigned>(n));
  if (uv_try_write(s, &out, 1) != n) {
    uv_close(reinterpret_cast<uv_handle_t*>(s), on_close);
    return;
  }
  echoed += static_cast<std::uint64_t>(n);
  if (echoed >= limit) uv_stop(loop);
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* c = new uv_tcp_t;
  uv_tcp_init(loop, c);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(c)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(c), on_close);
    return;
  }
  uv_tcp_nodelay(c, 1);
  uv_read_start(reinterpret_cast<uv_stream_t*>(c), on_alloc, on_read);
}
}  // namespace

int main(int argc, char** argv) {
  const bench::Options o = bench::parse_options(argc, argv);
  limit = o.limit_bytes();
  loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", o.port, &addr);
  uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (uv_listen(reinterpret_cast<uv_stream_t*>(&server), 4096, on_connection) != 0)
    return std::fprintf(stderr, "listen failed\n"), 1;
  sockaddr_in bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&server, reinterpret_cast<sockaddr*>(&bound), &len);
  bench::announce(ntohs(bound.sin_port));
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
