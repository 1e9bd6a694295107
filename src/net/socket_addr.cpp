// SocketAddr: parsing and formatting by hand, the same on every platform.
//
// No getaddrinfo (no name lookup may happen here) and no inet_pton: libcs
// differ on leading zeros, scope ids and IPv6 shorthand, and an address string
// must mean the same thing on every OS evq runs on.
#include "evq/socket_addr.hpp"

#include <cstddef>
#include <optional>

namespace evq {
namespace {

using Octets = std::array<std::uint8_t, 16>;

// Decimal digits only: no sign, no spaces, no empty string, value <= max.
std::optional<std::uint32_t> parse_decimal(std::string_view s, std::uint32_t max) noexcept {
  if (s.empty() || s.size() > 10) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

// Exactly four parts of 0-255. A leading zero ("010") is refused: inet_aton
// reads it as octal, so the string has two meanings in the wild.
bool parse_ipv4(std::string_view s, std::uint8_t* out) noexcept {
  for (int i = 0; i < 4; ++i) {
    const std::size_t dot = i < 3 ? s.find('.') : s.size();
    if (dot == std::string_view::npos) return false;
    const std::string_view part = s.substr(0, dot);
    if (part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    const auto v = parse_decimal(part, 255);
    if (!v) return false;
    out[i] = static_cast<std::uint8_t>(*v);
    if (i < 3) s.remove_prefix(dot + 1);
  }
  return true;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One to four hex digits.
std::optional<std::uint16_t> parse_group(std::string_view s) noexcept {
  if (s.empty() || s.size() > 4) return std::nullopt;
  unsigned v = 0;
  for (const char c : s) {
    const int h = hex_value(c);
    if (h < 0) return std::nullopt;
    v = v * 16 + static_cast<unsigned>(h);
  }
  return static_cast<std::uint16_t>(v);
}

// RFC 4291 section 2.2 text forms: eight groups, or fewer with one "::"
// standing for one or more zero groups, the last 32 bits optionally written
// as an IPv4 dotted quad.
bool parse_ipv6(std::string_view s, Octets& out) noexcept {
  std::uint16_t head[8];
  std::uint16_t tail[8];
  int n_head = 0;
  int n_tail = 0;
  bool compressed = false;

  std::size_t i = 0;
  if (s.starts_with("::")) {
    compressed = true;
    i = 2;
  }
  while (i < s.size()) {
    std::size_t j = s.find(':', i);
    if (j == std::string_view::npos) j = s.size();
    const std::string_view token = s.substr(i, j - i);
    std::uint16_t* groups = compressed ? tail : head;
    int& n = compressed ? n_tail : n_head;
    if (token.find('.') != std::string_view::npos) {
      // Embedded IPv4: only as the final 32 bits.
      std::uint8_t v4[4];
      if (j != s.size() || n_head + n_tail > 6 || !parse_ipv4(token, v4)) return false;
      groups[n++] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
      groups[n++] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
      break;
    }
    const auto g = parse_group(token);
    if (!g || n_head + n_tail >= 8) return false;
    groups[n++] = *g;
    if (j == s.size()) break;
    if (j + 1 < s.size() && s[j + 1] == ':') {
      if (compressed) return false;  // a second "::"
      compressed = true;
      i = j + 2;
    } else {
      i = j + 1;
      if (i == s.size()) return false;  // a trailing single ':'
    }
  }

  const int total = n_head + n_tail;
  if (compressed ? total > 7 : total != 8) return false;
  out = {};
  for (int k = 0; k < n_head; ++k) {
    out[2 * k] = static_cast<std::uint8_t>(head[k] >> 8);
    out[2 * k + 1] = static_cast<std::uint8_t>(head[k]);
  }
  for (int k = 0; k < n_tail; ++k) {
    const int at = 8 - n_tail + k;
    out[2 * at] = static_cast<std::uint8_t>(tail[k] >> 8);
    out[2 * at + 1] = static_cast<std::uint8_t>(tail[k]);
  }
  return true;
}

void append_ipv4(std::string& s, const std::uint8_t* o) {
  for (int i = 0; i < 4; ++i) {
    if (i) s += '.';
    s += std::to_string(o[i]);
  }
}

void append_hex(std::string& s, std::uint16_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  bool started = false;
  for (int shift = 12; shift >= 0; shift -= 4) {
    const unsigned d = (v >> shift) & 0xfu;
    if (d || started || shift == 0) {
      s += digits[d];
      started = true;
    }
  }
}

// RFC 5952 section 4: lowercase, no leading zeros, "::" for the longest run of
// two or more zero groups (the first such run on a tie), never for one group.
// Section 5: IPv4-mapped addresses keep the dotted quad ("::ffff:192.0.2.1").
void append_ipv6(std::string& s, const Octets& o) {
  static constexpr std::uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  bool mapped = true;
  for (int i = 0; i < 12; ++i) mapped = mapped && o[i] == mapped_prefix[i];
  if (mapped) {
    s += "::ffff:";
    append_ipv4(s, o.data() + 12);
    return;
  }

  std::uint16_t g[8];
  for (int i = 0; i < 8; ++i) g[i] = static_cast<std::uint16_t>(o[2 * i] << 8 | o[2 * i + 1]);

  int best_at = -1;
  int best_len = 1;  // a run must be longer than this to be compressed
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len) {
      best_at = i;
      best_len = j - i;
    }
    i = j;
  }

  for (int i = 0; i < 8; ++i) {
    if (i == best_at) {
      s += "::";
      i += best_len - 1;
      continue;
    }
    if (i != 0 && i != best_at + best_len) s += ':';
    append_hex(s, g[i]);
  }
}

}  // namespace

Result<SocketAddr> SocketAddr::parse(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  const bool bracketed = text.starts_with('[');
  if (bracketed) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return errc::invalid_address;
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return errc::invalid_address;
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }

  const auto port = parse_decimal(port_text, 65535);
  if (!port) return errc::invalid_address;

  if (!bracketed) {
    std::uint8_t o[4];
    if (!parse_ipv4(host, o)) return errc::invalid_address;
    return v4({o[0], o[1], o[2], o[3]}, static_cast<std::uint16_t>(*port));
  }

  std::uint32_t scope = 0;
  if (const std::size_t pct = host.find('%'); pct != std::string_view::npos) {
    const auto s = parse_decimal(host.substr(pct + 1), 0xffffffffu);
    if (!s) return errc::invalid_address;  // numeric only: no interface-name lookup
    scope = *s;
    host = host.substr(0, pct);
  }
  Octets o;
  if (!parse_ipv6(host, o)) return errc::invalid_address;
  return v6(o, static_cast<std::uint16_t>(*port), scope);
}

SocketAddr SocketAddr::v4(std::array<std::uint8_t, 4> octets, std::uint16_t port) noexcept {
  SocketAddr a;
  a.family_ = Family::v4;
  a.port_ = port;
  for (std::size_t i = 0; i < 4; ++i) a.octets_[i] = octets[i];
  return a;
}

SocketAddr SocketAddr::v6(const std::array<std::uint8_t, 16>& octets, std::uint16_t port,
                          std::uint32_t scope_id) noexcept {
  SocketAddr a;
  a.family_ = Family::v6;
  a.port_ = port;
  a.scope_id_ = scope_id;
  a.octets_ = octets;
  return a;
}

SocketAddr SocketAddr::loopback_v4(std::uint16_t port) noexcept { return v4({127, 0, 0, 1}, port); }

SocketAddr SocketAddr::loopback_v6(std::uint16_t port) noexcept {
  Octets o{};
  o[15] = 1;
  return v6(o, port);
}

std::string SocketAddr::to_string() const {
  std::string s;
  s.reserve(64);
  if (is_ipv4()) {
    append_ipv4(s, octets_.data());
  } else {
    s += '[';
    append_ipv6(s, octets_);
    if (scope_id_ != 0) {
      s += '%';
      s += std::to_string(scope_id_);
    }
    s += ']';
  }
  s += ':';
  s += std::to_string(port_);
  return s;
}

}  // namespace evq
