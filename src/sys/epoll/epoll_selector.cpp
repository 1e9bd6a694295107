#include "sys/epoll/epoll_selector.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <utility>

#include "core/syscall.hpp"
#include "sys/selector.hpp"

namespace evq::detail {

static_assert(Selector<EpollSelector>);

// The kernel's mask is copied into Event unchanged (event.hpp).
static_assert(std::uint32_t{EPOLLIN} == Event::readable_flag &&
              std::uint32_t{EPOLLPRI} == Event::priority_flag &&
              std::uint32_t{EPOLLOUT} == Event::writable_flag &&
              std::uint32_t{EPOLLERR} == Event::error_flag &&
              std::uint32_t{EPOLLHUP} == Event::hangup_flag &&
              std::uint32_t{EPOLLRDHUP} == Event::read_hangup_flag);

namespace {

std::uint32_t to_epoll(Interest interest, Trigger trigger) noexcept {
  // EPOLLRDHUP always: a half-close is reported as read-closed, as on kqueue.
  std::uint32_t ev = EPOLLRDHUP;
  if (interest.is_readable()) ev |= EPOLLIN;
  if (interest.is_writable()) ev |= EPOLLOUT;
  if (interest.is_priority()) ev |= EPOLLPRI;
  if (trigger == Trigger::edge) ev |= EPOLLET;
  if (trigger == Trigger::oneshot) ev |= EPOLLONESHOT;
  return ev;
}

std::error_code ctl(int epfd, int op, int fd, std::uint32_t events, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  return check(::epoll_ctl(epfd, op, fd, &ev));
}

}  // namespace

Result<EpollSelector> EpollSelector::open() {
  const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return errno_code();
  const int wakefd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakefd < 0) {
    const auto ec = errno_code();
    ::close(epfd);
    return ec;
  }
  // Edge-triggered: every write re-queues the eventfd, so it never needs
  // draining (the counter would take 2^64 wake-ups to saturate).
  if (auto ec = ctl(epfd, EPOLL_CTL_ADD, wakefd, EPOLLIN | EPOLLET, internal_user_data)) {
    ::close(wakefd);
    ::close(epfd);
    return ec;
  }
  return EpollSelector(epfd, wakefd);
}

EpollSelector::EpollSelector(EpollSelector&& other) noexcept
    : epfd_(std::exchange(other.epfd_, -1)),
      wakefd_(std::exchange(other.wakefd_, -1)),
      have_pwait2_(other.have_pwait2_),
      kernel_events_(std::move(other.kernel_events_)),
      kernel_capacity_(std::exchange(other.kernel_capacity_, 0)) {}

EpollSelector::~EpollSelector() {
  if (wakefd_ >= 0) ::close(wakefd_);
  if (epfd_ >= 0) ::close(epfd_);
}

std::error_code EpollSelector::add(int fd, std::uint64_t data, Interest interest, Trigger trigger) {
  return ctl(epfd_, EPOLL_CTL_ADD, fd, to_epoll(interest, trigger), data);
}

std::error_code EpollSelector::modify(int fd, std::uint64_t data, Interest interest,
                                      Trigger trigger) {
  return ctl(epfd_, EPOLL_CTL_MOD, fd, to_epoll(interest, trigger), data);
}

std::error_code EpollSelector::remove(int fd, std::uint64_t) {
  // Since Linux 2.6.9 the event argument of EPOLL_CTL_DEL may be null.
  return check(::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr));
}

int EpollSelector::wait(int capacity, TimeoutNs timeout) {
  if (have_pwait2_) {
    // epoll_pwait2 (Linux 5.11) takes nanoseconds: no rounding at all.
    timespec ts{};
    const timespec* tsp = nullptr;
    if (timeout >= 0) {
      ts.tv_sec = static_cast<time_t>(timeout / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(timeout % 1'000'000'000);
      tsp = &ts;
    }
    const int r = ::epoll_pwait2(epfd_, kernel_events_.get(), capacity, tsp, nullptr);
    if (r >= 0 || errno != ENOSYS) return r;
    have_pwait2_ = false;  // older kernel (or a seccomp filter): milliseconds from now on
  }
  int ms = -1;
  if (timeout >= 0) {
    // Round up: a 0.3 ms timeout must not become 0 and return at once.
    const TimeoutNs up = (timeout + 999'999) / 1'000'000;
    ms = up > INT_MAX ? INT_MAX : static_cast<int>(up);
  }
  return ::epoll_wait(epfd_, kernel_events_.get(), capacity, ms);
}

std::error_code EpollSelector::select(Event* out, std::size_t capacity,
                                      const RegistrationTable& /*table: see resolve_user_data*/,
                                      TimeoutNs timeout,
                                      std::size_t& n) {
  if (capacity > kernel_capacity_) {
    kernel_events_ = std::make_unique<epoll_event[]>(capacity);
    kernel_capacity_ = capacity;
  }
  const int cap = capacity > INT_MAX ? INT_MAX : static_cast<int>(capacity);
  const int r = wait(cap, timeout);
  if (r < 0) {
    n = 0;
    return errno_code();
  }
  // The hot loop: per event one table load, one generation compare, one
  // 16-byte store. Checked with callgrind (bench/README.md).
  Event* o = out;
  const epoll_event* ke = kernel_events_.get();
  for (const epoll_event* end = ke + r; ke != end; ++ke) {
    const std::uint64_t data = ke->data.u64;
    Registration& reg = registration_of(data);
    if (!is_current(reg, data)) [[unlikely]]
      continue;  // removed since the kernel queued it, or the internal wake-up
    if (data & kWakerBit) [[unlikely]]
      reg.waker_pending.store(false, std::memory_order_release);
    *o++ = Event(Token{reg.token.load(std::memory_order_relaxed)}, ke->events);
  }
  const std::size_t m = static_cast<std::size_t>(o - out);
  n = m;
  return {};
}

std::error_code EpollSelector::wake() {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is full: a wake-up is pending anyway.
  if (::write(wakefd_, &one, sizeof one) < 0 && errno != EAGAIN) return errno_code();
  return {};
}

Result<int> EpollSelector::add_waker(std::uint64_t data) {
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return errno_code();
  if (auto ec = ctl(epfd_, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET, data)) {
    ::close(fd);
    return ec;
  }
  return fd;
}

std::error_code EpollSelector::notify_waker(int fd) {
  const std::uint64_t one = 1;
  if (::write(fd, &one, sizeof one) < 0 && errno != EAGAIN) return errno_code();
  return {};
}

void EpollSelector::remove_waker(int fd, std::uint64_t) {
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
}

}  // namespace evq::detail
