// evq/tcp.hpp: non-blocking TCP.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <utility>

#include "evq/platform.hpp"
#include "evq/result.hpp"
#include "evq/socket_addr.hpp"
#include "evq/source.hpp"

#if EVQ_POSIX
#include <sys/socket.h>  // read() and write() below are inline on POSIX
#include <sys/types.h>
#include <unistd.h>
#endif

namespace evq {

enum class Shutdown { read, write, both };

// Buffers for vectored I/O: up to 64 of them are passed in one system call.
using IoSliceMut = std::span<std::byte>;
using IoSlice = std::span<const std::byte>;

class TcpStream;
namespace detail {
struct SocketAccess;  // src/net/socket_access.hpp: for native Ring engines
}

// Non-blocking, close-on-exec, move-only; closed (and removed from its
// Registry) on destruction.
class TcpListener : public Source {
 public:
  // SO_REUSEADDR, backlog SOMAXCONN. Port 0 picks a free port: see local_addr.
  static Result<TcpListener> bind(const SocketAddr& addr);
  // errc would_block when no connection is pending. The new stream is
  // non-blocking and close-on-exec. Under EMFILE/ENFILE the error is
  // returned and the listener stays usable.
  Result<std::pair<TcpStream, SocketAddr>> accept();
  Result<SocketAddr> local_addr() const;

  TcpListener(TcpListener&&) noexcept = default;
  TcpListener& operator=(TcpListener&&) noexcept = default;
  ~TcpListener() = default;

 private:
  explicit TcpListener(NativeHandle h) noexcept : Source(h, true) {}
};

class TcpStream : public Source {
 public:
  // Starts connecting and returns at once; the stream becomes writable when
  // the attempt ends. Then take_error() (or peer_addr()) tells whether it worked.
  static Result<TcpStream> connect(const SocketAddr& addr);

  // 0 = the peer closed its write side (end of stream).
  Result<std::size_t> read(std::span<std::byte> buf);
  Result<std::size_t> write(std::span<const std::byte> buf);
  Result<std::size_t> read_vectored(std::span<const IoSliceMut> bufs);
  Result<std::size_t> write_vectored(std::span<const IoSlice> bufs);
  // Reads without consuming.
  Result<std::size_t> peek(std::span<std::byte> buf);

  std::error_code shutdown(Shutdown how);
  std::error_code set_nodelay(bool on);
  Result<bool> nodelay() const;
  // nullopt: the default (close in the background). A zero duration makes
  // close() send a reset (RST) instead of a FIN.
  std::error_code set_linger(std::optional<std::chrono::seconds> linger);
  Result<SocketAddr> peer_addr() const;
  Result<SocketAddr> local_addr() const;
  // The pending socket error (SO_ERROR): e.g. connection_refused after a
  // failed connect. Empty when none. POSIX clears it by reading it; Windows
  // (and Wine) keep a failed connect's error after it is read.
  std::error_code take_error();

  TcpStream(TcpStream&&) noexcept = default;
  TcpStream& operator=(TcpStream&&) noexcept = default;
  ~TcpStream() = default;

 private:
  friend class TcpListener;
  friend struct detail::SocketAccess;
  explicit TcpStream(NativeHandle h) noexcept : Source(h, true) {}
  // The failure path of the inline read()/write(): errno as an error_code,
  // and on would-block the registration's re-arm (Source::on_would_block).
  std::error_code io_failed(Interest direction) noexcept;
};

#if EVQ_POSIX
namespace detail {
// Linux and the BSDs: MSG_NOSIGNAL. Darwin before it had the flag: 0, and
// SO_NOSIGPIPE set on every socket at birth does the same job.
#if defined(MSG_NOSIGNAL)
inline constexpr int send_flags = MSG_NOSIGNAL;
#else
inline constexpr int send_flags = 0;
#endif
}  // namespace detail

// Inline on POSIX: these are the calls a server makes most. Out of line the
// wrapper cost 15 instructions a call beside the system call, and recv()
// three more than read() in glibc (callgrind, bench W2: about a quarter of
// evq's instructions per echoed request). No EINTR loop: a non-blocking
// socket never sleeps, so never fails with EINTR.
inline Result<std::size_t> TcpStream::read(std::span<std::byte> buf) {
  const ::ssize_t r = ::read(handle_, buf.data(), buf.size());
  if (r >= 0) [[likely]] return static_cast<std::size_t>(r);
  return io_failed(Interest::readable);
}

inline Result<std::size_t> TcpStream::write(std::span<const std::byte> buf) {
  const ::ssize_t r = ::send(handle_, buf.data(), buf.size(), detail::send_flags);
  if (r >= 0) [[likely]] return static_cast<std::size_t>(r);
  return io_failed(Interest::writable);
}
#endif

}  // namespace evq
