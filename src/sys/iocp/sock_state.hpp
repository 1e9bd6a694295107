// The state of one registered socket and the state machine that keeps one
// AFD poll (afd.hpp) in flight for it while it is armed.
//
//   idle ──submit──▶ pending ──completion──▶ idle (report, re-queue)
//                       │
//                       └─cancel─▶ cancelled ──completion──▶ idle (re-queue)
//
// A poll covers the events `armed` held when it was issued. When the wanted
// set grows past that, the poll is cancelled and a new one issued once the
// cancellation completes. While a poll is in flight the kernel still writes
// into this object, so removing the socket only marks it (delete_pending) and
// the completion frees it.
//
// Triggers (AFD polls are oneshot by nature, so all three are built here):
//  - level: every completion re-queues the socket, and the next poll finds
//    the socket still ready at once;
//  - oneshot: the first reported event clears `armed` until modify();
//  - edge: a reported direction leaves `armed` until evq's own socket sees
//    would-block in it (rearm), the way mio emulates edge on Windows. A raw
//    SourceSocket has no such hook, so the core refuses edge for it.
//
// Not thread-safe: every function runs under the selector's mutex.
#pragma once

#include <cstdint>
#include <system_error>

#include "evq/event.hpp"
#include "sys/iocp/afd.hpp"
#include "sys/iocp/poll_group.hpp"
#include "sys/iocp/win32.hpp"

namespace evq::detail {

enum class PollStatus : std::uint8_t { idle, pending, cancelled };

struct SockState {
  // First member: the completion packet's lpOverlapped is its address, and
  // from_overlapped() turns it back into the SockState.
  IO_STATUS_BLOCK iosb{};
  afd::PollInfo poll_info{};
  PollGroups::Group* group = nullptr;
  SOCKET base = INVALID_SOCKET;  // what AFD polls (SIO_BASE_HANDLE)
  std::uint64_t data = 0;        // the registration's user data
  ULONG wanted = 0;              // AFD events of the registered interest
  ULONG armed = 0;               // the part of `wanted` polled for now
  ULONG pending = 0;             // what the poll in flight asks for; 0 when none
  Trigger trigger = Trigger::edge;
  PollStatus status = PollStatus::idle;
  bool delete_pending = false;   // removed; freed when its poll completes
  bool closed = false;           // its socket was closed while registered
  // Links of the selector's queue of sockets whose poll needs (re)issuing.
  bool queued = false;
  SockState* prev = nullptr;
  SockState* next = nullptr;

  static SockState* from_overlapped(OVERLAPPED* o) noexcept {
    return reinterpret_cast<SockState*>(o);
  }
};

// What a completion means for the selector.
struct Completion {
  std::uint32_t flags = 0;  // Event flags to report; 0 = nothing
  bool requeue = false;     // issue a new poll (sock_update) before waiting again
  bool free = false;        // delete_pending and done: free it now
};

// A new interest and trigger (add, modify): arms everything wanted, as
// epoll's EPOLL_CTL_MOD re-arms a oneshot or edge registration.
void sock_set(SockState& s, std::uint64_t data, Interest interest, Trigger trigger) noexcept;

// Edge emulation: evq's socket saw would-block in `direction`. True when
// that armed something again (the socket then needs sock_update).
bool sock_rearm(SockState& s, Interest direction) noexcept;

// Brings the poll in flight in line with `armed`. May post a synthetic
// completion on `port` (a poll the driver refused); fails only when even that
// is impossible.
std::error_code sock_update(SockState& s, HANDLE port) noexcept;

// A completion packet for this socket was dequeued.
Completion sock_complete(SockState& s) noexcept;

// Starts removing: cancels a poll in flight. True when no poll is in flight
// and the caller may free it now; otherwise its completion frees it.
bool sock_delete(SockState& s) noexcept;

}  // namespace evq::detail
