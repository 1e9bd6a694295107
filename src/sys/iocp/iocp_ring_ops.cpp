// src/sys/iocp/iocp_ring_ops.cpp: how the IOCP engine starts each kind of
// operation (the overlapped Winsock call, or a timeout in the heap). Packets,
// results, cancel and shutdown are in iocp_ring.cpp.
#include "net/socket_access.hpp"
#include "net/windows/sockaddr.hpp"
#include "net/windows/socket_ops.hpp"
#include "sys/iocp/iocp_ring_state.hpp"

namespace evq::detail {

SocketInfo* IocpRing::State::ready_socket(RingState& state, OpIndex i, SOCKET h) noexcept {
  SocketInfo* info = socket_info(h);
  if (!info) {
    complete(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
    return nullptr;
  }
  if (auto ec = associate(h, *info)) {
    complete(state, i, ec, 0);
    return nullptr;
  }
  return info;
}

void IocpRing::State::start(RingState& state, OpIndex i) noexcept {
  OpSlot& s = slot(i);
  s.index = i;
  s.generation = state.op(i).generation;
  s.phase = Phase::idle;
  s.canceled = false;
  switch (state.op(i).kind) {
    case RingOp::read: return start_read(state, i);
    case RingOp::write: return start_write(state, i);
    case RingOp::recv: return start_recv(state, i);
    case RingOp::recv_from: return start_recv_from(state, i);
    case RingOp::send_to: return start_send_to(state, i);
    case RingOp::accept: return start_accept(state, i);
    case RingOp::connect: return start_connect(state, i);
    case RingOp::timeout:
      s.timer_seq = next_timer_seq++;
      if (!heap_push(state, i)) return complete(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
      s.phase = Phase::timer;
      return;
    case RingOp::wake: return complete(state, i, errc::invalid_argument, 0);
  }
}

void IocpRing::State::issued(RingState& state, OpIndex i, SocketInfo& info, bool ok, DWORD bytes) noexcept {
  OpSlot& s = slot(i);
  if (ok && info.skip) return result(state, i, {}, bytes);  // no packet will come
  if (!ok) {
    const int err = ::WSAGetLastError();
    if (err != WSA_IO_PENDING) return result(state, i, windows_error(static_cast<unsigned long>(err)), 0);
  }
  s.phase = Phase::pending;
  ++info.in_flight;
  ++outstanding;
}

void IocpRing::State::start_read(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  const SOCKET h = static_cast<SOCKET>(op.handle);
  SocketInfo* info = ready_socket(state, i, h);
  if (!info) return;
  // WSARecv copies the WSABUF array before it returns: a stack array does.
  WSABUF wb[windows::max_io_slices];
  DWORD n = 1;
  if (op.vectored) {
    n = static_cast<DWORD>(std::min(op.read_slices.size(), windows::max_io_slices));
    for (DWORD k = 0; k < n; ++k) {
      wb[k].len = static_cast<ULONG>(std::min<std::size_t>(op.read_slices[k].size(), ULONG_MAX));
      wb[k].buf = reinterpret_cast<char*>(op.read_slices[k].data());
    }
  } else {
    wb[0].len = static_cast<ULONG>(std::min<std::size_t>(op.size, ULONG_MAX));
    wb[0].buf = reinterpret_cast<char*>(op.data);
  }
  s.flags = 0;
  s.ov = OVERLAPPED{};
  DWORD bytes = 0;
  const bool ok = ::WSARecv(h, wb, n, &bytes, &s.flags, &s.ov, nullptr) == 0;
  issued(state, i, *info, ok, bytes);
}

void IocpRing::State::start_write(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  const SOCKET h = static_cast<SOCKET>(op.handle);
  SocketInfo* info = ready_socket(state, i, h);
  if (!info) return;
  WSABUF wb[windows::max_io_slices];
  DWORD n = 0;
  std::size_t room = kMaxWrite;
  auto add = [&](const std::byte* p, std::size_t len) {
    len = std::min(len, room);
    // WSABUF has one pointer type for both directions; WSASend only reads.
    wb[n].buf = const_cast<char*>(reinterpret_cast<const char*>(p));
    wb[n].len = static_cast<ULONG>(len);
    ++n;
    room -= len;
  };
  if (op.vectored) {
    for (std::size_t k = 0; k < op.write_slices.size() && n < windows::max_io_slices && room > 0; ++k)
      add(op.write_slices[k].data(), op.write_slices[k].size());
  } else {
    add(op.data, op.size);
  }
  s.ov = OVERLAPPED{};
  DWORD bytes = 0;
  const bool ok = ::WSASend(h, wb, n, &bytes, 0, &s.ov, nullptr) == 0;
  issued(state, i, *info, ok, bytes);
}

void IocpRing::State::start_recv_from(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  const SOCKET h = static_cast<SOCKET>(op.handle);
  SocketInfo* info = ready_socket(state, i, h);
  if (!info) return;
  WSABUF wb{static_cast<ULONG>(std::min<std::size_t>(op.size, ULONG_MAX)), reinterpret_cast<char*>(op.data)};
  s.flags = 0;
  s.addr_len = sizeof(SOCKADDR_STORAGE);
  s.ov = OVERLAPPED{};
  DWORD bytes = 0;
  const bool ok = ::WSARecvFrom(h, &wb, 1, &bytes, &s.flags, s.addr(), &s.addr_len, &s.ov, nullptr) == 0;
  issued(state, i, *info, ok, bytes);
}

void IocpRing::State::start_send_to(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  const SOCKET h = static_cast<SOCKET>(op.handle);
  SocketInfo* info = ready_socket(state, i, h);
  if (!info) return;
  const windows::Sockaddr to = windows::to_sockaddr(op.addr);
  std::memcpy(s.addrs, &to.storage, sizeof to.storage);
  WSABUF wb{static_cast<ULONG>(std::min<std::size_t>(op.size, ULONG_MAX)),
            const_cast<char*>(reinterpret_cast<const char*>(op.data))};
  s.ov = OVERLAPPED{};
  DWORD bytes = 0;
  const bool ok = ::WSASendTo(h, &wb, 1, &bytes, 0, s.addr(), to.len, &s.ov, nullptr) == 0;
  issued(state, i, *info, ok, bytes);
}

// As the emulation: a buffer only for the moment of receiving, and an empty
// pool fails the operation at once, data or not (io_uring's -ENOBUFS).
void IocpRing::State::start_recv(RingState& state, OpIndex i) noexcept {
  const SOCKET h = static_cast<SOCKET>(state.op(i).handle);
  SocketInfo* info = ready_socket(state, i, h);
  if (!info) return;
  recv_now(state, i);
}

// One non-blocking recv into a pool buffer; would-block posts the zero-byte
// read that tells when to try again. A loop, not a recursion through
// issued(): a zero-byte read that succeeds at once (skip mode) tries again.
void IocpRing::State::recv_now(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  const SOCKET h = static_cast<SOCKET>(op.handle);
  PoolState& pool = *op.pool;
  SocketInfo& info = *socket_info(h);  // there already: start_recv made it
  for (;;) {
    std::uint32_t id = 0;
    if (!pool.take(id)) return complete(state, i, std::make_error_code(std::errc::no_buffer_space), 0);
    auto r = windows::recv_some(h, std::span<std::byte>(pool.data(id), pool.buffer_size));
    if (r && *r > 0) {
      op.buffer = pool.data(id);
      op.buffer_id = id;
      return complete(state, i, {}, *r);
    }
    pool.give_back(id);
    if (r || is_windows_error(r.error(), WSAESHUTDOWN)) return complete(state, i, {}, 0);
    if (!windows::is_would_block(r.error())) return complete(state, i, r.error(), 0);
    WSABUF none{0, nullptr};
    s.flags = 0;
    s.ov = OVERLAPPED{};
    DWORD bytes = 0;
    if (::WSARecv(h, &none, 1, &bytes, &s.flags, &s.ov, nullptr) == 0) {
      if (info.skip) continue;  // ready already, and no packet will come
    } else if (const int err = ::WSAGetLastError(); err != WSA_IO_PENDING) {
      return complete(state, i, windows_error(static_cast<unsigned long>(err)), 0);
    }
    s.phase = Phase::pending;
    ++info.in_flight;
    ++outstanding;
    return;
  }
}

void IocpRing::State::start_accept(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  const SOCKET listener = static_cast<SOCKET>(op.handle);
  SocketInfo* info = socket_info(listener);
  if (!info) return complete(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
  if (auto ec = associate(listener, *info)) return complete(state, i, ec, 0);
  windows::Sockaddr local;
  if (::getsockname(listener, local.get(), &local.len) != 0) return complete(state, i, last_wsa_error(), 0);
  // Made as TcpListener::accept makes its sockets: non-blocking, not inheritable.
  auto accepted = windows::open_socket(local.storage.ss_family, SOCK_STREAM, IPPROTO_TCP);
  if (!accepted) return complete(state, i, accepted.error(), 0);
  s.socket = *accepted;
  s.ov = OVERLAPPED{};
  DWORD bytes = 0;
  const bool ok = accept_ex(listener, s.socket, s.addrs, 0, kAcceptAddrLen, kAcceptAddrLen, &bytes, &s.ov) != FALSE;
  issued(state, i, *info, ok, bytes);
}

void IocpRing::State::finish_accept(RingState& state, OpIndex i, std::error_code error) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  if (error) {
    // Reset while it waited in the backlog (Windows: ERROR_NETNAME_DELETED):
    // take the next one, as TcpListener::accept does.
    if (!s.canceled && (is_windows_error(error, ERROR_NETNAME_DELETED) || is_windows_error(error, WSAECONNRESET))) {
      ::closesocket(s.socket);
      s.socket = INVALID_SOCKET;
      return start_accept(state, i);
    }
    return complete(state, i, error, 0);
  }
  const SOCKET listener = static_cast<SOCKET>(op.handle);
  if (::setsockopt(s.socket, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, reinterpret_cast<const char*>(&listener),
                   sizeof listener) != 0)
    return complete(state, i, last_wsa_error(), 0);
  SOCKADDR* local = nullptr;
  SOCKADDR* remote = nullptr;
  INT local_len = 0, remote_len = 0;
  accept_ex_sockaddrs(s.addrs, 0, kAcceptAddrLen, kAcceptAddrLen, &local, &local_len, &remote, &remote_len);
  windows::Sockaddr peer;
  if (remote && remote_len > 0 && remote_len <= static_cast<INT>(sizeof peer.storage)) {
    std::memcpy(&peer.storage, remote, static_cast<std::size_t>(remote_len));
    peer.len = remote_len;
  } else if (::getpeername(s.socket, peer.get(), &peer.len) != 0) {
    return complete(state, i, last_wsa_error(), 0);
  }
  auto addr = windows::to_socket_addr(peer);
  if (!addr) return complete(state, i, addr.error(), 0);
  op.addr = *addr;
  // Non-blocking already (open_socket); set again since Windows does not
  // document whether the mode survives AcceptEx's context update.
  u_long on = 1;
  if (::ioctlsocket(s.socket, FIONBIO, &on) != 0) return complete(state, i, last_wsa_error(), 0);
  op.stream.emplace(SocketAccess::adopt_tcp_stream(static_cast<NativeHandle>(s.socket)));
  s.socket = INVALID_SOCKET;
  complete(state, i, {}, 0);
}

void IocpRing::State::start_connect(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  const int family = windows::address_family(op.addr);
  auto sock = windows::open_socket(family, SOCK_STREAM, IPPROTO_TCP);
  if (!sock) return complete(state, i, sock.error(), 0);
  // Owned by the record from here: a failed or withdrawn connect closes it.
  op.stream.emplace(SocketAccess::adopt_tcp_stream(static_cast<NativeHandle>(*sock)));
  op.handle = static_cast<NativeHandle>(*sock);
  // ConnectEx wants a bound socket.
  windows::Sockaddr any;  // zeroed: the wildcard address, port 0
  any.storage.ss_family = static_cast<ADDRESS_FAMILY>(family);
  any.len = family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(*sock, any.get(), any.len) != 0) {
    auto ec = last_wsa_error();
    op.stream.reset();
    return complete(state, i, ec, 0);
  }
  SocketInfo* info = socket_info(*sock);
  std::error_code ec = info ? associate(*sock, *info) : std::make_error_code(std::errc::not_enough_memory);
  if (ec) {
    op.stream.reset();
    return complete(state, i, ec, 0);
  }
  const windows::Sockaddr to = windows::to_sockaddr(op.addr);
  s.ov = OVERLAPPED{};
  DWORD bytes = 0;
  const bool ok = connect_ex(*sock, to.get(), to.len, nullptr, 0, &bytes, &s.ov) != FALSE;
  issued(state, i, *info, ok, bytes);
}

}  // namespace evq::detail
