// A client TCP socket that connects from a chosen 127.0.0.x source address.
//
// Why not evq::TcpStream: the load generator holds up to ~20,000 connections
// to one server address, and Linux's connect() slows down badly once one
// (source, destination) pair holds ~10k of them (it searches the ephemeral
// ports for a free 4-tuple; DESIGN.md, "Limits of these machines"). Spreading
// the connections over several 127.0.0.x *source* addresses keeps the server
// on 127.0.0.1 alone, reachable from this machine only; TcpStream::connect
// has no way to pick the source address, so this is a raw descriptor,
// registered as an evq::SourceFd (level-triggered, which SourceFd supports on
// every backend).
#pragma once

#include <evq/evq.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>

namespace demo {

class ClientSocket {
 public:
  using Ipv4 = std::array<std::uint8_t, 4>;

  // Starts a non-blocking connect; it has finished when the socket turns
  // writable, and take_error() then says how. No source: the kernel picks.
  static evq::Result<ClientSocket> connect(Ipv4 to, std::uint16_t port, std::optional<Ipv4> from);

  ClientSocket(ClientSocket&& other) noexcept;
  ClientSocket& operator=(ClientSocket&&) = delete;
  ~ClientSocket();  // closes: remove() it from its Registry first

  evq::SourceFd& source() noexcept { return source_; }
  evq::Result<std::size_t> read(std::span<std::byte> buf);  // 0 = peer closed
  evq::Result<std::size_t> write(std::span<const std::byte> buf);
  std::error_code take_error();  // SO_ERROR
  void set_nodelay();
  // Close with a reset instead of a FIN: no TIME_WAIT left to hold the port.
  void set_reset_on_close();

 private:
  explicit ClientSocket(int fd) noexcept : fd_(fd), source_(fd) {}
  int fd_;
  evq::SourceFd source_;
};

}  // namespace demo
