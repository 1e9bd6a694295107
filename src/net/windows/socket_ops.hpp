// Operations every Windows socket type shares, on a bare SOCKET (the Windows
// twin of net/posix/socket_io.hpp). tcp.cpp and udp.cpp call these and add
// what only a member can do: tell their registration about would-block
// (Source::on_would_block).
//
// A closed or moved-from object passes invalid_handle (INVALID_SOCKET) and
// Winsock answers WSAENOTSOCK, which compares equal to bad_file_descriptor
// (sys/iocp/windows_error.cpp): no check on the path that works.
//
// Winsock has no EINTR for non-blocking calls (WSAEINTR only ends a blocking
// call cancelled by WSACancelBlockingCall), so nothing here retries.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <span>

#include "evq/result.hpp"
#include "evq/tcp.hpp"
#include "net/windows/sockaddr.hpp"
#include "sys/iocp/win32.hpp"
#include "sys/iocp/windows_error.hpp"

namespace evq::windows {

// Vectored I/O passes at most this many slices per call (as on POSIX).
inline constexpr std::size_t max_io_slices = 64;

// Runs `call`, a Winsock call that returns SOCKET_ERROR on failure, and
// returns its result as a T or WSAGetLastError() in windows_category().
template <class T = std::size_t, class Call>
inline Result<T> wsa_call(Call&& call) noexcept {
  const int r = call();
  if (r != SOCKET_ERROR) return static_cast<T>(r);
  return detail::last_wsa_error();
}

// The same for calls whose only result is success or failure.
template <class Call>
inline std::error_code wsa_check(Call&& call) noexcept {
  return call() != SOCKET_ERROR ? std::error_code{} : detail::last_wsa_error();
}

// Whether an error from wsa_call/wsa_check means "would block": a pointer and
// an integer comparison, cheaper than the category's virtual equivalent().
inline bool is_would_block(const std::error_code& ec) noexcept {
  return ec.value() == WSAEWOULDBLOCK && ec.category() == detail::windows_category();
}

// Winsock counts buffer lengths in int: a longer buffer is used in part, as a
// short read or write.
inline int clamp_len(std::size_t n) noexcept { return static_cast<int>(std::min<std::size_t>(n, INT_MAX)); }

// A new socket: non-blocking, not inheritable by child processes.
Result<SOCKET> open_socket(int family, int type, int protocol) noexcept;
// accept(), with the new socket made non-blocking and not inheritable.
Result<SOCKET> accept_socket(SOCKET listener, Sockaddr& peer) noexcept;

inline Result<std::size_t> recv_some(SOCKET s, std::span<std::byte> buf, int flags = 0) noexcept {
  return wsa_call([&] { return ::recv(s, reinterpret_cast<char*>(buf.data()), clamp_len(buf.size()), flags); });
}

// No SIGPIPE on Windows: a send to a closed peer just fails.
inline Result<std::size_t> send_some(SOCKET s, std::span<const std::byte> buf) noexcept {
  return wsa_call([&] { return ::send(s, reinterpret_cast<const char*>(buf.data()), clamp_len(buf.size()), 0); });
}

Result<std::size_t> recv_vectored(SOCKET s, std::span<const IoSliceMut> bufs) noexcept;
Result<std::size_t> send_vectored(SOCKET s, std::span<const IoSlice> bufs) noexcept;

inline std::error_code shutdown_socket(SOCKET s, Shutdown how) noexcept {
  const int h = how == Shutdown::read ? SD_RECEIVE : how == Shutdown::write ? SD_SEND : SD_BOTH;
  return wsa_check([&] { return ::shutdown(s, h); });
}

inline std::error_code set_int_option(SOCKET s, int level, int name, int value) noexcept {
  return wsa_check([&] { return ::setsockopt(s, level, name, reinterpret_cast<const char*>(&value), sizeof value); });
}

inline Result<int> get_int_option(SOCKET s, int level, int name) noexcept {
  int value = 0;
  int len = sizeof value;
  if (auto ec = wsa_check([&] { return ::getsockopt(s, level, name, reinterpret_cast<char*>(&value), &len); }))
    return ec;
  return value;
}

// SO_ERROR: the pending error, cleared by reading it.
inline std::error_code take_socket_error(SOCKET s) noexcept {
  auto err = get_int_option(s, SOL_SOCKET, SO_ERROR);
  if (!err) return err.error();
  return *err ? detail::windows_error(static_cast<unsigned long>(*err)) : std::error_code{};
}

inline Result<SocketAddr> local_socket_addr(SOCKET s) noexcept {
  Sockaddr sa;
  if (auto ec = wsa_check([&] { return ::getsockname(s, sa.get(), &sa.len); })) return ec;
  return to_socket_addr(sa);
}

inline Result<SocketAddr> peer_socket_addr(SOCKET s) noexcept {
  Sockaddr sa;
  if (auto ec = wsa_check([&] { return ::getpeername(s, sa.get(), &sa.len); })) return ec;
  return to_socket_addr(sa);
}

// Starts a connect on a non-blocking socket. In progress counts as success:
// the socket turns writable (or reports an error) when the attempt ends, and
// SO_ERROR tells how. Winsock says WSAEWOULDBLOCK where POSIX says
// EINPROGRESS.
inline std::error_code start_connect(SOCKET s, const Sockaddr& sa) noexcept {
  if (::connect(s, sa.get(), sa.len) == 0 || ::WSAGetLastError() == WSAEWOULDBLOCK) return {};
  return detail::last_wsa_error();
}

}  // namespace evq::windows
