// Standalone Asio echo server, reactor style: async_wait(wait_read), then a
// non-blocking read_some into the shared 64 KiB buffer and write_some.
#include <asio.hpp>

#include <memory>

#include "common.hpp"

namespace {
char buf[bench::kReadBuffer];
std::uint64_t echoed = 0;
std::uint64_t limit = 0;
asio::io_context* io_ctx = nullptr;

struct Conn : std::enable_shared_from_this<Conn> {
  explicit Conn(asio::ip::tcp::socket s) : sock(std::move(s)) {}
  asio::ip::tcp::socket sock;

  void wait() {
    sock.async_wait(asio::socket_base::wait_read,
                    [self = shared_from_this()](const asio::error_code& ec) { self->on_ready(ec); });
  }
  void on_ready(const asio::error_code& ec) {
    if (ec) return;
    asio::error_code rec;
    const std::size_t n = sock.read_some(asio::buffer(buf), rec);
    if (rec == asio::error::would_block) return wait();
    if (rec || n == 0) return;  // the last shared_ptr goes: the socket closes
    asio::error_code wec;
    if (sock.write_some(asio::buffer(buf, n), wec) != n || wec) return;
    echoed += n;
    if (echoed >= limit) {
      io_ctx->stop();
      return;
    }
    wait();
  }
};

void do_accept(asio::ip::tcp::acceptor& acc) {
  acc.async_accept([&acc](const asio::error_code& ec, asio::ip::tcp::socket s) {
    if (!ec) {
      s.set_option(asio::ip::tcp::no_delay(true));
      s.non_blocking(true);
      std::make_shared<Conn>(std::move(s))->wait();
    }
    do_accept(acc);
  });
}
}  // namespace

int main(int argc, char** argv) {
  const bench::Options o = bench::parse_options(argc, argv);
  limit = o.limit_bytes();
  asio::io_context io(1);
  io_ctx = &io;
  asio::ip::tcp::acceptor acc(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                                          static_cast<unsigned short>(o.port)));
  acc.listen(4096);
  bench::announce(acc.local_endpoint().port());
  do_accept(acc);
  io.run();
  return 0;
}
