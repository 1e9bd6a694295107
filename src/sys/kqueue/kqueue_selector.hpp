// kqueue(2) on macOS and the BSDs: one EVFILT_READ and/or EVFILT_WRITE knote
// per interest, all three triggers native:
//   edge    EV_CLEAR     reported again only after new activity (kqueue(2))
//   level   no flag      reported on every kevent() while the condition holds
//   oneshot EV_DISPATCH  disabled once reported; modify() re-arms it. A
//           readable|writable registration is disarmed as a whole: when one
//           filter fires, select() disables the other (see kqueue_selector.cpp)
// Interest::priority: kqueue has no filter for out-of-band data alone, so it
// rides on EVFILT_READ and is reported as readable (is_priority() is never
// set). readable|priority is accepted; priority without readable is refused
// with std::errc::operation_not_supported, since EVFILT_READ would report
// ordinary data the caller never asked for (level: on every poll).
// Wakers are EVFILT_USER knotes; the handle of a waker is its ident, not a
// descriptor. Only <sys/event.h> and POSIX: builds unchanged on FreeBSD and
// macOS (and on Linux against the test double in tests/support/kqueue/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <vector>

#include "core/registration.hpp"
#include "evq/event.hpp"
#include "evq/result.hpp"

struct kevent;  // <sys/event.h> stays out of the core's headers

namespace evq::detail {

using TimeoutNs = std::int64_t;

class KqueueSelector {
 public:
  static constexpr bool native_edge = true;

  static Result<KqueueSelector> open();
  KqueueSelector(KqueueSelector&& other) noexcept;
  KqueueSelector& operator=(KqueueSelector&&) = delete;
  ~KqueueSelector();

  std::error_code add(int fd, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code modify(int fd, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code remove(int fd, std::uint64_t data);
  void rearm(int, std::uint64_t, Interest) {}  // edge is native: nothing to re-arm
  std::error_code select(Event* out, std::size_t capacity, const RegistrationTable& table,
                         TimeoutNs timeout, std::size_t& n);
  std::error_code wake();
  Result<int> add_waker(std::uint64_t data);
  std::error_code notify_waker(int id);
  void remove_waker(int id, std::uint64_t data);

 private:
  struct Shared;  // state shared with other threads; behind a pointer so the selector moves

  KqueueSelector(int kq, std::unique_ptr<Shared> shared) noexcept;
  std::error_code apply(int fd, std::uint64_t data, Interest interest, Trigger trigger,
                        bool delete_first);
  void disarm_siblings(std::uint64_t changes_before_wait);

  int kq_ = -1;
  std::unique_ptr<Shared> shared_;
  // The poller's own buffers (one thread polls at a time).
  std::unique_ptr<struct kevent[]> kernel_events_;
  std::size_t kernel_capacity_ = 0;
  std::vector<struct kevent> disarm_;  // oneshot events whose sibling filter to disable
};

}  // namespace evq::detail
