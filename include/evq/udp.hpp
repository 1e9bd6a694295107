// evq/udp.hpp: non-blocking UDP.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

#include "evq/result.hpp"
#include "evq/socket_addr.hpp"
#include "evq/source.hpp"

namespace evq {

class UdpSocket : public Source {
 public:
  static Result<UdpSocket> bind(const SocketAddr& addr);
  // Sets the default peer for send/recv and filters datagrams from others.
  std::error_code connect(const SocketAddr& addr);

  Result<std::size_t> send(std::span<const std::byte> buf);
  Result<std::size_t> recv(std::span<std::byte> buf);
  Result<std::size_t> send_to(std::span<const std::byte> buf, const SocketAddr& to);
  // A datagram longer than `buf` is truncated (the rest is lost, as with recv(2)).
  Result<std::pair<std::size_t, SocketAddr>> recv_from(std::span<std::byte> buf);

  Result<SocketAddr> local_addr() const;
  Result<SocketAddr> peer_addr() const;
  std::error_code take_error();

  UdpSocket(UdpSocket&&) noexcept = default;
  UdpSocket& operator=(UdpSocket&&) noexcept = default;
  ~UdpSocket() = default;

 private:
  explicit UdpSocket(NativeHandle h) noexcept : Source(h, true) {}
};

}  // namespace evq
