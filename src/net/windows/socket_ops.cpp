#include "net/windows/socket_ops.hpp"

#include "sys/iocp/winsock.hpp"

namespace evq::windows {
namespace {

// FIONBIO, and on failure close the socket and keep the error.
Result<SOCKET> make_nonblocking(SOCKET s) noexcept {
  u_long on = 1;
  if (::ioctlsocket(s, FIONBIO, &on) != 0) {
    const auto ec = detail::last_wsa_error();
    ::closesocket(s);
    return ec;
  }
  return s;
}

Result<SOCKET> make_uninheritable(SOCKET s) noexcept {
  if (!::SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0)) {
    const auto ec = detail::last_windows_error();
    ::closesocket(s);
    return ec;
  }
  return s;
}

}  // namespace

Result<SOCKET> open_socket(int family, int type, int protocol) noexcept {
  if (auto ec = detail::ensure_winsock()) return ec;
  // WSA_FLAG_NO_HANDLE_INHERIT makes the handle uninheritable from birth, so
  // a CreateProcess in another thread cannot leak it into a child (the
  // Windows counterpart of SOCK_CLOEXEC). WSA_FLAG_OVERLAPPED is what
  // socket() would set too: overlapped operations stay possible.
  SOCKET s = ::WSASocketW(family, type, protocol, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) {
    // Windows before 7 SP1 does not know the flag (WSAEINVAL): create the
    // socket, then clear the flag, with the window that leaves (as on macOS).
    if (::WSAGetLastError() != WSAEINVAL) return detail::last_wsa_error();
    s = ::WSASocketW(family, type, protocol, nullptr, 0, WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET) return detail::last_wsa_error();
    auto r = make_uninheritable(s);
    if (!r) return r;
  }
  return make_nonblocking(s);
}

Result<SOCKET> accept_socket(SOCKET listener, Sockaddr& peer) noexcept {
  const SOCKET s = ::accept(listener, peer.get(), &peer.len);
  if (s == INVALID_SOCKET) return detail::last_wsa_error();
  // An accepted socket takes over the listener's properties, but Windows
  // documents neither the non-blocking mode nor the inherit flag among them:
  // set both (two cheap calls per connection, not per I/O).
  auto r = make_uninheritable(s);
  if (!r) return r;
  return make_nonblocking(s);
}

Result<std::size_t> recv_vectored(SOCKET s, std::span<const IoSliceMut> bufs) noexcept {
  WSABUF wb[max_io_slices];
  const std::size_t n = std::min(bufs.size(), max_io_slices);
  for (std::size_t i = 0; i < n; ++i) {
    wb[i].len = static_cast<ULONG>(std::min<std::size_t>(bufs[i].size(), ULONG_MAX));
    wb[i].buf = reinterpret_cast<char*>(bufs[i].data());
  }
  DWORD got = 0;
  DWORD flags = 0;
  // No OVERLAPPED: a non-blocking call that returns at once, like readv.
  if (::WSARecv(s, wb, static_cast<DWORD>(n), &got, &flags, nullptr, nullptr) == SOCKET_ERROR)
    return detail::last_wsa_error();
  return static_cast<std::size_t>(got);
}

Result<std::size_t> send_vectored(SOCKET s, std::span<const IoSlice> bufs) noexcept {
  WSABUF wb[max_io_slices];
  const std::size_t n = std::min(bufs.size(), max_io_slices);
  for (std::size_t i = 0; i < n; ++i) {
    wb[i].len = static_cast<ULONG>(std::min<std::size_t>(bufs[i].size(), ULONG_MAX));
    // WSABUF has one pointer type for both directions; WSASend only reads.
    wb[i].buf = const_cast<char*>(reinterpret_cast<const char*>(bufs[i].data()));
  }
  DWORD sent = 0;
  if (::WSASend(s, wb, static_cast<DWORD>(n), &sent, 0, nullptr, nullptr) == SOCKET_ERROR)
    return detail::last_wsa_error();
  return static_cast<std::size_t>(sent);
}

}  // namespace evq::windows
