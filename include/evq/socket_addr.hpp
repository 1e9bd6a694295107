// evq/socket_addr.hpp: an IPv4 or IPv6 address with a port.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "evq/result.hpp"

namespace evq {

class SocketAddr {
 public:
  // 0.0.0.0:0
  SocketAddr() noexcept = default;

  // "127.0.0.1:80", "[::1]:80", "[fe80::1%2]:80" (numeric scope id).
  // errc::invalid_address for anything else: no name lookup happens here.
  static Result<SocketAddr> parse(std::string_view text);
  static SocketAddr v4(std::array<std::uint8_t, 4> octets, std::uint16_t port) noexcept;
  static SocketAddr v6(const std::array<std::uint8_t, 16>& octets, std::uint16_t port,
                       std::uint32_t scope_id = 0) noexcept;
  static SocketAddr loopback_v4(std::uint16_t port) noexcept;  // 127.0.0.1
  static SocketAddr loopback_v6(std::uint16_t port) noexcept;  // ::1

  bool is_ipv4() const noexcept { return family_ == Family::v4; }
  bool is_ipv6() const noexcept { return family_ == Family::v6; }
  std::uint16_t port() const noexcept { return port_; }
  void set_port(std::uint16_t port) noexcept { port_ = port; }
  // 4 significant bytes for IPv4, 16 for IPv6, network order.
  const std::array<std::uint8_t, 16>& octets() const noexcept { return octets_; }
  std::uint32_t scope_id() const noexcept { return scope_id_; }

  // "127.0.0.1:80", "[::1]:80"; parse(to_string()) gives the same address.
  std::string to_string() const;

  friend bool operator==(const SocketAddr&, const SocketAddr&) noexcept = default;

 private:
  enum class Family : std::uint8_t { v4, v6 };
  Family family_ = Family::v4;
  std::uint16_t port_ = 0;  // host order
  std::uint32_t scope_id_ = 0;
  std::array<std::uint8_t, 16> octets_{};
};

}  // namespace evq
