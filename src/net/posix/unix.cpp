#include "evq/unix.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>

#include "net/posix/os_compat.hpp"
#include "net/posix/sockaddr.hpp"
#include "net/posix/socket_io.hpp"

namespace evq {
namespace {

// As TcpListener (tcp.cpp): the kernel clamps the backlog to its own limit.
constexpr int listen_backlog = std::max(SOMAXCONN, 4096);

Result<int> open_unix_socket(int type) noexcept {
  return posix::sys_call<int>([&] { return posix::open_socket(AF_UNIX, type); });
}

Result<std::pair<int, int>> open_unix_pair(int type) noexcept {
  int fds[2];
  if (auto ec = posix::sys_check([&] { return posix::open_socket_pair(AF_UNIX, type, fds); }))
    return ec;
  return std::pair<int, int>(fds[0], fds[1]);
}

}  // namespace

// ---- UnixStream --------------------------------------------------------------

Result<UnixStream> UnixStream::connect(std::string_view path) {
  posix::Sockaddr sa;
  if (auto ec = posix::to_unix_sockaddr(path, sa)) return ec;
  auto fd = open_unix_socket(SOCK_STREAM);
  if (!fd) return fd.error();
  UnixStream stream(*fd);
  // A Unix connect completes at once or fails at once; on Linux a full
  // listen queue gives EAGAIN (unix(7)), reported as would_block.
  if (auto ec = posix::start_connect(*fd, sa)) return ec;
  return stream;
}

Result<std::pair<UnixStream, UnixStream>> UnixStream::pair() {
  auto fds = open_unix_pair(SOCK_STREAM);
  if (!fds) return fds.error();
  return std::pair<UnixStream, UnixStream>(UnixStream(fds->first), UnixStream(fds->second));
}

Result<std::size_t> UnixStream::read(std::span<std::byte> buf) {
  auto r = posix::recv_some(handle_, buf);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::readable);
  return r;
}

Result<std::size_t> UnixStream::write(std::span<const std::byte> buf) {
  auto r = posix::send_some(handle_, buf);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::size_t> UnixStream::read_vectored(std::span<const IoSliceMut> bufs) {
  auto r = posix::recv_vectored(handle_, bufs);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::readable);
  return r;
}

Result<std::size_t> UnixStream::write_vectored(std::span<const IoSlice> bufs) {
  auto r = posix::send_vectored(handle_, bufs);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

std::error_code UnixStream::shutdown(Shutdown how) { return posix::shutdown_socket(handle_, how); }
std::error_code UnixStream::take_error() { return posix::take_socket_error(handle_); }

// ---- UnixListener ------------------------------------------------------------

Result<UnixListener> UnixListener::bind(std::string_view path) {
  posix::Sockaddr sa;
  if (auto ec = posix::to_unix_sockaddr(path, sa)) return ec;
  auto fd = open_unix_socket(SOCK_STREAM);
  if (!fd) return fd.error();
  UnixListener listener(*fd);
  if (auto ec = posix::sys_check([&] { return ::bind(*fd, sa.get(), sa.len); })) return ec;
  if (auto ec = posix::sys_check([&] { return ::listen(*fd, listen_backlog); })) return ec;
  return listener;
}

Result<UnixStream> UnixListener::accept() {
  for (;;) {
    // The peer's name is of no use (a connecting Unix socket is usually
    // unnamed), so the kernel is not asked for it.
    auto fd = posix::sys_call<int>([&] { return posix::accept_socket(handle_, nullptr, nullptr); });
    if (fd) return UnixStream(*fd);
    // Reset while queued (ECONNABORTED): take the next one, as TcpListener.
    if (fd.error().value() == ECONNABORTED) continue;
    if (posix::is_would_block(fd.error())) on_would_block(Interest::readable);
    return fd.error();
  }
}

// ---- UnixDatagram ------------------------------------------------------------

Result<UnixDatagram> UnixDatagram::bind(std::string_view path) {
  posix::Sockaddr sa;
  if (auto ec = posix::to_unix_sockaddr(path, sa)) return ec;
  auto fd = open_unix_socket(SOCK_DGRAM);
  if (!fd) return fd.error();
  UnixDatagram sock(*fd);
  if (auto ec = posix::sys_check([&] { return ::bind(*fd, sa.get(), sa.len); })) return ec;
  return sock;
}

Result<UnixDatagram> UnixDatagram::unbound() {
  auto fd = open_unix_socket(SOCK_DGRAM);
  if (!fd) return fd.error();
  return UnixDatagram(*fd);
}

Result<std::pair<UnixDatagram, UnixDatagram>> UnixDatagram::pair() {
  auto fds = open_unix_pair(SOCK_DGRAM);
  if (!fds) return fds.error();
  return std::pair<UnixDatagram, UnixDatagram>(UnixDatagram(fds->first), UnixDatagram(fds->second));
}

std::error_code UnixDatagram::connect(std::string_view path) {
  posix::Sockaddr sa;
  if (auto ec = posix::to_unix_sockaddr(path, sa)) return ec;
  return posix::sys_check([&] { return ::connect(handle_, sa.get(), sa.len); });
}

Result<std::size_t> UnixDatagram::send(std::span<const std::byte> buf) {
  auto r = posix::send_some(handle_, buf);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::size_t> UnixDatagram::recv(std::span<std::byte> buf) {
  auto r = posix::recv_some(handle_, buf);
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::readable);
  return r;
}

Result<std::size_t> UnixDatagram::send_to(std::span<const std::byte> buf, std::string_view path) {
  posix::Sockaddr sa;
  if (auto ec = posix::to_unix_sockaddr(path, sa)) return ec;
  auto r = posix::sys_call([&] {
    return ::sendto(handle_, buf.data(), buf.size(), posix::send_flags, sa.get(), sa.len);
  });
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::pair<std::size_t, std::string>> UnixDatagram::recv_from(std::span<std::byte> buf) {
  posix::Sockaddr sa;
  auto r = posix::sys_call(
      [&] { return ::recvfrom(handle_, buf.data(), buf.size(), 0, sa.get(), &sa.len); });
  if (!r) {
    if (posix::is_would_block(r.error())) on_would_block(Interest::readable);
    return r.error();
  }
  return std::pair<std::size_t, std::string>(*r, posix::to_unix_name(sa));
}

}  // namespace evq
