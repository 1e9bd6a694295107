// Linux io_uring as a readiness backend: one IORING_OP_POLL_ADD per
// registration, events read from the completion queue. Needs Linux >= 5.19
// (multishot poll 5.13, IOSQE_CQE_SKIP_SUCCESS 5.17, IORING_SETUP_SUBMIT_ALL
// 5.18, IORING_SETUP_COOP_TASKRUN 5.19). supported() says whether
// io_uring_setup works here at all (seccomp filters,
// kernel.io_uring_disabled and older kernels make it fail).
//
// Triggers: all three native (so native_edge, and rearm() does nothing).
// Measured on Linux 6.18 with liburing 2.3; the kernel lines cited are in
// io_uring/poll.c.
// - edge: a multishot poll (IORING_POLL_ADD_MULTI). It posts a CQE at arm
//   time if the descriptor is ready, then one per wake-up of the descriptor
//   whether or not the data was read, and none while nothing new happens:
//   EPOLLET's contract. The kernel puts EPOLLET on every POLL_ADD
//   itself (io_poll_parse_events: "if (!(flags & IORING_POLL_ADD_LEVEL))
//   events |= EPOLLET"); passing it changes nothing, and IORING_POLL_ADD_LEVEL
//   from user space fails with EINVAL. A multishot poll ends when the CQ is
//   full (its last CQE lacks IORING_CQE_F_MORE): it is then re-armed, and
//   re-arming reports the current readiness again.
// - level: a single-shot poll that the poller re-arms after each report,
//   inside its next io_uring_enter. The new poll checks readiness as it arms
//   and completes at once while the descriptor stays ready, so every poll()
//   reports it, as with epoll.
// - oneshot: a single-shot poll, armed again only by modify().
//
// Threads. add/modify/remove run on any thread while the poller waits in
// io_uring_enter, and liburing's SQ and CQ are not thread-safe. So:
// - One mutex guards the SQ, the per-descriptor table and the queues below. Only
//   the poller reads the CQ.
// - Only the poller submits POLL_ADDs. When a poll wakes up, the kernel runs
//   task work on the thread that submitted it. Measured: a thread that
//   submitted a poll and then waited in epoll_wait got EINTR at the poll's
//   next wake-up. Once that thread had exited, the poll ended with
//   -ECANCELED. So other threads only queue their changes. If the poller is
//   inside its wait, one write to an internal eventfd (under its own
//   multishot poll) brings it back to submit them. Queued changes go out in
//   the same io_uring_enter that waits.
// - remove() is an IORING_OP_ASYNC_CANCEL by user data. When the poller is
//   not waiting, remove() submits it at once. A live poll holds a reference to
//   the file, so the user's close() would not close the socket otherwise.
//   Measured: the peer saw no EOF after close() until the poll was cancelled.
//   The cancelled poll completes as task work on the poller: on the poller
//   thread before remove() returns, from another thread at the poller's next
//   system call.
// - The kernel's user data is fd | seq << 32, and a table indexed by
//   descriptor (the core registers each at most once) holds the core's user
//   data, trigger and mask. The seq changes with every add/modify/remove, so a
//   CQE from a cancelled or replaced poll is dropped on sight, and
//   table.resolve() still checks the core's generation. A -ECANCELED CQE with
//   the current seq was not ours (its submitter exited): re-armed.
//
// Where this differs from epoll:
// - Priority. A poll reports the mask its wake-up carried, and sockets wake
//   with EPOLLIN|EPOLLPRI for any data, so readable|priority may report
//   priority with plain data. A poll for POLLPRI alone ignores those wake-ups
//   (io_poll_wake skips IO_ASYNC_POLL_COMMON = EPOLLONESHOT|EPOLLPRI when
//   matching) and misses TCP urgent data. Register priority with readable.
// - remove() from another thread wakes a waiting poller once (no event), and
//   the socket it then closes stays open until the poller next enters the
//   kernel (see remove() above).
// - The thread that polls runs the kernel's task work for every poll; if it
//   blocks in another system call between polls, a wake-up can end that call
//   with EINTR (measured with epoll_wait). Polling from a new thread works:
//   the polls of a thread that exits end with -ECANCELED and are re-armed.
// - Errors that epoll_ctl reports at once, other than a closed descriptor or
//   a file with no wait queue (checked in add: EBADF, EPERM), come as an
//   event with error|hangup set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>

#include "core/registration.hpp"
#include "evq/event.hpp"
#include "evq/result.hpp"

namespace evq::detail {

using TimeoutNs = std::int64_t;

class UringSelector {
 public:
  static constexpr bool native_edge = true;

  // Whether io_uring_setup works here with the features this backend needs.
  static bool supported() noexcept;
  static Result<UringSelector> open();
  UringSelector(UringSelector&& other) noexcept;
  UringSelector& operator=(UringSelector&&) = delete;
  ~UringSelector();

  std::error_code add(int fd, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code modify(int fd, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code remove(int fd, std::uint64_t data);
  void rearm(int, std::uint64_t, Interest) {}  // edge is native: nothing to re-arm
  std::error_code select(Event* out, std::size_t capacity, const RegistrationTable& table,
                         TimeoutNs timeout, std::size_t& n);
  std::error_code wake();
  Result<int> add_waker(std::uint64_t data);
  std::error_code notify_waker(int fd);
  void remove_waker(int fd, std::uint64_t data);

 private:
  struct State;  // the ring, its mutex and the per-descriptor table: stays put on moves
  explicit UringSelector(std::unique_ptr<State> state) noexcept;

  std::unique_ptr<State> s_;
};

}  // namespace evq::detail
