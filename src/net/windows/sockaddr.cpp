#include "net/windows/sockaddr.hpp"

#include <cstring>

namespace evq::windows {
namespace {

// memcpy in and out of the storage: the one way to reinterpret it without
// undefined behaviour (as in net/posix/sockaddr.cpp).
template <class T>
void store(Sockaddr& out, const T& value) noexcept {
  static_assert(sizeof(T) <= sizeof(SOCKADDR_STORAGE));
  std::memcpy(&out.storage, &value, sizeof value);
  out.len = sizeof value;
}

template <class T>
T load(const Sockaddr& in) noexcept {
  T value;
  std::memcpy(&value, &in.storage, sizeof value);
  return value;
}

}  // namespace

int address_family(const SocketAddr& addr) noexcept { return addr.is_ipv4() ? AF_INET : AF_INET6; }

Sockaddr to_sockaddr(const SocketAddr& addr) noexcept {
  Sockaddr out;
  if (addr.is_ipv4()) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = ::htons(addr.port());
    std::memcpy(&sin.sin_addr, addr.octets().data(), 4);
    store(out, sin);
  } else {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = ::htons(addr.port());
    std::memcpy(&sin6.sin6_addr, addr.octets().data(), 16);
    sin6.sin6_scope_id = addr.scope_id();
    store(out, sin6);
  }
  return out;
}

Result<SocketAddr> to_socket_addr(const Sockaddr& sa) noexcept {
  if (sa.storage.ss_family == AF_INET && sa.len >= static_cast<int>(sizeof(sockaddr_in))) {
    const auto sin = load<sockaddr_in>(sa);
    std::array<std::uint8_t, 4> o;
    std::memcpy(o.data(), &sin.sin_addr, 4);
    return SocketAddr::v4(o, ::ntohs(sin.sin_port));
  }
  if (sa.storage.ss_family == AF_INET6 && sa.len >= static_cast<int>(sizeof(sockaddr_in6))) {
    const auto sin6 = load<sockaddr_in6>(sa);
    std::array<std::uint8_t, 16> o;
    std::memcpy(o.data(), &sin6.sin6_addr, 16);
    return SocketAddr::v6(o, ::ntohs(sin6.sin6_port), sin6.sin6_scope_id);
  }
  return std::make_error_code(std::errc::address_family_not_supported);
}

}  // namespace evq::windows
