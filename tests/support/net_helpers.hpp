// tests/support/net_helpers.hpp: helpers for the socket and pipe tests:
// connected pairs, reading and writing through an edge-triggered registration
// with deadlines, descriptor checks, unique Unix names.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <evq/evq.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "support/fd_count.hpp"
#include "support/wait.hpp"

#if EVQ_POSIX
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#endif

namespace evq::test {

// Open descriptors of this process, or -1 where they cannot be listed (then
// leak checks skip).
inline int count_open_fds() { return list_open_fds().count; }

#if EVQ_POSIX
inline bool is_cloexec(NativeHandle fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

inline bool is_nonblocking(NativeHandle fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

// Every descriptor evq creates: close-on-exec and non-blocking.
#define EVQ_EXPECT_FD_FLAGS(source)                                                \
  do {                                                                             \
    EXPECT_TRUE(::evq::test::is_cloexec((source).native_handle())) << #source;     \
    EXPECT_TRUE(::evq::test::is_nonblocking((source).native_handle())) << #source; \
  } while (0)

inline std::string unique_suffix() {
  static std::atomic<int> counter{0};
  return std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

// A filesystem path for a Unix socket, unique per process and call, short
// enough for every sun_path, unlinked on destruction.
class TempSocketPath {
 public:
  TempSocketPath()
      : path_((std::filesystem::temp_directory_path() / ("evq-" + unique_suffix() + ".sock"))
                  .string()) {
    ::unlink(path_.c_str());
  }
  ~TempSocketPath() { ::unlink(path_.c_str()); }
  TempSocketPath(const TempSocketPath&) = delete;
  TempSocketPath& operator=(const TempSocketPath&) = delete;
  const std::string& str() const { return path_; }

 private:
  std::string path_;
};

// A Linux abstract name ("@..."), unique per process and call.
inline std::string unique_abstract_name() { return "@evq-test-" + unique_suffix(); }
#endif  // EVQ_POSIX

inline std::span<std::byte> buffer(std::string& s) {
  return std::as_writable_bytes(std::span(s.data(), s.size()));
}

inline std::string to_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

inline bool any_event(const Event&) { return true; }

// Reads from `source` (registered for readable with `token`, any trigger)
// until `n` bytes came, waiting for an event whenever a read would block.
// Edge-safe: it waits only after seeing would-block.
template <class S>
std::string read_exactly(Poll& poll, Token token, S& source, std::size_t n) {
  std::string out;
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  char chunk[4096];
  while (out.size() < n) {
    const std::size_t want = std::min(sizeof chunk, n - out.size());
    auto r = source.read(std::as_writable_bytes(std::span(chunk, want)));
    if (r) {
      if (*r == 0) {
        ADD_FAILURE() << "end of stream after " << out.size() << " of " << n << " bytes";
        return out;
      }
      out.append(chunk, *r);
      continue;
    }
    if (r.error() != std::errc::operation_would_block) {
      ADD_FAILURE() << "read: " << r.error().message();
      return out;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until || !wait_for(poll, token, any_event, until - now)) {
      ADD_FAILURE() << "timed out after " << out.size() << " of " << n << " bytes";
      return out;
    }
  }
  return out;
}

// Reads until end of stream (read returns 0); same waiting rules.
template <class S>
std::string read_to_end(Poll& poll, Token token, S& source) {
  std::string out;
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  char chunk[4096];
  for (;;) {
    auto r = source.read(std::as_writable_bytes(std::span(chunk)));
    if (r) {
      if (*r == 0) return out;
      out.append(chunk, *r);
      continue;
    }
    if (r.error() != std::errc::operation_would_block) {
      ADD_FAILURE() << "read: " << r.error().message();
      return out;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until || !wait_for(poll, token, any_event, until - now)) {
      ADD_FAILURE() << "timed out waiting for end of stream after " << out.size() << " bytes";
      return out;
    }
  }
}

// Writes all of `data` to `source` (registered for writable with `token`).
template <class S>
bool write_all(Poll& poll, Token token, S& source, std::span<const std::byte> data) {
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (!data.empty()) {
    auto r = source.write(data);
    if (r) {
      data = data.subspan(*r);
      continue;
    }
    if (r.error() != std::errc::operation_would_block) {
      ADD_FAILURE() << "write: " << r.error().message();
      return false;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until || !wait_for(poll, token, any_event, until - now)) {
      ADD_FAILURE() << "timed out writing, " << data.size() << " bytes left";
      return false;
    }
  }
  return true;
}

// A connected TCP pair over `where` (loopback by default), the server side
// accepted. Fails the test (and returns nullopt) when it cannot be made.
struct TcpPair {
  TcpStream client;
  TcpStream server;
};

inline std::optional<TcpPair> tcp_pair(const SocketAddr& where = SocketAddr::loopback_v4(0)) {
  Poll poll = make_poll();
  auto listener = TcpListener::bind(where);
  if (!listener) {
    ADD_FAILURE() << "bind " << where.to_string() << ": " << listener.error().message();
    return std::nullopt;
  }
  auto addr = listener->local_addr();
  if (!addr) {
    ADD_FAILURE() << "local_addr: " << addr.error().message();
    return std::nullopt;
  }
  auto client = TcpStream::connect(*addr);
  if (!client) {
    ADD_FAILURE() << "connect: " << client.error().message();
    return std::nullopt;
  }
  constexpr Token kListener{0x7e57};
  if (auto ec = poll.registry().add(*listener, kListener, Interest::readable)) {
    ADD_FAILURE() << "add listener: " << ec.message();
    return std::nullopt;
  }
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  for (;;) {
    auto accepted = listener->accept();
    if (accepted) return TcpPair{std::move(*client), std::move(accepted->first)};
    if (accepted.error() != std::errc::operation_would_block) {
      ADD_FAILURE() << "accept: " << accepted.error().message();
      return std::nullopt;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until || !wait_for(poll, kListener, any_event, until - now)) {
      ADD_FAILURE() << "timed out waiting to accept";
      return std::nullopt;
    }
  }
}

}  // namespace evq::test
