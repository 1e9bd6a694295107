#include "sys/iocp/iocp_ring.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "net/socket_access.hpp"
#include "net/windows/sockaddr.hpp"
#include "net/windows/socket_ops.hpp"
#include "sys/iocp/win32.hpp"
#include "sys/iocp/windows_error.hpp"
#include "sys/iocp/winsock.hpp"

namespace evq::detail {

namespace {

// Completion keys. Sockets are associated with kIoKey, and the packets the
// engine posts for an operation (a withdrawn timeout) use it too: both carry
// the operation's OVERLAPPED. notify()'s packet carries none.
constexpr ULONG_PTR kIoKey = 1;
constexpr ULONG_PTR kWakeKey = 2;

// NTSTATUS values the OVERLAPPED's Internal field holds (ntstatus.h clashes
// with windows.h, so they are spelled out).
constexpr LONG kStatusCancelled = static_cast<LONG>(0xC0000120L);
constexpr LONG kStatusBufferOverflow = static_cast<LONG>(0x80000005L);  // a datagram truncated

// See "Decisions" in the header.
constexpr std::size_t kMaxWrite = std::size_t{1} << 20;

// AcceptEx wants room for each address plus 16 bytes.
constexpr DWORD kAcceptAddrLen = sizeof(SOCKADDR_STORAGE) + 16;

constexpr ULONG kBatch = 128;  // packets reaped per GetQueuedCompletionStatusEx

enum class Phase : std::uint8_t {
  idle,
  pending,  // an overlapped call is in the kernel: its packet will come
  posted,   // the engine posted a packet for it (a withdrawn timeout)
  timer,    // a timeout in the heap
};

// One per operation record, at the same index (see the header).
struct OpSlot {
  OVERLAPPED ov{};  // first member: the packet's OVERLAPPED* is the slot
  std::uint32_t generation = 0;
  OpIndex index = no_op;
  Phase phase = Phase::idle;
  bool canceled = false;  // CancelIoEx was called for the call in flight
  DWORD flags = 0;        // WSARecv/WSARecvFrom: in and out
  INT addr_len = 0;       // WSARecvFrom: the sender's length
  SOCKET socket = INVALID_SOCKET;  // accept: the socket AcceptEx fills
  std::uint64_t timer_seq = 0;     // timeout: submission order among equal deadlines
  // recv_from: the sender; send_to: the target; accept: AcceptEx's addresses.
  alignas(SOCKADDR_STORAGE) std::byte addrs[2 * kAcceptAddrLen];

  SOCKADDR* addr() noexcept { return reinterpret_cast<SOCKADDR*>(addrs); }
};

// What the engine knows about a socket value (indexed by value / 4: Windows
// hands out handle values in multiples of 4).
struct SocketInfo {
  std::uint32_t in_flight = 0;  // our overlapped calls pending on it
  bool ours = false;            // we associated this value with our port (latest socket on it)
  bool skip = false;            // ... with the skip-on-success modes set
};

std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Round up: a 0.3 ms wait must not become a 0 ms poll.
DWORD to_milliseconds(TimeoutNs timeout) noexcept {
  if (timeout < 0) return INFINITE;
  const TimeoutNs ms = (timeout + 999'999) / 1'000'000;
  return ms >= static_cast<TimeoutNs>(INFINITE) ? INFINITE - 1 : static_cast<DWORD>(ms);
}

bool is_windows_error(const std::error_code& ec, int code) noexcept {
  return ec.value() == code && ec.category() == windows_category();
}

std::error_code canceled() noexcept { return std::make_error_code(std::errc::operation_canceled); }

// Every installed TCP and UDP provider is an IFS one (its handles are real
// file handles): only then are the skip-on-success modes safe.
bool only_ifs_providers() noexcept {
  DWORD size = 0;
  if (::WSAEnumProtocolsW(nullptr, nullptr, &size) != SOCKET_ERROR || ::WSAGetLastError() != WSAENOBUFS)
    return false;
  std::unique_ptr<std::byte[]> buf(new (std::nothrow) std::byte[size]);
  if (!buf) return false;
  auto* info = reinterpret_cast<WSAPROTOCOL_INFOW*>(buf.get());
  const int n = ::WSAEnumProtocolsW(nullptr, info, &size);
  if (n == SOCKET_ERROR) return false;
  for (int i = 0; i < n; ++i) {
    const WSAPROTOCOL_INFOW& p = info[i];
    if (p.iAddressFamily != AF_INET && p.iAddressFamily != AF_INET6) continue;
    if (p.iProtocol != IPPROTO_TCP && p.iProtocol != IPPROTO_UDP) continue;
    if (!(p.dwServiceFlags1 & XP1_IFS_HANDLES)) return false;
  }
  return true;
}

template <class Fn>
bool load_extension(SOCKET s, GUID id, Fn& fn) noexcept {
  DWORD bytes = 0;
  return ::WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, &fn, sizeof fn, &bytes, nullptr,
                    nullptr) == 0 &&
         fn != nullptr;
}

}  // namespace

// ---- State ------------------------------------------------------------------

struct IocpRing::State {
  explicit State(HANDLE p) noexcept : port(p) {}
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    if (port) ::CloseHandle(port);
  }

  HANDLE port;
  LPFN_ACCEPTEX accept_ex = nullptr;
  LPFN_GETACCEPTEXSOCKADDRS accept_ex_sockaddrs = nullptr;
  LPFN_CONNECTEX connect_ex = nullptr;
  bool skip_allowed = false;
  std::vector<std::unique_ptr<OpSlot[]>> slots;  // chunks of OpTable::chunk_size, never moved
  std::vector<SocketInfo> sockets;                // by socket value / 4
  std::vector<OpIndex> heap;                      // timeouts, earliest (deadline, seq) first
  std::uint64_t next_timer_seq = 0;
  std::size_t outstanding = 0;                    // packets still to come (pending + posted)
  OVERLAPPED_ENTRY entries[kBatch];

  OpSlot& slot(OpIndex i) noexcept { return slots[i >> OpTable::chunk_bits][i & (OpTable::chunk_size - 1)]; }
  bool ensure_slots(std::uint32_t extent) noexcept;
  SocketInfo* socket_info(SOCKET s) noexcept;
  std::error_code associate(SOCKET s, SocketInfo& info) noexcept;

  // Operations.
  void start(RingState& state, OpIndex i) noexcept;
  void start_read(RingState& state, OpIndex i) noexcept;
  void start_write(RingState& state, OpIndex i) noexcept;
  void start_recv_from(RingState& state, OpIndex i) noexcept;
  void start_send_to(RingState& state, OpIndex i) noexcept;
  void start_recv(RingState& state, OpIndex i) noexcept;
  void start_accept(RingState& state, OpIndex i) noexcept;
  void start_connect(RingState& state, OpIndex i) noexcept;
  // After an overlapped call on op.handle returned (`ok`: it returned success;
  // else WSAGetLastError() says): pending, or done at once.
  void issued(RingState& state, OpIndex i, SocketInfo& info, bool ok, DWORD bytes) noexcept;
  // The call's result, from its packet or at once: finishes the operation
  // (or issues its next step: recv's zero-byte read, accept's retry).
  void result(RingState& state, OpIndex i, std::error_code error, DWORD bytes) noexcept;
  void recv_now(RingState& state, OpIndex i) noexcept;
  void finish_accept(RingState& state, OpIndex i, std::error_code error) noexcept;
  void on_packet(RingState& state, const OVERLAPPED_ENTRY& e) noexcept;
  std::error_code overlapped_error(SOCKET s, OpSlot& slot) noexcept;
  void withdraw(RingState& state, OpIndex i) noexcept;
  void complete(RingState& state, OpIndex i, std::error_code error, std::size_t bytes) noexcept;

  // Timer heap.
  bool earlier(RingState& state, OpIndex a, OpIndex b) noexcept;
  void heap_place(RingState& state, std::size_t pos, OpIndex i) noexcept {
    heap[pos] = i;
    state.op(i).engine_word = pos;
  }
  void heap_up(RingState& state, std::size_t pos) noexcept;
  void heap_down(RingState& state, std::size_t pos) noexcept;
  bool heap_push(RingState& state, OpIndex i) noexcept;
  void heap_remove(RingState& state, OpIndex i) noexcept;
  void expire(RingState& state, std::int64_t now) noexcept;
};

bool IocpRing::State::ensure_slots(std::uint32_t extent) noexcept {
  while ((slots.size() << OpTable::chunk_bits) < extent) {
    std::unique_ptr<OpSlot[]> chunk(new (std::nothrow) OpSlot[OpTable::chunk_size]);
    if (!chunk) return false;
    try {
      slots.push_back(std::move(chunk));
    } catch (...) {
      return false;
    }
  }
  return true;
}

SocketInfo* IocpRing::State::socket_info(SOCKET s) noexcept {
  const std::size_t i = static_cast<std::size_t>(s) / 4;
  if (i >= sockets.size()) {
    try {
      sockets.resize(std::max(i + 1, sockets.size() * 2));
    } catch (...) {
      return nullptr;
    }
  }
  return &sockets[i];
}

// See "Decisions" in the header for when this runs and what the answers mean.
std::error_code IocpRing::State::associate(SOCKET s, SocketInfo& info) noexcept {
  if (info.in_flight > 0) return {};
  if (!::CreateIoCompletionPort(reinterpret_cast<HANDLE>(s), port, kIoKey, 0)) {
    const DWORD err = ::GetLastError();
    if (err == ERROR_INVALID_PARAMETER && info.ours) return {};  // ours already
    return windows_error(err);
  }
  info.ours = true;
  info.skip = skip_allowed && ::SetFileCompletionNotificationModes(
                                  reinterpret_cast<HANDLE>(s),
                                  FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE);
  return {};
}

void IocpRing::State::complete(RingState& state, OpIndex i, std::error_code error, std::size_t bytes) noexcept {
  OpSlot& s = slot(i);
  s.phase = Phase::idle;
  s.canceled = false;
  if (s.socket != INVALID_SOCKET) {
    ::closesocket(s.socket);
    s.socket = INVALID_SOCKET;
  }
  state.complete(i, error, bytes);
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
  SocketInfo* info = socket_info(h);
  if (!info) return complete(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
  if (auto ec = associate(h, *info)) return complete(state, i, ec, 0);
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
  SocketInfo* info = socket_info(h);
  if (!info) return complete(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
  if (auto ec = associate(h, *info)) return complete(state, i, ec, 0);
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
  SocketInfo* info = socket_info(h);
  if (!info) return complete(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
  if (auto ec = associate(h, *info)) return complete(state, i, ec, 0);
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
  SocketInfo* info = socket_info(h);
  if (!info) return complete(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
  if (auto ec = associate(h, *info)) return complete(state, i, ec, 0);
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
  SocketInfo* info = socket_info(h);
  if (!info) return complete(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
  if (auto ec = associate(h, *info)) return complete(state, i, ec, 0);
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

void IocpRing::State::result(RingState& state, OpIndex i, std::error_code error, DWORD bytes) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  s.phase = Phase::idle;
  switch (op.kind) {
    case RingOp::read:
      // Reading after shutdown(Shutdown::read): 0 as on Linux (see tcp.cpp).
      if (is_windows_error(error, WSAESHUTDOWN)) return complete(state, i, {}, 0);
      return complete(state, i, error, bytes);
    case RingOp::write:
    case RingOp::send_to:
      if (op.kind == RingOp::send_to && is_windows_error(error, WSAECONNRESET))
        error = windows_error(WSAECONNREFUSED);  // as UdpSocket::send_to says it
      return complete(state, i, error, bytes);
    case RingOp::recv_from: {
      // A datagram longer than the buffer: its first bytes, as POSIX.
      if (is_windows_error(error, WSAEMSGSIZE)) {
        error = {};
        bytes = static_cast<DWORD>(std::min<std::size_t>(op.size, ULONG_MAX));
      }
      if (is_windows_error(error, WSAECONNRESET)) error = windows_error(WSAECONNREFUSED);
      if (!error) {
        windows::Sockaddr from;
        std::memcpy(&from.storage, s.addrs, sizeof from.storage);
        from.len = s.addr_len;
        auto addr = windows::to_socket_addr(from);
        if (!addr) return complete(state, i, addr.error(), 0);
        op.addr = *addr;
      }
      return complete(state, i, error, bytes);
    }
    case RingOp::recv:
          if (error) {
        if (is_windows_error(error, WSAESHUTDOWN)) return complete(state, i, {}, 0);
        return complete(state, i, error, 0);
      }
      // The zero-byte read finished: data (or the end) is there. Withdrawn
      // meanwhile: nothing was taken from the socket, so a cancellation.
      if (s.canceled) return complete(state, i, canceled(), 0);
      return recv_now(state, i);
    case RingOp::accept: return finish_accept(state, i, error);
    case RingOp::connect:
      if (!error) {
        const SOCKET h = static_cast<SOCKET>(op.handle);
        if (::setsockopt(h, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0) error = last_wsa_error();
      }
      if (error) op.stream.reset();
      return complete(state, i, error, 0);
    case RingOp::timeout:
    case RingOp::wake: return complete(state, i, error, 0);
  }
}

std::error_code IocpRing::State::overlapped_error(SOCKET h, OpSlot& s) noexcept {
  if (static_cast<LONG>(s.ov.Internal) == kStatusCancelled) return canceled();
  DWORD bytes = 0, flags = 0;
  if (::WSAGetOverlappedResult(h, &s.ov, &bytes, FALSE, &flags)) return {};
  return last_wsa_error();
}

void IocpRing::State::on_packet(RingState& state, const OVERLAPPED_ENTRY& e) noexcept {
  if (!e.lpOverlapped) return;  // notify()
  OpSlot& s = *reinterpret_cast<OpSlot*>(e.lpOverlapped);
  const Phase phase = s.phase;
  // A packet nothing waits for (a call that also completed at once): drop it.
  if (phase != Phase::pending && phase != Phase::posted) return;
  --outstanding;
  const OpIndex i = s.index;
  OpRecord& op = state.op(i);
  if (op.state != OpState::in_engine || op.generation != s.generation) {
    s.phase = Phase::idle;  // stale: the record moved on
    return;
  }
  if (phase == Phase::posted) return complete(state, i, canceled(), 0);
  const SOCKET h = static_cast<SOCKET>(op.handle);
  if (SocketInfo* info = socket_info(h); info && info->in_flight > 0) --info->in_flight;
  std::error_code error;
  const LONG status = static_cast<LONG>(s.ov.Internal);
  if (status < 0 && !(status == kStatusBufferOverflow && op.kind == RingOp::recv_from))
    error = overlapped_error(h, s);
  else if (status == kStatusBufferOverflow)
    error = windows_error(WSAEMSGSIZE);
  result(state, i, error, e.dwNumberOfBytesTransferred);
}

// Cancel requests: the operation completes later, through the port.
void IocpRing::State::withdraw(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  OpSlot& s = slot(i);
  switch (s.phase) {
    case Phase::timer:
      heap_remove(state, i);
      // Through the port like the others, so withdrawals keep request order.
      s.phase = Phase::posted;
      s.ov = OVERLAPPED{};
      if (::PostQueuedCompletionStatus(port, 0, kIoKey, &s.ov)) {
        ++outstanding;
      } else {
        complete(state, i, canceled(), 0);
      }
      return;
    case Phase::pending:
      s.canceled = true;
      // ERROR_NOT_FOUND: it finished already; its packet is queued.
      (void)::CancelIoEx(reinterpret_cast<HANDLE>(static_cast<SOCKET>(op.handle)), &s.ov);
      return;
    case Phase::posted:
    case Phase::idle: return;  // on its way already
  }
}

// ---- Timer heap -------------------------------------------------------------

bool IocpRing::State::earlier(RingState& state, OpIndex a, OpIndex b) noexcept {
  const std::int64_t da = state.op(a).deadline_ns, db = state.op(b).deadline_ns;
  return da != db ? da < db : slot(a).timer_seq < slot(b).timer_seq;
}

void IocpRing::State::heap_up(RingState& state, std::size_t pos) noexcept {
  const OpIndex i = heap[pos];
  while (pos > 0) {
    const std::size_t parent = (pos - 1) / 2;
    if (!earlier(state, i, heap[parent])) break;
    heap_place(state, pos, heap[parent]);
    pos = parent;
  }
  heap_place(state, pos, i);
}

void IocpRing::State::heap_down(RingState& state, std::size_t pos) noexcept {
  const OpIndex i = heap[pos];
  const std::size_t n = heap.size();
  for (;;) {
    std::size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && earlier(state, heap[child + 1], heap[child])) ++child;
    if (!earlier(state, heap[child], i)) break;
    heap_place(state, pos, heap[child]);
    pos = child;
  }
  heap_place(state, pos, i);
}

bool IocpRing::State::heap_push(RingState& state, OpIndex i) noexcept {
  try {
    heap.push_back(i);  // capacity only grows: steady state allocates nothing
  } catch (...) {
    return false;
  }
  heap_up(state, heap.size() - 1);
  return true;
}

void IocpRing::State::heap_remove(RingState& state, OpIndex i) noexcept {
  const auto pos = static_cast<std::size_t>(state.op(i).engine_word);
  const OpIndex last = heap.back();
  heap.pop_back();
  if (pos == heap.size()) return;
  heap_place(state, pos, last);
  heap_up(state, pos);
  heap_down(state, static_cast<std::size_t>(state.op(last).engine_word));
}

void IocpRing::State::expire(RingState& state, std::int64_t now) noexcept {
  while (!heap.empty() && state.op(heap.front()).deadline_ns <= now) {
    const OpIndex i = heap.front();
    heap_remove(state, i);
    complete(state, i, {}, 0);  // io_uring's -ETIME is success here too
  }
}

// ---- IocpRing -----------------------------------------------------------------

Result<IocpRing> IocpRing::open(std::optional<Backend> backend, const RingOptions&) {
  if (backend && *backend != Backend::iocp) return errc::backend_unavailable;
  if (auto ec = ensure_winsock()) return ec;
  HANDLE port = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (!port) return last_windows_error();
  auto state = std::unique_ptr<State>(new (std::nothrow) State(port));
  if (!state) {
    ::CloseHandle(port);
    return std::make_error_code(std::errc::not_enough_memory);
  }
  // The extension functions hang off a socket; any TCP socket will do.
  auto probe = windows::open_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (!probe) return probe.error();
  const bool loaded = load_extension(*probe, WSAID_ACCEPTEX, state->accept_ex) &&
                      load_extension(*probe, WSAID_GETACCEPTEXSOCKADDRS, state->accept_ex_sockaddrs) &&
                      load_extension(*probe, WSAID_CONNECTEX, state->connect_ex);
  ::closesocket(*probe);
  if (!loaded) return errc::backend_unavailable;
  state->skip_allowed = only_ifs_providers();
  return IocpRing(std::move(state));
}

IocpRing::IocpRing(std::unique_ptr<State> state) noexcept : s_(std::move(state)) {}
IocpRing::IocpRing(IocpRing&& other) noexcept = default;
IocpRing::~IocpRing() = default;

std::error_code IocpRing::notify() noexcept {
  if (!::PostQueuedCompletionStatus(s_->port, 0, kWakeKey, nullptr)) return last_windows_error();
  return {};
}

std::error_code IocpRing::run(RingState& state, TimeoutNs timeout) {
  State& st = *s_;
  if (!st.ensure_slots(state.op_extent())) return std::make_error_code(std::errc::not_enough_memory);
  if (state.has_cancels()) state.drain_cancels([&](OpIndex i) { st.withdraw(state, i); });
  if (state.has_submissions()) state.drain_submissions([&](OpIndex i) { st.start(state, i); });

  std::int64_t now = st.heap.empty() ? 0 : steady_now_ns();
  if (!st.heap.empty()) st.expire(state, now);
  if (state.has_output()) {
    timeout = 0;  // reap what is ready, without blocking
  } else if (!st.heap.empty()) {
    const std::int64_t until = state.op(st.heap.front()).deadline_ns - now;
    if (timeout < 0 || until < timeout) timeout = until;
  }
  ULONG got = 0;
  if (!::GetQueuedCompletionStatusEx(st.port, st.entries, kBatch, &got, to_milliseconds(timeout), FALSE)) {
    const DWORD err = ::GetLastError();
    if (err != WAIT_TIMEOUT) return windows_error(err);
    got = 0;
  }
  for (ULONG k = 0; k < got; ++k) st.on_packet(state, st.entries[k]);
  if (!st.heap.empty()) st.expire(state, steady_now_ns());
  return {};
}

void IocpRing::shutdown(RingState& state) noexcept {
  State& st = *s_;
  if (!st.ensure_slots(state.op_extent())) return;  // cannot happen: run() made them
  state.for_each_in_engine([&](OpIndex i) {
    OpSlot& s = st.slot(i);
    if (s.phase == Phase::timer) {
      st.heap_remove(state, i);
      s.phase = Phase::idle;
    } else if (s.phase == Phase::pending) {
      (void)::CancelIoEx(reinterpret_cast<HANDLE>(static_cast<SOCKET>(state.op(i).handle)), &s.ov);
    }
  });
  // Every overlapped call must come back before its buffers, sockets and
  // slots may go. A cancelled socket call completes within microseconds; one
  // that has not after ten seconds never will (a provider that ignores
  // cancellation): leak the slots rather than let the kernel write into
  // freed memory.
  int idle_seconds = 0;
  while (st.outstanding > 0) {
    ULONG got = 0;
    if (!::GetQueuedCompletionStatusEx(st.port, st.entries, kBatch, &got, 1000, FALSE)) {
      if (::GetLastError() == WAIT_TIMEOUT && ++idle_seconds < 10) continue;
      // Deliberately leaked, see above.
      (void)new (std::nothrow) std::vector<std::unique_ptr<OpSlot[]>>(std::move(st.slots));
      st.slots.clear();
      break;
    }
    idle_seconds = 0;
    for (ULONG k = 0; k < got; ++k) {
      if (!st.entries[k].lpOverlapped) continue;
      OpSlot& s = *reinterpret_cast<OpSlot*>(st.entries[k].lpOverlapped);
      if (s.phase != Phase::pending && s.phase != Phase::posted) continue;
      s.phase = Phase::idle;
      --st.outstanding;
    }
  }
  state.for_each_in_engine([&](OpIndex i) {
    if (i < (st.slots.size() << OpTable::chunk_bits)) {
      OpSlot& s = st.slot(i);
      if (s.socket != INVALID_SOCKET) ::closesocket(s.socket);
      s = OpSlot{};
    }
    state.discard(i);  // a connect's socket closes with its record
  });
  st.heap.clear();
}

}  // namespace evq::detail
