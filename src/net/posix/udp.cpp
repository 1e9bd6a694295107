#include "evq/udp.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include "net/posix/os_compat.hpp"
#include "net/posix/sockaddr.hpp"
#include "net/posix/socket_io.hpp"

namespace evq {

Result<UdpSocket> UdpSocket::bind(const SocketAddr& addr) {
  auto fd = posix::sys_call<int>(
      [&] { return posix::open_socket(posix::address_family(addr), SOCK_DGRAM); });
  if (!fd) return fd.error();
  UdpSocket sock(*fd);  // owns the descriptor from here: every error path closes it

  // IPv6 only on every OS, as TcpListener: Linux would otherwise also take
  // IPv4 datagrams on an IPv6 socket and the BSDs would not.
  if (addr.is_ipv6()) {
    if (auto ec = posix::set_int_option(*fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) return ec;
  }
  const posix::Sockaddr sa = posix::to_sockaddr(addr);
  if (auto ec = posix::sys_check([&] { return ::bind(*fd, sa.get(), sa.len); })) return ec;
  return sock;
}

std::error_code UdpSocket::connect(const SocketAddr& addr) {
  // A datagram connect only records the peer: it never blocks or stays in progress.
  const posix::Sockaddr sa = posix::to_sockaddr(addr);
  return posix::sys_check([&] { return ::connect(handle_, sa.get(), sa.len); });
}

Result<std::size_t> UdpSocket::send(std::span<const std::byte> buf) {
  auto r = posix::send_some(handle_, buf);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::size_t> UdpSocket::recv(std::span<std::byte> buf) {
  auto r = posix::recv_some(handle_, buf);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::readable);
  return r;
}

Result<std::size_t> UdpSocket::send_to(std::span<const std::byte> buf, const SocketAddr& to) {
  const posix::Sockaddr sa = posix::to_sockaddr(to);
  auto r = posix::sys_call([&] {
    return ::sendto(handle_, buf.data(), buf.size(), posix::send_flags, sa.get(), sa.len);
  });
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::pair<std::size_t, SocketAddr>> UdpSocket::recv_from(std::span<std::byte> buf) {
  posix::Sockaddr sa;
  auto r = posix::sys_call(
      [&] { return ::recvfrom(handle_, buf.data(), buf.size(), 0, sa.get(), &sa.len); });
  if (!r) {
    if (posix::is_would_block(r.error())) on_would_block(Interest::readable);
    return r.error();
  }
  auto from = posix::to_socket_addr(sa);
  if (!from) return from.error();
  return std::pair<std::size_t, SocketAddr>(*r, *from);
}

Result<SocketAddr> UdpSocket::local_addr() const { return posix::local_socket_addr(handle_); }
Result<SocketAddr> UdpSocket::peer_addr() const { return posix::peer_socket_addr(handle_); }
std::error_code UdpSocket::take_error() { return posix::take_socket_error(handle_); }

}  // namespace evq
