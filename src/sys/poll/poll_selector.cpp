#include "sys/poll/poll_selector.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <utility>

#include "core/syscall.hpp"
#include "sys/selector.hpp"

namespace evq::detail {

static_assert(Selector<PollSelector>);

namespace {

// POLLRDHUP is a Linux extension; elsewhere a half-close shows as POLLIN with
// a read of 0, which is what the user does next anyway.
#ifdef POLLRDHUP
constexpr short kReadHangup = POLLRDHUP;
#else
constexpr short kReadHangup = 0;
#endif
constexpr short kReadSide = POLLIN | POLLPRI | kReadHangup;

short to_poll(Interest interest) noexcept {
  short ev = 0;
  if (interest.is_readable()) ev |= POLLIN | kReadHangup;
  if (interest.is_writable()) ev |= POLLOUT;
  if (interest.is_priority()) ev |= POLLPRI;
  return ev;
}

std::uint32_t to_flags(short revents) noexcept {
  std::uint32_t f = 0;
  if (revents & POLLIN) f |= Event::readable_flag;
  if (revents & POLLPRI) f |= Event::priority_flag;
  if (revents & POLLOUT) f |= Event::writable_flag;
  if (revents & POLLERR) f |= Event::error_flag;
  if (revents & POLLHUP) f |= Event::hangup_flag;
  if (revents & kReadHangup) f |= Event::read_hangup_flag;
  // The descriptor was closed while registered (remove() was skipped).
  if (revents & POLLNVAL) f |= Event::error_flag | Event::hangup_flag;
  return f;
}

// Both ends non-blocking and close-on-exec. pipe2 is not on every POSIX
// system; nothing else runs between pipe() and fcntl() in evq's own threads,
// but a fork+exec elsewhere in the process could inherit these for a moment.
std::error_code make_pipe(int& r, int& w) noexcept {
  int p[2];
  if (::pipe(p) < 0) return errno_code();
  for (int fd : p) {
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
      const auto ec = errno_code();
      ::close(p[0]);
      ::close(p[1]);
      return ec;
    }
  }
  r = p[0];
  w = p[1];
  return {};
}

void drain(int fd) noexcept {
  char buf[64];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

std::error_code poke(int fd) noexcept {
  const char one = 1;
  // EAGAIN: the pipe is full, so a wake-up is pending anyway.
  if (::write(fd, &one, 1) < 0 && errno != EAGAIN) return errno_code();
  return {};
}

}  // namespace

Result<PollSelector> PollSelector::open() {
  int r = -1, w = -1;
  if (auto ec = make_pipe(r, w)) return ec;
  return PollSelector(r, w);
}

PollSelector::PollSelector(int wake_read, int wake_write) noexcept
    : wake_read_(wake_read), wake_write_(wake_write) {}

PollSelector::PollSelector(PollSelector&& other) noexcept
    : entries_(std::move(other.entries_)),
      index_by_fd_(std::move(other.index_by_fd_)),
      fds_(std::move(other.fds_)),
      fd_data_(std::move(other.fd_data_)),
      wake_read_(std::exchange(other.wake_read_, -1)),
      wake_write_(std::exchange(other.wake_write_, -1)) {}

PollSelector::~PollSelector() {
  for (const Entry& e : entries_) {
    if (e.waker_write_fd >= 0) {
      ::close(e.fd);
      ::close(e.waker_write_fd);
    }
  }
  if (wake_read_ >= 0) ::close(wake_read_);
  if (wake_write_ >= 0) ::close(wake_write_);
}

PollSelector::Entry* PollSelector::find(int fd) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= index_by_fd_.size()) return nullptr;
  const std::int32_t i = index_by_fd_[static_cast<std::size_t>(fd)];
  return i ? &entries_[static_cast<std::size_t>(i - 1)] : nullptr;
}

void PollSelector::changed_locked() {
  dirty_ = true;
  // A poller blocked in poll(2) holds a stale copy: make it rebuild now.
  if (polling_) poke(wake_write_);
}

std::error_code PollSelector::add(int fd, std::uint64_t data, Interest interest, Trigger trigger) {
  // poll(2) would happily wait on a closed descriptor (POLLNVAL): check it
  // here so that add() fails as it does on the other backends.
  if (::fcntl(fd, F_GETFD) < 0) return errno_code();
  std::lock_guard lock(mu_);
  if (find(fd)) return errno_code(EEXIST);
  if (static_cast<std::size_t>(fd) >= index_by_fd_.size())
    index_by_fd_.resize(static_cast<std::size_t>(fd) + 1, 0);
  const short ev = to_poll(interest);
  entries_.push_back(Entry{fd, -1, ev, ev, trigger, data});
  index_by_fd_[static_cast<std::size_t>(fd)] = static_cast<std::int32_t>(entries_.size());
  changed_locked();
  return {};
}

std::error_code PollSelector::modify(int fd, std::uint64_t data, Interest interest,
                                     Trigger trigger) {
  std::lock_guard lock(mu_);
  Entry* e = find(fd);
  if (!e) return errno_code(ENOENT);
  e->wanted = e->armed = to_poll(interest);  // modify re-arms, as on epoll
  e->trigger = trigger;
  e->data = data;
  changed_locked();
  return {};
}

void PollSelector::erase_locked(int fd) {
  const std::int32_t i = index_by_fd_[static_cast<std::size_t>(fd)];
  const std::size_t pos = static_cast<std::size_t>(i - 1);
  index_by_fd_[static_cast<std::size_t>(fd)] = 0;
  if (pos + 1 != entries_.size()) {
    entries_[pos] = entries_.back();
    index_by_fd_[static_cast<std::size_t>(entries_[pos].fd)] = i;
  }
  entries_.pop_back();
  changed_locked();
}

std::error_code PollSelector::remove(int fd, std::uint64_t) {
  std::lock_guard lock(mu_);
  if (!find(fd)) return errno_code(ENOENT);
  erase_locked(fd);
  return {};
}

void PollSelector::rearm(int fd, std::uint64_t data, Interest interest) {
  std::lock_guard lock(mu_);
  Entry* e = find(fd);
  if (!e || e->data != data || e->trigger != Trigger::edge) return;
  const short want = static_cast<short>(e->armed | (to_poll(interest) & e->wanted));
  if (want == e->armed) return;  // the common case: still armed
  e->armed = want;
  changed_locked();
}

std::error_code PollSelector::select(Event* out, std::size_t capacity,
                                     const RegistrationTable& table, TimeoutNs timeout,
                                     std::size_t& n) {
  n = 0;
  {
    std::lock_guard lock(mu_);
    if (dirty_) {
      fds_.clear();
      fd_data_.clear();
      fds_.push_back(pollfd{wake_read_, POLLIN, 0});
      fd_data_.push_back(internal_user_data);
      for (const Entry& e : entries_) {
        if (!e.armed) continue;  // disarmed: not even POLLHUP may be reported
        fds_.push_back(pollfd{e.fd, e.armed, 0});
        fd_data_.push_back(e.data);
      }
      dirty_ = false;
    }
    polling_ = true;
  }
  int ms = -1;
  if (timeout >= 0) {
    // poll(2) counts milliseconds: round up so a wait is never cut short.
    const TimeoutNs up = (timeout + 999'999) / 1'000'000;
    ms = up > INT_MAX ? INT_MAX : static_cast<int>(up);
  }
  const int r = ::poll(fds_.data(), static_cast<nfds_t>(fds_.size()), ms);
  const std::error_code poll_error = r < 0 ? errno_code() : std::error_code{};

  std::lock_guard lock(mu_);
  polling_ = false;
  if (poll_error) return poll_error;
  int left = r;
  std::size_t m = 0;
  for (std::size_t i = 0; i < fds_.size() && left > 0 && m < capacity; ++i) {
    const short rev = fds_[i].revents;
    if (!rev) continue;
    --left;
    if (i == 0) {
      drain(wake_read_);
      continue;
    }
    Entry* e = find(fds_[i].fd);
    // Removed or changed since the copy was made: the copy's event is stale.
    if (!e || e->data != fd_data_[i] || !e->armed) continue;
    Registration* reg = table.resolve(e->data);
    if (!reg) continue;
    if (e->waker_write_fd >= 0) {
      drain(e->fd);
      reg->waker_pending.store(false, std::memory_order_release);
    } else if (e->trigger == Trigger::oneshot) {
      e->armed = 0;
      dirty_ = true;
    } else if (e->trigger == Trigger::edge) {
      // Disarm what was reported until the socket sees would-block there.
      short off = 0;
      if (rev & (kReadSide | POLLHUP | POLLERR | POLLNVAL)) off |= kReadSide;
      if (rev & (POLLOUT | POLLHUP | POLLERR | POLLNVAL)) off |= POLLOUT;
      e->armed = static_cast<short>(e->armed & ~off);
      dirty_ = true;
    }
    out[m++] = Event(Token{reg->token.load(std::memory_order_relaxed)}, to_flags(rev));
  }
  n = m;
  return {};
}

std::error_code PollSelector::wake() { return poke(wake_write_); }

Result<int> PollSelector::add_waker(std::uint64_t data) {
  int r = -1, w = -1;
  if (auto ec = make_pipe(r, w)) return ec;
  std::lock_guard lock(mu_);
  if (static_cast<std::size_t>(r) >= index_by_fd_.size())
    index_by_fd_.resize(static_cast<std::size_t>(r) + 1, 0);
  entries_.push_back(Entry{r, w, POLLIN, POLLIN, Trigger::level, data});
  index_by_fd_[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(entries_.size());
  changed_locked();
  return w;
}

std::error_code PollSelector::notify_waker(int fd) { return poke(fd); }

void PollSelector::remove_waker(int fd, std::uint64_t data) {
  std::lock_guard lock(mu_);
  for (const Entry& e : entries_) {
    if (e.waker_write_fd == fd && e.data == data) {
      const int r = e.fd;
      erase_locked(r);
      ::close(r);
      ::close(fd);
      return;
    }
  }
}

}  // namespace evq::detail
