// The POSIX net layer's plumbing: SocketAddr and Unix names to and from the
// kernel's sockaddr structures, and the wrapper every net system call goes
// through.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include "core/syscall.hpp"
#include "evq/result.hpp"
#include "evq/socket_addr.hpp"

namespace evq::posix {

// Runs `call`, a system call that returns -1 and sets errno on failure, and
// returns its result as a T or errno in std::system_category. Repeats the call
// while it fails with EINTR: a signal that arrives before any data moved
// leaves nothing done (POSIX read/write/accept), so repeating is exact, and
// callers of non-blocking operations never see EINTR. Not for close() or
// connect(), where EINTR means "done" or "still in progress".
template <class T = std::size_t, class Call>
inline Result<T> sys_call(Call&& call) noexcept {
  for (;;) {
    const auto r = call();
    if (r >= 0) return static_cast<T>(r);
    if (errno != EINTR) return detail::errno_code();
  }
}

// The same for calls whose only result is success or failure.
template <class Call>
inline std::error_code sys_check(Call&& call) noexcept {
  for (;;) {
    if (call() >= 0) return {};
    if (errno != EINTR) return detail::errno_code();
  }
}

// Whether an error from sys_call/sys_check means "would block". A pointer
// comparison and an integer one: cheaper than comparing with std::errc, which
// goes through the category's virtual equivalent().
inline bool is_would_block(const std::error_code& ec) noexcept {
  return ec.value() == EWOULDBLOCK && ec.category() == std::system_category();
}

// A sockaddr for the kernel to read or fill: room for every family, and the
// length in use (the room, before a call that fills it).
struct Sockaddr {
  sockaddr_storage storage{};
  socklen_t len = sizeof(sockaddr_storage);

  sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
};

// AF_INET or AF_INET6.
int address_family(const SocketAddr& addr) noexcept;
Sockaddr to_sockaddr(const SocketAddr& addr) noexcept;
// std::errc::address_family_not_supported for anything but IPv4 and IPv6.
Result<SocketAddr> to_socket_addr(const Sockaddr& sa) noexcept;

// A Unix-domain name: a path, or "@name" for Linux's abstract namespace.
// evq::errc::invalid_argument when it is empty, holds a NUL byte, does not fit
// sun_path, or is abstract where the OS has no abstract names.
std::error_code to_unix_sockaddr(std::string_view name, Sockaddr& out) noexcept;
// The inverse: "" for an unnamed (unbound) socket, "@name" when abstract.
std::string to_unix_name(const Sockaddr& sa);

}  // namespace evq::posix
