// The one place the POSIX net layer asks "which OS is this?".
//
// Every descriptor evq creates must be non-blocking and close-on-exec from
// birth, and no send may raise SIGPIPE. Linux and the BSDs do this atomically
// (SOCK_NONBLOCK|SOCK_CLOEXEC, accept4, pipe2, MSG_NOSIGNAL; FreeBSD has all
// four since 10.0). macOS has none of the creation flags: there the descriptor
// is made first and flagged after, which leaves a window in which a fork+exec
// in another thread inherits it. mio, libuv and Rust's std accept the same
// window on macOS; there is no other way.
//
// The functions below keep the system-call convention (-1 and errno on
// failure) so that callers wrap them like any other call.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "evq/tcp.hpp"

namespace evq::posix {

// No SIGPIPE from send(): defined with the inline TcpStream::write.
using detail::send_flags;

// POSIX lets EAGAIN and EWOULDBLOCK differ; they are equal on every system evq
// targets, so "would block" is one errno value and one comparison.
static_assert(EAGAIN == EWOULDBLOCK, "port: map EAGAIN to EWOULDBLOCK in the call wrapper");

// Vectored I/O passes at most this many slices per call (converted on the
// stack); the rest wait for the next call, as a short write would.
inline constexpr int max_io_slices = 64;
#ifdef IOV_MAX
static_assert(IOV_MAX >= max_io_slices);
#endif

#if defined(__linux__)
// Linux's abstract socket namespace (unix(7)): a sun_path whose first byte is
// NUL names no file. evq spells such a name with a leading '@'.
inline constexpr bool have_abstract_unix_names = true;
#else
inline constexpr bool have_abstract_unix_names = false;
#endif

#if defined(__APPLE__)

// Darwin's SO_LINGER counts clock ticks; SO_LINGER_SEC counts seconds.
inline constexpr int linger_option = SO_LINGER_SEC;

// Sets close-on-exec and non-blocking on a fresh descriptor (and no SIGPIPE on
// a socket); on failure closes it and keeps errno.
inline int finish_descriptor(int fd, bool is_socket) noexcept {
  if (fd < 0) return fd;
  const int one = 1;
  const int flags = ::fcntl(fd, F_GETFL);
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || flags < 0 ||
      ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
      (is_socket && ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0)) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

inline int open_socket(int domain, int type) noexcept {
  return finish_descriptor(::socket(domain, type, 0), true);
}

inline int open_socket_pair(int domain, int type, int fds[2]) noexcept {
  if (::socketpair(domain, type, 0, fds) < 0) return -1;
  if (finish_descriptor(fds[0], true) < 0) {
    const int err = errno;
    ::close(fds[1]);
    errno = err;
    return -1;
  }
  if (finish_descriptor(fds[1], true) < 0) {
    const int err = errno;
    ::close(fds[0]);
    errno = err;
    return -1;
  }
  return 0;
}

inline int accept_socket(int listener, sockaddr* addr, socklen_t* len) noexcept {
  return finish_descriptor(::accept(listener, addr, len), true);
}

inline int open_pipe(int fds[2]) noexcept {
  if (::pipe(fds) < 0) return -1;
  if (finish_descriptor(fds[0], false) < 0) {
    const int err = errno;
    ::close(fds[1]);
    errno = err;
    return -1;
  }
  if (finish_descriptor(fds[1], false) < 0) {
    const int err = errno;
    ::close(fds[0]);
    errno = err;
    return -1;
  }
  return 0;
}

#else  // Linux, FreeBSD, NetBSD, OpenBSD, DragonFly: atomic flags.

inline constexpr int linger_option = SO_LINGER;

inline int open_socket(int domain, int type) noexcept {
  return ::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

inline int open_socket_pair(int domain, int type, int fds[2]) noexcept {
  return ::socketpair(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
}

// A Linux accepted socket does not inherit O_NONBLOCK from the listener
// (accept(2) NOTES), so the flag is always passed.
inline int accept_socket(int listener, sockaddr* addr, socklen_t* len) noexcept {
  return ::accept4(listener, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

inline int open_pipe(int fds[2]) noexcept { return ::pipe2(fds, O_NONBLOCK | O_CLOEXEC); }

#endif

}  // namespace evq::posix
