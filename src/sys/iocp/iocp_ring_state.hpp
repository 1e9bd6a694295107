// src/sys/iocp/iocp_ring_state.hpp: the IOCP completion engine's state,
// shared by iocp_ring.cpp (the port, packets, cancel, timeouts, shutdown) and
// iocp_ring_ops.cpp (starting each kind of operation). Internal to those two.
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "sys/iocp/iocp_ring.hpp"
#include "sys/iocp/win32.hpp"
#include "sys/iocp/windows_error.hpp"
#include "sys/iocp/winsock.hpp"

namespace evq::detail::iocp_ring {

// Completion keys. Sockets are associated with kIoKey, and the packets the
// engine posts for an operation (a withdrawn timeout) use it too: both carry
// the operation's OVERLAPPED. notify()'s packet carries none.
inline constexpr ULONG_PTR kIoKey = 1;
inline constexpr ULONG_PTR kWakeKey = 2;

// NTSTATUS values the OVERLAPPED's Internal field holds (ntstatus.h clashes
// with windows.h, so they are spelled out).
inline constexpr LONG kStatusCancelled = static_cast<LONG>(0xC0000120L);
inline constexpr LONG kStatusBufferOverflow = static_cast<LONG>(0x80000005L);  // a datagram truncated

// See "Decisions" in the header.
inline constexpr std::size_t kMaxWrite = std::size_t{1} << 20;

// AcceptEx wants room for each address plus 16 bytes.
inline constexpr DWORD kAcceptAddrLen = sizeof(SOCKADDR_STORAGE) + 16;

inline constexpr ULONG kBatch = 128;  // packets reaped per GetQueuedCompletionStatusEx

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

inline std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Round up: a 0.3 ms wait must not become a 0 ms poll.
inline DWORD to_milliseconds(TimeoutNs timeout) noexcept {
  if (timeout < 0) return INFINITE;
  const TimeoutNs ms = (timeout + 999'999) / 1'000'000;
  return ms >= static_cast<TimeoutNs>(INFINITE) ? INFINITE - 1 : static_cast<DWORD>(ms);
}

inline bool is_windows_error(const std::error_code& ec, int code) noexcept {
  return ec.value() == code && ec.category() == windows_category();
}

inline std::error_code canceled() noexcept { return std::make_error_code(std::errc::operation_canceled); }
}  // namespace evq::detail::iocp_ring

namespace evq::detail {

using namespace iocp_ring;  // internal header: included by the engine's two files only

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
  // The socket of operation i, ready for an overlapped call on our port; null
  // after completing the operation with the error that prevented it.
  SocketInfo* ready_socket(RingState& state, OpIndex i, SOCKET h) noexcept;

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

}  // namespace evq::detail
