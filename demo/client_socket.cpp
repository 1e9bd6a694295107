#include "client_socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace demo {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

sockaddr_in to_sockaddr(ClientSocket::Ipv4 ip, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  std::memcpy(&sa.sin_addr, ip.data(), 4);
  return sa;
}

}  // namespace

evq::Result<ClientSocket> ClientSocket::connect(Ipv4 to, std::uint16_t port, std::optional<Ipv4> from) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  ClientSocket s(fd);  // closes fd on every error path below
  if (from) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    // Let connect() choose the port knowing the whole 4-tuple, instead of
    // bind() reserving one for the source address alone.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    const sockaddr_in src = to_sockaddr(*from, 0);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) return last_error();
  }
  const sockaddr_in dst = to_sockaddr(to, port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS)
    return last_error();
  return s;
}

ClientSocket::ClientSocket(ClientSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), source_(std::move(other.source_)) {}

ClientSocket::~ClientSocket() {
  if (fd_ >= 0) ::close(fd_);
}

evq::Result<std::size_t> ClientSocket::read(std::span<std::byte> buf) {
  const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
  if (n < 0) return last_error();
  return static_cast<std::size_t>(n);
}

evq::Result<std::size_t> ClientSocket::write(std::span<const std::byte> buf) {
  const ssize_t n = ::send(fd_, buf.data(), buf.size(), MSG_NOSIGNAL);
  if (n < 0) return last_error();
  return static_cast<std::size_t>(n);
}

std::error_code ClientSocket::take_error() {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return last_error();
  return err ? std::error_code(err, std::system_category()) : std::error_code{};
}

void ClientSocket::set_nodelay() {
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void ClientSocket::set_reset_on_close() {
  const linger l{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace demo
