// src/sys/iocp/iocp_ring.cpp: the IOCP completion engine's port, packets,
// results, cancel, timeouts and shutdown. Starting each kind of operation is
// in iocp_ring_ops.cpp; the shared state in iocp_ring_state.hpp.
#include "net/socket_access.hpp"
#include "net/windows/sockaddr.hpp"
#include "net/windows/socket_ops.hpp"
#include "sys/iocp/iocp_ring_state.hpp"

namespace evq::detail {

namespace {

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
