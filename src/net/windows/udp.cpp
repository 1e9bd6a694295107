#include "evq/udp.hpp"

#include "net/windows/sockaddr.hpp"
#include "net/windows/socket_ops.hpp"

namespace evq {
namespace {

// Windows turns an ICMP "port unreachable" into WSAECONNRESET on the next
// receive of any UDP socket, connected or not. Linux reports it (as
// ECONNREFUSED) only on a connected socket. SIO_UDP_CONNRESET switches the
// report; evq turns it off at bind and on at connect, and says
// connection_refused as Linux does. Best effort: a provider without the
// ioctl just keeps its default.
void report_port_unreachable(SOCKET s, bool on) noexcept {
  BOOL value = on ? TRUE : FALSE;
  DWORD bytes = 0;
  (void)::WSAIoctl(s, SIO_UDP_CONNRESET, &value, sizeof value, nullptr, 0, &bytes, nullptr, nullptr);
}

// The Linux name for the same report (see above); a cold path.
template <class T>
Result<T> as_linux_udp_error(Result<T> r) noexcept {
  if (!r && r.error().value() == WSAECONNRESET && r.error().category() == detail::windows_category())
    return detail::windows_error(WSAECONNREFUSED);
  return r;
}

// A datagram longer than the buffer fills it and fails with WSAEMSGSIZE; the
// rest is dropped. POSIX recv(2) returns the truncated length instead: so here.
bool truncated(const std::error_code& ec) noexcept {
  return ec.value() == WSAEMSGSIZE && ec.category() == detail::windows_category();
}

}  // namespace

Result<UdpSocket> UdpSocket::bind(const SocketAddr& addr) {
  auto s = windows::open_socket(windows::address_family(addr), SOCK_DGRAM, IPPROTO_UDP);
  if (!s) return s.error();
  UdpSocket sock(*s);  // owns the socket from here: every error path closes it

  // IPv6 only, as TcpListener (Windows's default too).
  if (addr.is_ipv6()) {
    if (auto ec = windows::set_int_option(*s, IPPROTO_IPV6, IPV6_V6ONLY, 1)) return ec;
  }
  report_port_unreachable(*s, false);
  const windows::Sockaddr sa = windows::to_sockaddr(addr);
  if (auto ec = windows::wsa_check([&] { return ::bind(*s, sa.get(), sa.len); })) return ec;
  return sock;
}

std::error_code UdpSocket::connect(const SocketAddr& addr) {
  // A datagram connect only records the peer: it never blocks.
  const windows::Sockaddr sa = windows::to_sockaddr(addr);
  if (auto ec = windows::wsa_check([&] { return ::connect(handle_, sa.get(), sa.len); })) return ec;
  report_port_unreachable(handle_, true);
  return {};
}

Result<std::size_t> UdpSocket::send(std::span<const std::byte> buf) {
  auto r = windows::send_some(handle_, buf);
  if (!r && windows::is_would_block(r.error())) on_would_block(Interest::writable);
  return as_linux_udp_error(r);
}

Result<std::size_t> UdpSocket::recv(std::span<std::byte> buf) {
  auto r = windows::recv_some(handle_, buf);
  if (!r) {
    if (truncated(r.error())) return static_cast<std::size_t>(windows::clamp_len(buf.size()));
    if (windows::is_would_block(r.error())) on_would_block(Interest::readable);
  }
  return as_linux_udp_error(r);
}

Result<std::size_t> UdpSocket::send_to(std::span<const std::byte> buf, const SocketAddr& to) {
  const windows::Sockaddr sa = windows::to_sockaddr(to);
  auto r = windows::wsa_call([&] {
    return ::sendto(handle_, reinterpret_cast<const char*>(buf.data()), windows::clamp_len(buf.size()), 0,
                    sa.get(), sa.len);
  });
  if (!r && windows::is_would_block(r.error())) on_would_block(Interest::writable);
  return as_linux_udp_error(r);
}

Result<std::pair<std::size_t, SocketAddr>> UdpSocket::recv_from(std::span<std::byte> buf) {
  windows::Sockaddr sa;
  auto r = windows::wsa_call([&] {
    return ::recvfrom(handle_, reinterpret_cast<char*>(buf.data()), windows::clamp_len(buf.size()), 0,
                      sa.get(), &sa.len);
  });
  std::size_t n = 0;
  if (r) {
    n = *r;
  } else if (truncated(r.error())) {
    n = static_cast<std::size_t>(windows::clamp_len(buf.size()));
  } else {
    if (windows::is_would_block(r.error())) on_would_block(Interest::readable);
    return as_linux_udp_error(r).error();
  }
  auto from = windows::to_socket_addr(sa);
  if (!from) return from.error();
  return std::pair<std::size_t, SocketAddr>(n, *from);
}

Result<SocketAddr> UdpSocket::local_addr() const { return windows::local_socket_addr(handle_); }
Result<SocketAddr> UdpSocket::peer_addr() const { return windows::peer_socket_addr(handle_); }
std::error_code UdpSocket::take_error() { return windows::take_socket_error(handle_); }

}  // namespace evq
