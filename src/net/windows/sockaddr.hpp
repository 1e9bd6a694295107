// SocketAddr to and from Winsock's sockaddr structures (the Windows twin of
// net/posix/sockaddr.hpp; the parsing and printing in net/socket_addr.cpp is
// shared).
#pragma once

#include "evq/result.hpp"
#include "evq/socket_addr.hpp"
#include "sys/iocp/win32.hpp"

namespace evq::windows {

// A sockaddr for Winsock to read or fill: room for every family, and the
// length in use (the room, before a call that fills it).
struct Sockaddr {
  SOCKADDR_STORAGE storage{};
  int len = sizeof(SOCKADDR_STORAGE);

  sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
};

// AF_INET or AF_INET6.
int address_family(const SocketAddr& addr) noexcept;
Sockaddr to_sockaddr(const SocketAddr& addr) noexcept;
// std::errc::address_family_not_supported for anything but IPv4 and IPv6.
Result<SocketAddr> to_socket_addr(const Sockaddr& sa) noexcept;

}  // namespace evq::windows
