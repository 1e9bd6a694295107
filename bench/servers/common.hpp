// Shared by every benchmark server: the same command line, the same listening
// socket setup and the same request accounting, so the servers differ only in
// the event loop they drive.
//   <server> [--port P] [--requests N] [--size S]
// --port 0 (the default) picks a free port. Each server prints "port <P>" on
// stdout once it listens. With --requests N it returns from main after echoing
// N*S bytes (N requests of S bytes), which is what the callgrind and strace
// runs use; without it, it runs until killed.
#pragma once

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace bench {

inline constexpr std::size_t kReadBuffer = 64 * 1024;

struct Options {
  int port = 0;
  std::uint64_t requests = 0;  // 0: run forever
  std::uint64_t size = 64;
  const char* backend = nullptr;  // evq servers only; each picks its own default
  std::uint64_t limit_bytes() const { return requests ? requests * size : ~std::uint64_t{0}; }
};

inline Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: missing value for %s\n", argv[0], argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--port")) o.port = std::atoi(next());
    else if (!std::strcmp(argv[i], "--requests")) o.requests = std::strtoull(next(), nullptr, 10);
    else if (!std::strcmp(argv[i], "--size")) o.size = std::strtoull(next(), nullptr, 10);
    else if (!std::strcmp(argv[i], "--backend")) o.backend = next();
    else {
      std::fprintf(stderr, "usage: %s [--port P] [--requests N] [--size S] [--backend B]\n", argv[0]);
      std::exit(2);
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  return o;
}

// A listening TCP socket on 127.0.0.1:port (0: any free port).
inline int listen_socket(int port, bool nonblocking) {
  int fd = ::socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0) | SOCK_CLOEXEC, 0);
  if (fd < 0) std::perror("socket"), std::exit(1);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) std::perror("bind"), std::exit(1);
  if (::listen(fd, 4096) < 0) std::perror("listen"), std::exit(1);
  return fd;
}

inline int bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

inline void announce(int port) {
  std::printf("port %d\n", port);
  std::fflush(stdout);
}

inline void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace bench
