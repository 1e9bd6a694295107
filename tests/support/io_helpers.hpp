// tests/support/io_helpers.hpp: helpers of the readiness tests: read or write
// until would-block (what edge triggering asks of the user, and what re-arms
// the emulated edge trigger of poll(2)), counting the polls that report a
// token, a connected TCP pair, and raw pipes for SourceFd.
#pragma once

#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "support/wait.hpp"

#if EVQ_POSIX
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace evq::test {

inline bool is_would_block(std::error_code ec) {
  return ec == std::errc::operation_would_block;
}

inline bool every_event(const Event&) { return true; }

struct Drained {
  std::size_t bytes = 0;
  bool eof = false;
  std::error_code error;  // an error other than would-block
};

// Reads until would-block, end of stream or another error, appending what it
// read to `sink` when given.
template <class Reader>
Drained read_until_would_block(Reader& reader, std::vector<std::byte>* sink = nullptr) {
  Drained out;
  std::vector<std::byte> buf(64 * 1024);
  for (;;) {
    auto n = reader.read(buf);
    if (!n) {
      if (!is_would_block(n.error())) out.error = n.error();
      return out;
    }
    if (*n == 0) {
      out.eof = true;
      return out;
    }
    if (sink) sink->insert(sink->end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    out.bytes += *n;
  }
}

struct Filled {
  std::size_t bytes = 0;
  bool would_block = false;
  std::error_code error;  // an error other than would-block
};

// Writes a byte pattern until would-block (or `limit` bytes, or an error).
template <class Writer>
Filled write_until_would_block(Writer& writer,
                               std::size_t limit = std::numeric_limits<std::size_t>::max()) {
  Filled out;
  std::vector<std::byte> chunk(64 * 1024);
  for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<std::byte>(i * 7 + 1);
  while (out.bytes < limit) {
    const std::size_t want = std::min(chunk.size(), limit - out.bytes);
    auto n = writer.write(std::span<const std::byte>(chunk.data(), want));
    if (!n) {
      if (is_would_block(n.error()))
        out.would_block = true;
      else
        out.error = n.error();
      return out;
    }
    out.bytes += *n;
  }
  return out;
}

// Writes a short message whole; false (with a failure recorded) otherwise.
template <class Writer>
bool write_all(Writer& writer, std::string_view text) {
  auto n = writer.write(bytes(text));
  if (!n) {
    ADD_FAILURE() << "write: " << n.error().message();
    return false;
  }
  if (*n != text.size()) {
    ADD_FAILURE() << "short write: " << *n << " of " << text.size();
    return false;
  }
  return true;
}

// Polls `polls` times with `timeout` and counts the polls that reported an
// event for `token` satisfying `pred`. Used to tell apart "fires on every
// poll" (level) from "fires once" (edge, oneshot) without failing on a
// spurious event: callers assert `< polls`, not `== 0`, unless the API rules
// out any event at all (a disarmed oneshot registration).
inline int polls_with_event(Poll& poll, Token token, int polls, std::chrono::nanoseconds timeout,
                            const std::function<bool(const Event&)>& pred = every_event) {
  Events events(64);
  int hits = 0;
  for (int i = 0; i < polls; ++i) {
    const std::error_code ec = poll.poll(events, timeout);
    if (ec) {
      ADD_FAILURE() << "poll: " << ec.message();
      return hits;
    }
    for (const Event& e : events) {
      if (e.token() == token && pred(e)) {
        ++hits;
        break;
      }
    }
  }
  return hits;
}

// One poll (waiting up to kDeadline for anything at all): whether it reported
// `token` with `pred`. For level triggering, which must report a ready source
// on every poll.
inline bool next_poll_has(Poll& poll, Token token,
                          const std::function<bool(const Event&)>& pred = every_event) {
  return polls_with_event(poll, token, 1, kDeadline, pred) == 1;
}

inline bool readable(const Event& e) { return e.is_readable(); }
inline bool writable(const Event& e) { return e.is_writable(); }

// A connected pair of TCP streams over IPv4 loopback, Nagle off, registered
// nowhere (the temporary Poll used to wait for the connection is left).
inline std::optional<std::pair<TcpStream, TcpStream>> connected_tcp_pair() {
  auto listener = TcpListener::bind(SocketAddr::loopback_v4(0));
  if (!listener) {
    ADD_FAILURE() << "bind: " << listener.error().message();
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
  Poll poll = make_poll();
  const Token listener_token{1}, client_token{2};
  if (auto ec = poll.registry().add(*listener, listener_token, Interest::readable, Trigger::level)) {
    ADD_FAILURE() << "add listener: " << ec.message();
    return std::nullopt;
  }
  if (auto ec = poll.registry().add(*client, client_token, Interest::writable, Trigger::level)) {
    ADD_FAILURE() << "add client: " << ec.message();
    return std::nullopt;
  }
  std::optional<TcpStream> server;
  bool connected = false;
  Events events(8);
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (!server || !connected) {
    if (!server) {
      auto accepted = listener->accept();
      if (accepted) {
        server.emplace(std::move(accepted->first));
        continue;
      }
      if (!is_would_block(accepted.error())) {
        ADD_FAILURE() << "accept: " << accepted.error().message();
        return std::nullopt;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) {
      ADD_FAILURE() << "no TCP connection within the deadline";
      return std::nullopt;
    }
    if (auto ec = poll.poll(events, until - now)) {
      ADD_FAILURE() << "poll: " << ec.message();
      return std::nullopt;
    }
    for (const Event& e : events) {
      if (e.token() == client_token && e.is_writable()) {
        if (auto err = client->take_error()) {
          ADD_FAILURE() << "connect failed: " << err.message();
          return std::nullopt;
        }
        connected = true;
      }
    }
  }
  if (auto ec = poll.registry().remove(*client)) {
    ADD_FAILURE() << "remove client: " << ec.message();
    return std::nullopt;
  }
  if (auto ec = poll.registry().remove(*listener)) {
    ADD_FAILURE() << "remove listener: " << ec.message();
    return std::nullopt;
  }
  (void)client->set_nodelay(true);
  (void)server->set_nodelay(true);
  return std::pair<TcpStream, TcpStream>(std::move(*client), std::move(*server));
}

#if EVQ_POSIX
// Writing to a pipe whose reader is gone raises SIGPIPE (evq/pipe.hpp).
inline void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

// A pipe of raw descriptors, both non-blocking and close-on-exec, for
// SourceFd (which neither owns nor closes its descriptor).
class RawPipe {
 public:
  RawPipe() {
    int fds[2];
    if (::pipe(fds) != 0) {
      ADD_FAILURE() << "pipe: " << std::generic_category().message(errno);
      return;
    }
    for (int fd : fds) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    read_fd_ = fds[0];
    write_fd_ = fds[1];
  }
  RawPipe(const RawPipe&) = delete;
  RawPipe& operator=(const RawPipe&) = delete;
  ~RawPipe() { close(); }

  int read_fd() const { return read_fd_; }
  int write_fd() const { return write_fd_; }
  void close() {
    if (read_fd_ >= 0) ::close(read_fd_);
    if (write_fd_ >= 0) ::close(write_fd_);
    read_fd_ = write_fd_ = -1;
  }

  bool write(std::string_view text) const {
    const ssize_t n = ::write(write_fd_, text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size())) {
      ADD_FAILURE() << "raw write: " << (n < 0 ? std::generic_category().message(errno) : "short");
      return false;
    }
    return true;
  }
  // Reads until EAGAIN; returns the bytes read.
  std::size_t drain() const {
    std::size_t total = 0;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(read_fd_, buf, sizeof buf);
      if (n > 0) {
        total += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return total;
    }
  }

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
};
#endif  // EVQ_POSIX

}  // namespace evq::test
