#include "evq/tcp.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>

#include "net/posix/os_compat.hpp"
#include "net/posix/sockaddr.hpp"
#include "net/posix/socket_io.hpp"

namespace evq {
namespace {

// The kernel clamps the backlog to its own limit (net.core.somaxconn on Linux,
// kern.ipc.somaxconn on the BSDs) without complaint, so asking for at least
// 4096 is harmless where SOMAXCONN is still 128 (macOS, older glibc) and lets
// a burst of thousands of connects queue where the system allows it.
constexpr int listen_backlog = std::max(SOMAXCONN, 4096);

}  // namespace

Result<TcpListener> TcpListener::bind(const SocketAddr& addr) {
  auto fd = posix::sys_call<int>(
      [&] { return posix::open_socket(posix::address_family(addr), SOCK_STREAM); });
  if (!fd) return fd.error();
  TcpListener listener(*fd);  // owns the descriptor from here: every error path closes it

  // Lets a restarted server bind while old connections sit in TIME_WAIT.
  if (auto ec = posix::set_int_option(*fd, SOL_SOCKET, SO_REUSEADDR, 1)) return ec;
  // An IPv6 listener takes IPv6 only, on every OS: Linux defaults to dual stack
  // (net.ipv6.bindv6only=0), the BSDs to IPv6 only. To serve both, a program
  // binds 0.0.0.0 as well.
  if (addr.is_ipv6()) {
    if (auto ec = posix::set_int_option(*fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) return ec;
  }
  const posix::Sockaddr sa = posix::to_sockaddr(addr);
  if (auto ec = posix::sys_check([&] { return ::bind(*fd, sa.get(), sa.len); })) return ec;
  if (auto ec = posix::sys_check([&] { return ::listen(*fd, listen_backlog); })) return ec;
  return listener;
}

Result<std::pair<TcpStream, SocketAddr>> TcpListener::accept() {
  for (;;) {
    posix::Sockaddr sa;
    auto fd =
        posix::sys_call<int>([&] { return posix::accept_socket(handle_, sa.get(), &sa.len); });
    if (fd) {
      TcpStream stream(*fd);
      auto peer = posix::to_socket_addr(sa);
      if (!peer) return peer.error();
      return std::pair<TcpStream, SocketAddr>(std::move(stream), *peer);
    }
    // The connection was reset while it waited in the queue: take the next
    // one rather than report what the caller can do nothing about.
    if (fd.error().value() == ECONNABORTED) continue;
    if (posix::is_would_block(fd.error())) on_would_block(Interest::readable);
    return fd.error();
  }
}

Result<SocketAddr> TcpListener::local_addr() const { return posix::local_socket_addr(handle_); }

Result<TcpStream> TcpStream::connect(const SocketAddr& addr) {
  auto fd = posix::sys_call<int>(
      [&] { return posix::open_socket(posix::address_family(addr), SOCK_STREAM); });
  if (!fd) return fd.error();
  TcpStream stream(*fd);
  if (auto ec = posix::start_connect(*fd, posix::to_sockaddr(addr))) return ec;
  return stream;
}

// read() and write() are inline in evq/tcp.hpp; this is their failure path.
std::error_code TcpStream::io_failed(Interest direction) noexcept {
  const std::error_code ec = detail::errno_code();
  if (posix::is_would_block(ec)) on_would_block(direction);
  return ec;
}

Result<std::size_t> TcpStream::read_vectored(std::span<const IoSliceMut> bufs) {
  auto r = posix::recv_vectored(handle_, bufs);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::readable);
  return r;
}

Result<std::size_t> TcpStream::write_vectored(std::span<const IoSlice> bufs) {
  auto r = posix::send_vectored(handle_, bufs);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::size_t> TcpStream::peek(std::span<std::byte> buf) {
  auto r = posix::recv_some(handle_, buf, MSG_PEEK);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::readable);
  return r;
}

std::error_code TcpStream::shutdown(Shutdown how) { return posix::shutdown_socket(handle_, how); }

std::error_code TcpStream::set_nodelay(bool on) {
  return posix::set_int_option(handle_, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

Result<bool> TcpStream::nodelay() const {
  auto v = posix::get_int_option(handle_, IPPROTO_TCP, TCP_NODELAY);
  if (!v) return v.error();
  return *v != 0;
}

std::error_code TcpStream::set_linger(std::optional<std::chrono::seconds> linger) {
  ::linger l{};
  if (linger) {
    if (linger->count() < 0) return errc::invalid_argument;
    l.l_onoff = 1;
    l.l_linger = static_cast<int>(std::min<std::chrono::seconds::rep>(linger->count(), 65535));
  }
  return posix::sys_check(
      [&] { return ::setsockopt(handle_, SOL_SOCKET, posix::linger_option, &l, sizeof l); });
}

Result<SocketAddr> TcpStream::peer_addr() const { return posix::peer_socket_addr(handle_); }
Result<SocketAddr> TcpStream::local_addr() const { return posix::local_socket_addr(handle_); }
std::error_code TcpStream::take_error() { return posix::take_socket_error(handle_); }

}  // namespace evq
