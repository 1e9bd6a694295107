// evq/unix.hpp: Unix-domain sockets (POSIX only).
//
// Names: a filesystem path ("/tmp/x.sock"), or on Linux an abstract name,
// written here with a leading '@' ("@evq-test"), which maps to a leading NUL
// byte in sun_path. Longer than sun_path allows: errc::invalid_argument.
#pragma once

#include "evq/platform.hpp"
#if EVQ_POSIX

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "evq/result.hpp"
#include "evq/source.hpp"
#include "evq/tcp.hpp"  // Shutdown, IoSlice, IoSliceMut

namespace evq {

class UnixStream : public Source {
 public:
  static Result<UnixStream> connect(std::string_view path);
  // Two connected streams (socketpair).
  static Result<std::pair<UnixStream, UnixStream>> pair();

  Result<std::size_t> read(std::span<std::byte> buf);
  Result<std::size_t> write(std::span<const std::byte> buf);
  Result<std::size_t> read_vectored(std::span<const IoSliceMut> bufs);
  Result<std::size_t> write_vectored(std::span<const IoSlice> bufs);
  std::error_code shutdown(Shutdown how);
  std::error_code take_error();

  UnixStream(UnixStream&&) noexcept = default;
  UnixStream& operator=(UnixStream&&) noexcept = default;
  ~UnixStream() = default;

 private:
  friend class UnixListener;
  explicit UnixStream(NativeHandle h) noexcept : Source(h, true) {}
};

class UnixListener : public Source {
 public:
  // A filesystem path must not exist yet (errc address_in_use otherwise); the
  // caller unlinks it when done.
  static Result<UnixListener> bind(std::string_view path);
  // would_block when no connection is pending.
  Result<UnixStream> accept();

  UnixListener(UnixListener&&) noexcept = default;
  UnixListener& operator=(UnixListener&&) noexcept = default;
  ~UnixListener() = default;

 private:
  explicit UnixListener(NativeHandle h) noexcept : Source(h, true) {}
};

class UnixDatagram : public Source {
 public:
  static Result<UnixDatagram> bind(std::string_view path);
  static Result<UnixDatagram> unbound();
  static Result<std::pair<UnixDatagram, UnixDatagram>> pair();
  std::error_code connect(std::string_view path);

  Result<std::size_t> send(std::span<const std::byte> buf);
  Result<std::size_t> recv(std::span<std::byte> buf);
  Result<std::size_t> send_to(std::span<const std::byte> buf, std::string_view path);
  // The sender's name ("" when unbound, "@name" when abstract).
  Result<std::pair<std::size_t, std::string>> recv_from(std::span<std::byte> buf);

  UnixDatagram(UnixDatagram&&) noexcept = default;
  UnixDatagram& operator=(UnixDatagram&&) noexcept = default;
  ~UnixDatagram() = default;

 private:
  explicit UnixDatagram(NativeHandle h) noexcept : Source(h, true) {}
};

}  // namespace evq

#endif  // EVQ_POSIX
