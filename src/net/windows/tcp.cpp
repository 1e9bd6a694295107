#include "evq/tcp.hpp"

#include <algorithm>

#include "net/windows/sockaddr.hpp"
#include "net/windows/socket_ops.hpp"

namespace evq {
namespace {

// Reading after shutdown(Shutdown::read): Winsock fails with WSAESHUTDOWN
// where Linux returns 0 (end of stream). evq says what Linux says.
bool read_side_shut(const std::error_code& ec) noexcept {
  return ec.value() == WSAESHUTDOWN && ec.category() == detail::windows_category();
}

}  // namespace

Result<TcpListener> TcpListener::bind(const SocketAddr& addr) {
  auto s = windows::open_socket(windows::address_family(addr), SOCK_STREAM, IPPROTO_TCP);
  if (!s) return s.error();
  TcpListener listener(*s);  // owns the socket from here: every error path closes it

  // No SO_REUSEADDR here, unlike POSIX: on Windows it lets another socket
  // bind the very port this one listens on (see "Using SO_REUSEADDR and
  // SO_EXCLUSIVEADDRUSE" in the Winsock docs), while what POSIX wants it for
  // (binding while old connections sit in TIME_WAIT) Windows allows anyway.
  // IPv6 only, as on every other OS (Windows's default too, set for clarity).
  if (addr.is_ipv6()) {
    if (auto ec = windows::set_int_option(*s, IPPROTO_IPV6, IPV6_V6ONLY, 1)) return ec;
  }
  const windows::Sockaddr sa = windows::to_sockaddr(addr);
  if (auto ec = windows::wsa_check([&] { return ::bind(*s, sa.get(), sa.len); })) return ec;
  // SOMAXCONN in winsock2.h means "a reasonable maximum" chosen by the provider.
  if (auto ec = windows::wsa_check([&] { return ::listen(*s, SOMAXCONN); })) return ec;
  return listener;
}

Result<std::pair<TcpStream, SocketAddr>> TcpListener::accept() {
  for (;;) {
    windows::Sockaddr sa;
    auto s = windows::accept_socket(handle_, sa);
    if (s) {
      TcpStream stream(*s);
      auto peer = windows::to_socket_addr(sa);
      if (!peer) return peer.error();
      return std::pair<TcpStream, SocketAddr>(std::move(stream), *peer);
    }
    // Reset while it waited in the queue (Windows says WSAECONNRESET where
    // Linux says ECONNABORTED): take the next one.
    const int code = s.error().value();
    if (code == WSAECONNRESET || code == WSAECONNABORTED) continue;
    if (windows::is_would_block(s.error())) on_would_block(Interest::readable);
    return s.error();
  }
}

Result<SocketAddr> TcpListener::local_addr() const { return windows::local_socket_addr(handle_); }

Result<TcpStream> TcpStream::connect(const SocketAddr& addr) {
  auto s = windows::open_socket(windows::address_family(addr), SOCK_STREAM, IPPROTO_TCP);
  if (!s) return s.error();
  TcpStream stream(*s);
  if (auto ec = windows::start_connect(*s, windows::to_sockaddr(addr))) return ec;
  return stream;
}

Result<std::size_t> TcpStream::read(std::span<std::byte> buf) {
  auto r = windows::recv_some(handle_, buf);
  if (!r) {
    if (windows::is_would_block(r.error())) on_would_block(Interest::readable);
    else if (read_side_shut(r.error())) return std::size_t{0};
  }
  return r;
}

Result<std::size_t> TcpStream::write(std::span<const std::byte> buf) {
  auto r = windows::send_some(handle_, buf);
  if (!r && windows::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::size_t> TcpStream::read_vectored(std::span<const IoSliceMut> bufs) {
  auto r = windows::recv_vectored(handle_, bufs);
  if (!r) {
    if (windows::is_would_block(r.error())) on_would_block(Interest::readable);
    else if (read_side_shut(r.error())) return std::size_t{0};
  }
  return r;
}

Result<std::size_t> TcpStream::write_vectored(std::span<const IoSlice> bufs) {
  auto r = windows::send_vectored(handle_, bufs);
  if (!r && windows::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::size_t> TcpStream::peek(std::span<std::byte> buf) {
  auto r = windows::recv_some(handle_, buf, MSG_PEEK);
  if (!r) {
    if (windows::is_would_block(r.error())) on_would_block(Interest::readable);
    else if (read_side_shut(r.error())) return std::size_t{0};
  }
  return r;
}

std::error_code TcpStream::shutdown(Shutdown how) { return windows::shutdown_socket(handle_, how); }

std::error_code TcpStream::set_nodelay(bool on) {
  return windows::set_int_option(handle_, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

Result<bool> TcpStream::nodelay() const {
  auto v = windows::get_int_option(handle_, IPPROTO_TCP, TCP_NODELAY);
  if (!v) return v.error();
  return *v != 0;
}

std::error_code TcpStream::set_linger(std::optional<std::chrono::seconds> linger) {
  ::linger l{};
  if (linger) {
    if (linger->count() < 0) return errc::invalid_argument;
    l.l_onoff = 1;
    l.l_linger = static_cast<u_short>(std::min<std::chrono::seconds::rep>(linger->count(), 65535));
  }
  return windows::wsa_check([&] {
    return ::setsockopt(handle_, SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&l), sizeof l);
  });
}

Result<SocketAddr> TcpStream::peer_addr() const { return windows::peer_socket_addr(handle_); }
Result<SocketAddr> TcpStream::local_addr() const { return windows::local_socket_addr(handle_); }
std::error_code TcpStream::take_error() { return windows::take_socket_error(handle_); }

}  // namespace evq
