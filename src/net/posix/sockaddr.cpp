#include "net/posix/sockaddr.hpp"

#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

#include "net/posix/os_compat.hpp"

namespace evq::posix {
namespace {

// The structures are copied in and out with memcpy rather than read through
// a cast pointer: sockaddr_storage is a different type, and memcpy is the one
// way to reinterpret it without undefined behaviour. Compilers emit plain moves.
template <class T>
void store(Sockaddr& out, const T& value) noexcept {
  static_assert(sizeof(T) <= sizeof(sockaddr_storage));
  std::memcpy(&out.storage, &value, sizeof value);
  out.len = sizeof value;
}

template <class T>
T load(const Sockaddr& in) noexcept {
  T value;
  std::memcpy(&value, &in.storage, sizeof value);
  return value;
}

constexpr std::size_t sun_path_offset = offsetof(sockaddr_un, sun_path);
constexpr std::size_t sun_path_size = sizeof(sockaddr_un{}.sun_path);

}  // namespace

int address_family(const SocketAddr& addr) noexcept { return addr.is_ipv4() ? AF_INET : AF_INET6; }

Sockaddr to_sockaddr(const SocketAddr& addr) noexcept {
  Sockaddr out;
  if (addr.is_ipv4()) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(addr.port());
    std::memcpy(&sin.sin_addr, addr.octets().data(), 4);
    store(out, sin);
  } else {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(addr.port());
    std::memcpy(&sin6.sin6_addr, addr.octets().data(), 16);
    sin6.sin6_scope_id = addr.scope_id();
    store(out, sin6);
  }
  return out;
}

Result<SocketAddr> to_socket_addr(const Sockaddr& sa) noexcept {
  if (sa.storage.ss_family == AF_INET && sa.len >= sizeof(sockaddr_in)) {
    const auto sin = load<sockaddr_in>(sa);
    std::array<std::uint8_t, 4> o;
    std::memcpy(o.data(), &sin.sin_addr, 4);
    return SocketAddr::v4(o, ntohs(sin.sin_port));
  }
  if (sa.storage.ss_family == AF_INET6 && sa.len >= sizeof(sockaddr_in6)) {
    const auto sin6 = load<sockaddr_in6>(sa);
    std::array<std::uint8_t, 16> o;
    std::memcpy(o.data(), &sin6.sin6_addr, 16);
    return SocketAddr::v6(o, ntohs(sin6.sin6_port), sin6.sin6_scope_id);
  }
  return std::make_error_code(std::errc::address_family_not_supported);
}

std::error_code to_unix_sockaddr(std::string_view name, Sockaddr& out) noexcept {
  if (name.empty() || name.find('\0') != std::string_view::npos) return errc::invalid_argument;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (name.front() == '@') {
    if (!have_abstract_unix_names) return errc::invalid_argument;
    // The leading NUL, then the name's bytes; the length says where it ends
    // (no terminator: a NUL would be part of the name).
    name.remove_prefix(1);
    if (name.size() + 1 > sun_path_size) return errc::invalid_argument;
    std::memcpy(sun.sun_path + 1, name.data(), name.size());
    store(out, sun);
    out.len = static_cast<socklen_t>(sun_path_offset + 1 + name.size());
    return {};
  }
  // A path keeps its terminating NUL inside sun_path: some kernels (the BSDs)
  // and tools read it as a C string.
  if (name.size() + 1 > sun_path_size) return errc::invalid_argument;
  std::memcpy(sun.sun_path, name.data(), name.size());
  store(out, sun);
  out.len = static_cast<socklen_t>(sun_path_offset + name.size() + 1);
  return {};
}

std::string to_unix_name(const Sockaddr& sa) {
  if (sa.len <= sun_path_offset) return {};  // unnamed: Linux gives just the family
  const auto sun = load<sockaddr_un>(sa);
  const std::size_t n = std::min<std::size_t>(sa.len - sun_path_offset, sun_path_size);
  if (have_abstract_unix_names && sun.sun_path[0] == '\0') {
    std::string s = "@";
    s.append(sun.sun_path + 1, n - 1);
    return s;
  }
  return {sun.sun_path, ::strnlen(sun.sun_path, n)};
}

}  // namespace evq::posix
