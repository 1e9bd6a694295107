// src/sys/iocp/iocp_ring.hpp: the native completion engine on Windows, over
// an I/O completion port of its own (ring_backend.hpp is the contract).
//
// What is native. Every socket operation is one overlapped call whose result
// the port delivers: read/write as WSARecv/WSASend (vectored: up to 64
// WSABUFs, as the net layer), recv_from/send_to as WSARecvFrom/WSASendTo,
// accept as AcceptEx, connect as ConnectEx. Cancellation is CancelIoEx on the
// operation's own OVERLAPPED: the operation then completes exactly once,
// through the port, with ERROR_OPERATION_ABORTED (reported as
// std::errc::operation_canceled) or with its real result when it finished
// first. shutdown() cancels everything and drains the port until every
// overlapped call has come back, so no kernel write lands in freed memory.
//
// What is not. Timeouts need no kernel timer: deadlines sit in an indexed
// binary heap (position in OpRecord::engine_word, no allocation per
// operation) and bound GetQueuedCompletionStatusEx's wait, rounded up to
// whole milliseconds. recv into a BufferPool has no kernel counterpart: a
// zero-byte WSARecv learns readiness without holding a buffer, then a pool
// buffer is taken for one non-blocking recv; would-block gives it back and
// posts the zero-byte read again (the technique libuv's "zero reads" use for
// the same reason: idle connections pin no memory). Pipes and Unix streams
// are POSIX-only. notify() posts a packet with a reserved completion key.
//
// Decisions.
//  - One OVERLAPPED per operation record, in a side array indexed by the
//    record's index, grown in chunks of OpTable::chunk_size and never moved;
//    each slot also holds what must outlive the call (flags, the address
//    WSARecvFrom fills, AcceptEx's address buffer and socket). The slot
//    carries the record's index and generation; a packet whose generation no
//    longer matches its record is dropped.
//  - A socket is associated with this port (CreateIoCompletionPort) the
//    first time an operation on it starts while none of ours is in flight on
//    it: with one in flight the caller guarantees the same socket is still
//    open, so the association is known; otherwise the call is repeated and
//    ERROR_INVALID_PARAMETER means "already associated". If we associated
//    that handle value before, it is ours (a socket that evq closed and
//    whose value another Ring's port took meanwhile is not detected: keep a
//    socket on one Ring); if we never did, the operation completes with
//    ERROR_INVALID_PARAMETER (std::errc::invalid_argument): a socket belongs
//    to one completion port for its whole life (Windows has no way to
//    dissociate), so a socket used with one Ring cannot be used with another,
//    not even after the first is destroyed (FileReplaceCompletionInformation,
//    Windows 8.1+, could move it, but would also steal it from a Ring that
//    still has operations on it: not done).
//    evq's readiness Poll does not associate sockets (its AFD polls go
//    through helper handles), so the two do not collide.
//  - FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE on
//    each socket we associate, only when every installed TCP/UDP provider is
//    an IFS provider (XP1_IFS_HANDLES); a non-IFS LSP may queue a packet even
//    for a call that succeeded at once (the caveat libuv and wepoll honour).
//    With it, a call that succeeds at once completes at once; without it,
//    its packet is awaited like any other.
//  - A write transfers at most 1 MiB per operation (and completes with what
//    it sent, as the contract allows): an overlapped send locks its pages
//    for its whole duration, and many large sends in flight run into the
//    locked-pages quota (WSAENOBUFS). It also keeps the partial-write
//    behaviour of the emulation.
//  - AcceptEx's socket is created by the engine exactly as TcpListener::accept
//    makes one (non-blocking, not inheritable), then SO_UPDATE_ACCEPT_CONTEXT;
//    the peer comes from GetAcceptExSockaddrs. A connection reset while it
//    waited in the backlog is skipped, as TcpListener::accept does.
//  - ConnectEx's socket is created and bound (wildcard, port 0) by the
//    engine, owned by the record from the start (a failed or withdrawn
//    connect closes it), SO_UPDATE_CONNECT_CONTEXT on success.
//
// What Wine does (wine-8.0, Debian 8.0~repack-4; measured with a probe
// program and with tests/ring_test.cpp):
//  - Its Winsock catalogue lists only IFS providers for TCP and UDP over IPv4
//    and IPv6 (XP1_IFS_HANDLES set, chain length 1), so the skip modes are
//    used. SetFileCompletionNotificationModes(FILE_SKIP_COMPLETION_PORT_ON_
//    SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE) on a socket succeeds, and a
//    WSARecv on a socket with data returns 0 at once and queues no packet,
//    as on Windows.
//  - A second CreateIoCompletionPort on an associated socket fails with
//    ERROR_INVALID_PARAMETER, for the same port and for another one alike
//    (hence the "ours" bookkeeping above).
//  - Overlapped calls on non-blocking sockets pend (WSA_IO_PENDING) rather
//    than fail with WSAEWOULDBLOCK; a zero-byte WSARecv pends until data
//    comes and then completes with 0 bytes.
//  - CancelIoEx on a pending socket call queues its STATUS_CANCELLED packet
//    before it returns (it came out ahead of a packet posted right after).
//  - AcceptEx, GetAcceptExSockaddrs and ConnectEx come through
//    SIO_GET_EXTENSION_FUNCTION_POINTER and behave as documented for
//    everything ring_test does (peer address, refused connect, resets).
//  - A WSARecv pending when the peer resets completes with WSAECONNRESET
//    (connection_reset), as on Windows. (The readiness emulation under Wine
//    may see end of stream there instead: the wineserver's own poll reads,
//    and so clears, the host socket's pending error; see ring_test's
//    ResetFailsTheRead and tcp_test's ResetByPeer.)
//  - Not Wine-specific but worth knowing: an operation in the kernel can
//    finish between the last wait() and ~Ring (a read takes data that
//    arrived); its completion is then discarded like any undelivered one.
//
// No Windows header here: ring_core.hpp includes this file.
#pragma once

#include <memory>
#include <optional>
#include <system_error>

#include "core/ring_backend.hpp"
#include "evq/poll.hpp"

namespace evq::detail {

class IocpRing {
 public:
  static constexpr bool native = true;

  // errc::backend_unavailable unless `backend` is nullopt or Backend::iocp,
  // or when Winsock lacks AcceptEx/ConnectEx (the core then falls back).
  static Result<IocpRing> open(std::optional<Backend> backend, const RingOptions& options);

  IocpRing(IocpRing&& other) noexcept;
  IocpRing& operator=(IocpRing&&) = delete;
  // Closes the port; shutdown() has already drained it.
  ~IocpRing();

  Backend backend() const noexcept { return Backend::iocp; }
  std::error_code run(RingState& state, TimeoutNs timeout);
  std::error_code notify() noexcept;
  void shutdown(RingState& state) noexcept;
  void forget_pool(PoolState&) noexcept {}  // pools are plain memory: nothing registered

 private:
  struct State;  // iocp_ring.cpp: the port, the OVERLAPPED slots, the timer heap
  explicit IocpRing(std::unique_ptr<State> state) noexcept;
  std::unique_ptr<State> s_;
};

static_assert(RingEngine<IocpRing>);

}  // namespace evq::detail
