// The AFD poll request: how readiness of a Winsock socket reaches a
// completion port.
//
// AFD ("ancillary function driver", afd.sys) is the kernel side of Winsock.
// Its IOCTL_AFD_POLL is what WSAPoll and select() use underneath; issued
// asynchronously on a handle associated with a completion port, it completes
// on that port once one of the requested events holds for the socket, or at
// once when one holds already. A poll reports once and is then done: readiness
// stays visible only by issuing another (this is why the selector re-arms).
//
// The interface is undocumented but stable since Windows Vista; the layout
// below is the one ReactOS's afd headers give and that wepoll, libuv
// (uv_poll) and mio have used in production for years. Wine implements it
// too (the whole test suite passes on Debian 12's Wine 8.0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <system_error>

#include "sys/iocp/win32.hpp"

namespace evq::detail::afd {

// Event bits of AFD_POLL_HANDLE_INFO::Events.
inline constexpr ULONG poll_receive = 0x0001;            // data to read
inline constexpr ULONG poll_receive_expedited = 0x0002;  // out-of-band data
inline constexpr ULONG poll_send = 0x0004;               // room to write
inline constexpr ULONG poll_disconnect = 0x0008;         // the peer sent FIN
inline constexpr ULONG poll_abort = 0x0010;              // reset, or aborted locally
inline constexpr ULONG poll_local_close = 0x0020;        // closesocket() on this socket
inline constexpr ULONG poll_accept = 0x0080;             // a connection to accept
inline constexpr ULONG poll_connect_fail = 0x0100;       // a non-blocking connect failed

// afd.sys builds its codes as (FILE_DEVICE_NETWORK << 12) | (operation << 2)
// | method, not with CTL_CODE: AFD_POLL is operation 9, METHOD_BUFFERED.
inline constexpr ULONG ioctl_poll = (0x12u << 12) | (9u << 2) | 0u;
static_assert(ioctl_poll == 0x00012024);

// NTSTATUS values the selector tests for. Spelled here rather than taken
// from ntstatus.h, which clashes with the subset winnt.h defines.
inline constexpr NTSTATUS status_success = 0;
inline constexpr NTSTATUS status_pending = 0x00000103;
inline constexpr NTSTATUS status_cancelled = static_cast<NTSTATUS>(0xC0000120);
inline constexpr NTSTATUS status_not_found = static_cast<NTSTATUS>(0xC0000225);
inline constexpr NTSTATUS status_invalid_handle = static_cast<NTSTATUS>(0xC0000008);

struct PollHandleInfo {
  HANDLE handle;  // the socket's base handle (SIO_BASE_HANDLE)
  ULONG events;   // in: wanted; out: what holds
  NTSTATUS status;
};

// One socket per request: a request over several sockets completes when any
// of them is ready, and would have to be cancelled and reissued whenever one
// socket's interest changes.
struct PollInfo {
  LARGE_INTEGER timeout;    // absolute; INT64_MAX = never
  ULONG number_of_handles;  // in: 1; out: how many entries hold events
  ULONG exclusive;          // FALSE: other polls on the socket stay
  PollHandleInfo handles[1];
};
static_assert(offsetof(PollInfo, handles) == 16, "the layout afd.sys reads");

// Opens a new helper handle on \Device\Afd and associates it with `port`.
// The handle is no socket: it only carries poll requests, for any number of
// sockets, and their completions arrive on the port with lpOverlapped set to
// the request's IO_STATUS_BLOCK.
std::error_code open_helper(HANDLE port, HANDLE& helper) noexcept;

// Issues a poll of `info` on `helper`, completing into `iosb` and onto the
// port. Returns status_pending or status_success when the request was
// queued (a completion packet follows in both cases: the helper is not set
// to skip the port on success), any other status when it was refused (then
// no completion follows).
NTSTATUS poll(HANDLE helper, PollInfo& info, IO_STATUS_BLOCK& iosb) noexcept;

// Asks for the poll that completes into `iosb` to end early: its completion
// still arrives on the port, with STATUS_CANCELLED (or with its events, if it
// completed first). Nothing to do when it has completed already.
std::error_code cancel(HANDLE helper, IO_STATUS_BLOCK& iosb) noexcept;

// The base service provider's handle of a socket: the one AFD knows. A
// layered service provider (LSP) may hand out its own SOCKET wrapping it, and
// AFD refuses those. WSAENOTSOCK for a value that is no socket.
std::error_code base_socket(SOCKET s, SOCKET& base) noexcept;

}  // namespace evq::detail::afd
