// SocketAddr: parsing, canonical formatting (RFC 5952), round trips, bad input.
#include <gtest/gtest.h>

#include <evq/evq.hpp>
#include <string>
#include <string_view>

namespace evq {
namespace {

TEST(SocketAddr, ParsesIpv4) {
  auto a = SocketAddr::parse("192.168.1.20:8080");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_TRUE(a->is_ipv4());
  EXPECT_FALSE(a->is_ipv6());
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->octets()[0], 192);
  EXPECT_EQ(a->octets()[1], 168);
  EXPECT_EQ(a->octets()[2], 1);
  EXPECT_EQ(a->octets()[3], 20);
  EXPECT_EQ(*a, SocketAddr::v4({192, 168, 1, 20}, 8080));
}

TEST(SocketAddr, ParsesIpv6) {
  auto a = SocketAddr::parse("[::1]:80");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_TRUE(a->is_ipv6());
  EXPECT_EQ(a->port(), 80);
  EXPECT_EQ(a->scope_id(), 0u);
  EXPECT_EQ(*a, SocketAddr::loopback_v6(80));

  auto b = SocketAddr::parse("[2001:db8:85a3::8a2e:370:7334]:443");
  ASSERT_TRUE(b);
  const std::array<std::uint8_t, 16> want = {0x20, 0x01, 0x0d, 0xb8, 0x85, 0xa3, 0,    0,
                                             0,    0,    0x8a, 0x2e, 0x03, 0x70, 0x73, 0x34};
  EXPECT_EQ(b->octets(), want);
}

TEST(SocketAddr, ParsesScopeId) {
  auto a = SocketAddr::parse("[fe80::1%2]:80");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->scope_id(), 2u);
  EXPECT_EQ(a->to_string(), "[fe80::1%2]:80");

  auto max = SocketAddr::parse("[fe80::1%4294967295]:1");
  ASSERT_TRUE(max);
  EXPECT_EQ(max->scope_id(), 4294967295u);
}

TEST(SocketAddr, ParsesEmbeddedIpv4) {
  auto mapped = SocketAddr::parse("[::ffff:192.0.2.1]:80");
  ASSERT_TRUE(mapped);
  EXPECT_EQ(mapped->octets()[10], 0xff);
  EXPECT_EQ(mapped->octets()[12], 192);
  EXPECT_EQ(mapped->octets()[15], 1);

  auto full = SocketAddr::parse("[1:2:3:4:5:6:1.2.3.4]:1");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->to_string(), "[1:2:3:4:5:6:102:304]:1");
}

TEST(SocketAddr, PortBounds) {
  auto lo = SocketAddr::parse("1.2.3.4:0");
  ASSERT_TRUE(lo);
  EXPECT_EQ(lo->port(), 0);
  auto hi = SocketAddr::parse("[::]:65535");
  ASSERT_TRUE(hi);
  EXPECT_EQ(hi->port(), 65535);
  EXPECT_FALSE(SocketAddr::parse("1.2.3.4:65536"));
  EXPECT_FALSE(SocketAddr::parse("[::]:65536"));
  EXPECT_FALSE(SocketAddr::parse("1.2.3.4:4294967376"));  // 2^32 + 80: no wrap-around
}

// Canonical strings come back unchanged: parse(s).to_string() == s.
TEST(SocketAddr, CanonicalFormsRoundTrip) {
  const std::string_view canonical[] = {
      "0.0.0.0:0",
      "255.255.255.255:65535",
      "10.0.0.1:7000",
      "[::]:0",
      "[::1]:1",
      "[1::]:1",
      "[1::1]:2",
      "[2001:db8::1]:443",
      "[2001:db8:0:1:1:1:1:1]:1",  // one zero group is never "::"
      "[2001:db8::1:0:0:1]:1",     // equal runs: the first is compressed
      "[2001:0:0:1::1]:1",         // the longest run is compressed
      "[1:2:3:4:5:6:7:8]:9",
      "[0:2:3:4:5:6:7:8]:1",
      "[1:2:3:4:5:6:7:0]:1",
      "[fe80::abcd%7]:22",
      "[::ffff:192.0.2.1]:80",
      "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
  };
  for (std::string_view s : canonical) {
    auto a = SocketAddr::parse(s);
    ASSERT_TRUE(a) << s << ": " << a.error().message();
    EXPECT_EQ(a->to_string(), s);
    auto again = SocketAddr::parse(a->to_string());
    ASSERT_TRUE(again) << s;
    EXPECT_EQ(*again, *a) << s;
  }
}

// RFC 5952: lowercase, no leading zeros, the longest zero run compressed.
TEST(SocketAddr, FormatsIpv6Canonically) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"[2001:DB8:0:0:0:0:0:1]:80", "[2001:db8::1]:80"},
      {"[0:0:0:0:0:0:0:1]:1", "[::1]:1"},
      {"[0:0:0:0:0:0:0:0]:1", "[::]:1"},
      {"[2001:0db8::0001]:1", "[2001:db8::1]:1"},
      {"[2001:db8:0:0:1:0:0:1]:1", "[2001:db8::1:0:0:1]:1"},
      {"[2001:0:0:1:0:0:0:1]:1", "[2001:0:0:1::1]:1"},
      {"[1:0:2:0:3:0:4:0]:1", "[1:0:2:0:3:0:4:0]:1"},
      {"[::ffff:c000:0201]:80", "[::ffff:192.0.2.1]:80"},
      {"[::1.2.3.4]:1", "[::102:304]:1"},
      {"[1:2:3:4:5:6:7::]:1", "[1:2:3:4:5:6:7:0]:1"},
      {"[::2:3:4:5:6:7:8]:1", "[0:2:3:4:5:6:7:8]:1"},
      {"[fe80::1%0]:1", "[fe80::1]:1"},
  };
  for (const auto& [in, want] : cases) {
    auto a = SocketAddr::parse(in);
    ASSERT_TRUE(a) << in << ": " << a.error().message();
    EXPECT_EQ(a->to_string(), want) << in;
    auto again = SocketAddr::parse(a->to_string());
    ASSERT_TRUE(again) << in;
    EXPECT_EQ(*again, *a) << in;
  }
}

TEST(SocketAddr, RejectsMalformedInput) {
  const std::string_view bad[] = {
      "",
      ":",
      "127.0.0.1",
      "127.0.0.1:",
      ":80",
      "127.0.0.1:-1",
      "127.0.0.1:+1",
      "127.0.0.1: 80",
      " 127.0.0.1:80",
      "127.0.0.1:80 ",
      "127.0.0.1:0x50",
      "127.0.0.1:80:80",
      "256.0.0.1:80",
      "1.2.3:80",
      "1.2.3.4.5:80",
      "01.2.3.4:80",
      "1..3.4:80",
      "1.2.3.:80",
      ".1.2.3:80",
      "localhost:80",
      "::1:80",
      "[::1]",
      "[::1]:",
      "[::1]80",
      "[::1:80",
      "::1]:80",
      "[]:80",
      "[1:2:3:4:5:6:7:8:9]:1",
      "[1:2:3:4:5:6:7]:1",
      "[1::2::3]:1",
      "[:::]:1",
      "[1:]:1",
      "[:1]:1",
      "[1:::2]:1",
      "[12345::]:1",
      "[g::]:1",
      "[::1%]:1",
      "[::1%eth0]:1",
      "[::1%-1]:1",
      "[::1%4294967296]:1",
      "[1.2.3.4]:80",
      "[1.2.3.4::]:1",
      "[::1.2.3]:1",
      "[::256.1.1.1]:1",
      "[1:2:3:4:5:6:7:1.2.3.4]:1",
      "[::1.2.3.4:5]:1",
      "[::1]:80x",
      "[::1] :80",
      "1.2.3.4%1:80",
  };
  for (std::string_view s : bad) {
    auto a = SocketAddr::parse(s);
    ASSERT_FALSE(a) << "accepted \"" << s << "\" as " << a->to_string();
    EXPECT_EQ(a.error(), errc::invalid_address) << s;
    EXPECT_EQ(a.error(), std::errc::invalid_argument) << s;
  }
}

TEST(SocketAddr, RejectsEmbeddedNul) {
  const std::string s("127.0.0.1:80\0", 13);
  EXPECT_FALSE(SocketAddr::parse(s));
  const std::string t("127.0.0.1\0:80", 13);
  EXPECT_FALSE(SocketAddr::parse(t));
}

TEST(SocketAddr, Factories) {
  EXPECT_EQ(SocketAddr().to_string(), "0.0.0.0:0");
  EXPECT_EQ(SocketAddr::v4({10, 1, 2, 3}, 5).to_string(), "10.1.2.3:5");
  EXPECT_EQ(SocketAddr::loopback_v4(7).to_string(), "127.0.0.1:7");
  EXPECT_EQ(SocketAddr::loopback_v6(7).to_string(), "[::1]:7");

  std::array<std::uint8_t, 16> o{};
  o[0] = 0xfe;
  o[1] = 0x80;
  o[15] = 9;
  const SocketAddr scoped = SocketAddr::v6(o, 99, 3);
  EXPECT_EQ(scoped.to_string(), "[fe80::9%3]:99");
  EXPECT_EQ(scoped.scope_id(), 3u);

  SocketAddr a = SocketAddr::loopback_v4(1);
  a.set_port(65535);
  EXPECT_EQ(a.port(), 65535);
  EXPECT_EQ(a.to_string(), "127.0.0.1:65535");
}

TEST(SocketAddr, EqualityComparesEveryField) {
  EXPECT_EQ(SocketAddr::loopback_v4(1), SocketAddr::loopback_v4(1));
  EXPECT_NE(SocketAddr::loopback_v4(1), SocketAddr::loopback_v4(2));
  EXPECT_NE(SocketAddr::loopback_v4(1), SocketAddr::loopback_v6(1));
  std::array<std::uint8_t, 16> o{};
  o[15] = 1;
  EXPECT_NE(SocketAddr::v6(o, 1, 0), SocketAddr::v6(o, 1, 1));
  // 0.0.0.0 and :: are different addresses.
  EXPECT_NE(*SocketAddr::parse("0.0.0.0:0"), *SocketAddr::parse("[::]:0"));
}

}  // namespace
}  // namespace evq
