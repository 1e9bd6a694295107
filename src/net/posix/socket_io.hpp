// Operations every POSIX socket type shares, on a bare descriptor. The types
// in tcp.cpp, udp.cpp and unix.cpp call these and add what only a member can
// do: tell their registration about would-block (Source::on_would_block).
//
// A closed or moved-from object passes invalid_handle (-1), and the kernel
// answers EBADF: that is the documented bad_file_descriptor, at no cost on the
// path that works.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <span>

#include "evq/tcp.hpp"
#include "net/posix/os_compat.hpp"
#include "net/posix/sockaddr.hpp"

namespace evq::posix {

// recv and send are the calls a server makes most, so they skip sys_call's
// EINTR loop: on a non-blocking socket they never sleep, hence never fail
// with EINTR (Linux: sock_recvmsg/sock_sendmsg with a zero timeout return
// before any signal check). Keeping the loop out means nothing but the result
// lives across the call (callgrind: 8 instructions per TcpStream::read
// beside the syscall instead of 22).
inline Result<std::size_t> recv_some(int fd, std::span<std::byte> buf, int flags = 0) noexcept {
  const ssize_t r = ::recv(fd, buf.data(), buf.size(), flags);
  if (r >= 0) [[likely]] return static_cast<std::size_t>(r);
  return detail::errno_code();
}

inline Result<std::size_t> send_some(int fd, std::span<const std::byte> buf) noexcept {
  const ssize_t r = ::send(fd, buf.data(), buf.size(), send_flags);
  if (r >= 0) [[likely]] return static_cast<std::size_t>(r);
  return detail::errno_code();
}

// Slices beyond max_io_slices are left for the next call.
inline Result<std::size_t> recv_vectored(int fd, std::span<const IoSliceMut> bufs) noexcept {
  iovec iov[max_io_slices];
  const std::size_t n = std::min<std::size_t>(bufs.size(), max_io_slices);
  for (std::size_t i = 0; i < n; ++i) iov[i] = {bufs[i].data(), bufs[i].size()};
  return sys_call([&] { return ::readv(fd, iov, static_cast<int>(n)); });
}

// sendmsg rather than writev: only sendmsg takes MSG_NOSIGNAL.
inline Result<std::size_t> send_vectored(int fd, std::span<const IoSlice> bufs) noexcept {
  iovec iov[max_io_slices];
  const std::size_t n = std::min<std::size_t>(bufs.size(), max_io_slices);
  // iovec has one pointer type for both directions; sendmsg only reads.
  for (std::size_t i = 0; i < n; ++i)
    iov[i] = {const_cast<std::byte*>(bufs[i].data()), bufs[i].size()};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(n);
  return sys_call([&] { return ::sendmsg(fd, &msg, send_flags); });
}

inline std::error_code shutdown_socket(int fd, Shutdown how) noexcept {
  const int h = how == Shutdown::read ? SHUT_RD : how == Shutdown::write ? SHUT_WR : SHUT_RDWR;
  return sys_check([&] { return ::shutdown(fd, h); });
}

inline std::error_code set_int_option(int fd, int level, int name, int value) noexcept {
  return sys_check([&] { return ::setsockopt(fd, level, name, &value, sizeof value); });
}

inline Result<int> get_int_option(int fd, int level, int name) noexcept {
  int value = 0;
  socklen_t len = sizeof value;
  if (auto ec = sys_check([&] { return ::getsockopt(fd, level, name, &value, &len); })) return ec;
  return value;
}

// SO_ERROR: the pending error, cleared by reading it.
inline std::error_code take_socket_error(int fd) noexcept {
  auto err = get_int_option(fd, SOL_SOCKET, SO_ERROR);
  if (!err) return err.error();
  return *err ? detail::errno_code(*err) : std::error_code{};
}

inline Result<SocketAddr> local_socket_addr(int fd) noexcept {
  Sockaddr sa;
  if (auto ec = sys_check([&] { return ::getsockname(fd, sa.get(), &sa.len); })) return ec;
  return to_socket_addr(sa);
}

inline Result<SocketAddr> peer_socket_addr(int fd) noexcept {
  Sockaddr sa;
  if (auto ec = sys_check([&] { return ::getpeername(fd, sa.get(), &sa.len); })) return ec;
  return to_socket_addr(sa);
}

// Starts a connect on a non-blocking socket. In progress counts as success:
// the socket turns writable when the attempt ends, and SO_ERROR tells how.
// EINTR counts too: the attempt goes on in the background (POSIX connect()),
// and repeating the call would only say EALREADY.
inline std::error_code start_connect(int fd, const Sockaddr& sa) noexcept {
  if (::connect(fd, sa.get(), sa.len) == 0 || errno == EINPROGRESS || errno == EINTR) return {};
  return detail::errno_code();
}

}  // namespace evq::posix
