#include "sys/iocp/sock_state.hpp"

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "sys/iocp/windows_error.hpp"

namespace evq::detail {

static_assert(std::is_standard_layout_v<SockState> && offsetof(SockState, iosb) == 0,
              "from_overlapped needs the status block at the start of SockState");

namespace {

constexpr ULONG read_side = afd::poll_receive | afd::poll_accept | afd::poll_disconnect |
                            afd::poll_receive_expedited;
constexpr ULONG write_side = afd::poll_send;
// Asked with every poll, whatever the interest: epoll reports errors and
// hang-ups unasked, and a socket closed under its registration must end the
// poll (LOCAL_CLOSE) rather than leave it hanging until the selector closes.
constexpr ULONG always = afd::poll_abort | afd::poll_connect_fail | afd::poll_local_close;

ULONG to_afd(Interest interest) noexcept {
  ULONG e = 0;
  // Readable covers a connection to accept and the peer's FIN (read returns
  // 0), as EPOLLIN does.
  if (interest.is_readable()) e |= afd::poll_receive | afd::poll_accept | afd::poll_disconnect;
  if (interest.is_writable()) e |= afd::poll_send;
  if (interest.is_priority()) e |= afd::poll_receive_expedited;
  return e;
}

// AFD's events in evq's flags, the way Linux reports the same situations.
std::uint32_t to_flags(ULONG afd_events) noexcept {
  std::uint32_t f = 0;
  if (afd_events & (afd::poll_receive | afd::poll_accept)) f |= Event::readable_flag;
  if (afd_events & afd::poll_receive_expedited) f |= Event::priority_flag;
  if (afd_events & afd::poll_send) f |= Event::writable_flag;
  if (afd_events & afd::poll_disconnect) f |= Event::readable_flag | Event::read_hangup_flag;
  // A reset: Linux's tcp_poll then reports EPOLLIN|EPOLLOUT|EPOLLERR|EPOLLHUP.
  if (afd_events & afd::poll_abort)
    f |= Event::readable_flag | Event::writable_flag | Event::error_flag | Event::hangup_flag;
  // A refused or timed-out connect: Linux reports the same set (socket in
  // TCP_CLOSE with sk_err set); SO_ERROR then says why.
  if (afd_events & afd::poll_connect_fail)
    f |= Event::readable_flag | Event::writable_flag | Event::error_flag | Event::hangup_flag;
  return f;
}

// The flags a registration armed for `armed` may report: the directions it
// asks for, plus error and hang-up, which epoll reports unasked.
std::uint32_t allowed_flags(ULONG armed) noexcept {
  std::uint32_t f = Event::error_flag | Event::hangup_flag;
  if (armed & (afd::poll_receive | afd::poll_accept | afd::poll_disconnect))
    f |= Event::readable_flag | Event::read_hangup_flag;
  if (armed & afd::poll_receive_expedited) f |= Event::priority_flag;
  if (armed & afd::poll_send) f |= Event::writable_flag | Event::write_hangup_flag;
  return f;
}

}  // namespace

void sock_set(SockState& s, std::uint64_t data, Interest interest, Trigger trigger) noexcept {
  s.data = data;
  s.wanted = to_afd(interest);
  s.armed = s.wanted;
  s.trigger = trigger;
}

bool sock_rearm(SockState& s, Interest direction) noexcept {
  // Only edge disarms a direction that would-block re-arms. A oneshot that
  // fired waits for modify(), whatever the socket sees; level never disarms.
  if (s.trigger != Trigger::edge || s.delete_pending || s.closed) return false;
  ULONG side = 0;
  if (direction.is_readable() || direction.is_priority()) side |= read_side;
  if (direction.is_writable()) side |= write_side;
  const ULONG armed = s.armed | (side & s.wanted);
  // The common case on a busy socket: the direction is armed already (no
  // event came since the last would-block), so no new poll is needed.
  if (armed == s.armed) return false;
  s.armed = armed;
  return true;
}

std::error_code sock_update(SockState& s, HANDLE port) noexcept {
  if (s.closed) {
    // The socket was closed under its registration: polling it again would
    // only fail. It waits for remove().
    return {};
  }
  if (s.status == PollStatus::pending && (s.armed & ~s.pending) == 0) {
    // The poll in flight covers everything armed. It may complete with an
    // event no longer wanted; sock_complete filters that out and the next
    // poll asks for the current set.
    return {};
  }
  if (s.status == PollStatus::pending) {
    // The poll in flight misses something armed since it was issued: cancel
    // it. Its completion (STATUS_CANCELLED) re-queues the socket, and the
    // next update issues a poll for the whole armed set.
    if (auto ec = afd::cancel(s.group->helper, s.iosb)) return ec;
    s.status = PollStatus::cancelled;
    s.pending = 0;
    return {};
  }
  if (s.status == PollStatus::cancelled) {
    // Cancelled, completion not seen yet: that completion re-queues.
    return {};
  }
  if (s.armed == 0) {
    // Idle and disarmed (a oneshot that fired, an edge registration waiting
    // for would-block): no poll, so not even an error is reported, as with
    // epoll's disarmed EPOLLONESHOT.
    return {};
  }
  // Idle and armed: issue a poll.
  s.poll_info.timeout.QuadPart = INT64_MAX;
  s.poll_info.number_of_handles = 1;
  s.poll_info.exclusive = FALSE;
  s.poll_info.handles[0].handle = reinterpret_cast<HANDLE>(s.base);
  s.poll_info.handles[0].events = s.armed | always;
  s.poll_info.handles[0].status = 0;
  const NTSTATUS status = afd::poll(s.group->helper, s.poll_info, s.iosb);
  if (status == afd::status_pending || status == afd::status_success) {
    // Queued; either way its completion comes through the port.
    s.status = PollStatus::pending;
    s.pending = s.armed;
    return {};
  }
  if (::RtlNtStatusToDosError(status) == ERROR_INVALID_HANDLE) {
    // The socket was closed without remove() (closing a descriptor removes
    // it from an epoll set silently; so here).
    s.closed = true;
    return {};
  }
  // The driver refused the poll for another reason. The user has to hear of
  // it, and the one way to reach them is an event: complete the poll by hand
  // with that status, and sock_complete reports an error.
  s.iosb.Status = status;
  if (!::PostQueuedCompletionStatus(port, 0, 0, reinterpret_cast<OVERLAPPED*>(&s.iosb)))
    return last_windows_error();
  s.status = PollStatus::pending;
  s.pending = s.armed;
  return {};
}

Completion sock_complete(SockState& s) noexcept {
  Completion c;
  s.status = PollStatus::idle;
  s.pending = 0;
  if (s.delete_pending) {
    // Removed while the poll was in flight; the kernel is done with the
    // memory now.
    c.free = true;
    return c;
  }
  const NTSTATUS status = s.iosb.Status;
  if (status == afd::status_cancelled) {
    // Cancelled by sock_update to change the mask (or, on systems that tie
    // I/O to its thread, because the thread that issued it exited): poll
    // again with what is armed now.
  } else if (!NT_SUCCESS(status)) {
    // The poll itself failed: report an error; the user's next call on the
    // socket says which.
    c.flags = Event::error_flag;
  } else if (s.poll_info.number_of_handles < 1) {
    // Completed without an event for the socket (it cannot time out: the
    // timeout is INT64_MAX). Poll again.
  } else if (s.poll_info.handles[0].events & afd::poll_local_close) {
    // The socket was closed while registered (remove() skipped). As epoll
    // forgets a closed descriptor, report nothing and never poll it again.
    s.closed = true;
    return c;
  } else {
    c.flags = to_flags(s.poll_info.handles[0].events) & allowed_flags(s.armed);
  }

  if (c.flags != 0) {
    if (s.trigger == Trigger::oneshot) {
      // One event, then nothing until modify().
      s.armed = 0;
    } else if (s.trigger == Trigger::edge) {
      // A reported direction stays quiet until its socket sees would-block.
      // An error or hang-up ends both directions: the next read or write
      // returns it instead of would-block, so neither would re-arm anyway.
      const std::uint32_t ends = Event::error_flag | Event::hangup_flag;
      if (c.flags & (Event::readable_flag | Event::priority_flag | Event::read_hangup_flag | ends))
        s.armed &= ~read_side;
      if (c.flags & (Event::writable_flag | Event::write_hangup_flag | ends)) s.armed &= ~write_side;
    }
    // Level keeps everything armed: the next poll finds the socket still
    // ready at once, so the event repeats while the condition holds.
  }
  // A poll is due again when anything is armed.
  c.requeue = s.armed != 0;
  return c;
}

bool sock_delete(SockState& s) noexcept {
  s.delete_pending = true;
  if (s.status == PollStatus::pending) {
    // Ask the poll to end now rather than at the socket's next event, which
    // may never come. A failure leaves it to complete on its own time.
    (void)afd::cancel(s.group->helper, s.iosb);
    s.status = PollStatus::cancelled;
  }
  // Free at once only when nothing is in flight.
  return s.status == PollStatus::idle;
}

}  // namespace evq::detail
