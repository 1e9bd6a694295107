#include "sys/uring/uring_selector.hpp"

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <utility>
#include <vector>

#include "core/syscall.hpp"
#include "sys/selector.hpp"

namespace evq::detail {

static_assert(Selector<UringSelector>);

// The kernel's poll mask (mangle_poll: POLL* values) is copied into Event.
static_assert(std::uint32_t{POLLIN} == Event::readable_flag &&
              std::uint32_t{POLLPRI} == Event::priority_flag &&
              std::uint32_t{POLLOUT} == Event::writable_flag &&
              std::uint32_t{POLLERR} == Event::error_flag &&
              std::uint32_t{POLLHUP} == Event::hangup_flag &&
              std::uint32_t{POLLRDHUP} == Event::read_hangup_flag);

namespace {

constexpr std::uint32_t kEventBits = POLLIN | POLLPRI | POLLOUT | POLLERR | POLLHUP | POLLRDHUP;
// Cancels carry this: no descriptor has that number, so their CQEs are dropped.
constexpr std::uint64_t kIgnored = ~std::uint64_t{0};
// A multishot poll posts one CQE per wake-up, so many registrations can fill
// the CQ between two polls. When it is full the kernel keeps CQEs on its
// overflow list (IORING_FEAT_NODROP) and ends every multishot poll that
// fires until that list is flushed back. The backend re-arms those polls,
// and re-arming reports what is ready now (always writable, for a socket).
// Re-arming during the overflow fed it: measured, 18,000 edge registrations
// under TSan on a loaded machine went round that loop, one writable event
// each per lap, and data events came too slowly. So arms wait until the
// overflow is flushed, and at most kArmBudget go per submission.
constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 4096;  // 64 KiB per Poll
constexpr std::size_t kArmBudget = kCqEntries / 2;
constexpr unsigned kNeededFeatures = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_CQE_SKIP;

std::uint64_t user_data(int fd, std::uint32_t seq) noexcept {
  return (std::uint64_t{seq} << 32) | static_cast<std::uint32_t>(fd);
}

unsigned to_poll(Interest interest) noexcept {
  // POLLRDHUP always: a half-close reads as read-closed, as on epoll. (The
  // kernel adds it anyway: IO_POLL_UNMASK.)
  unsigned ev = POLLRDHUP;
  if (interest.is_readable()) ev |= POLLIN;
  if (interest.is_writable()) ev |= POLLOUT;
  if (interest.is_priority()) ev |= POLLPRI;
  return ev;
}

int setup(io_uring& ring) noexcept {
  io_uring_params p{};
  // SUBMIT_ALL: a POLL_ADD that fails (a descriptor closed without remove())
  // must not leave the SQEs behind it unsubmitted.
  // COOP_TASKRUN (5.19): a poll's wake-up runs task work on the poller, and by
  // default an IPI interrupts the poller for it while it handles events.
  // Without the IPI the work waits for the poller's next system call (its
  // reads and writes, or the wait). Measured, echo server with 100
  // connections, 64 B messages, interleaved rounds: about 11,000 round
  // trips/s without, 17,000 with, 17,000 for the epoll backend. Safe because
  // the poller submits every poll (see the header).
  p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP |
            IORING_SETUP_COOP_TASKRUN;
  p.cq_entries = kCqEntries;
  const int r = io_uring_queue_init_params(kSqEntries, &ring, &p);
  if (r < 0) return r;
  if ((p.features & kNeededFeatures) != kNeededFeatures) {
    io_uring_queue_exit(&ring);
    return -EOPNOTSUPP;
  }
  return 0;
}

// What says "io_uring is not for this process" rather than "try again".
bool unavailable(int err) noexcept {
  return err == ENOSYS || err == EPERM || err == EINVAL || err == EOPNOTSUPP;
}

std::error_code poke(int eventfd) noexcept {
  const std::uint64_t one = 1;
  // EAGAIN: the counter is full, so a wake-up is pending anyway. The counter
  // is never drained: a multishot poll reports each write's wake-up.
  if (::write(eventfd, &one, sizeof one) < 0 && errno != EAGAIN) return errno_code();
  return {};
}

}  // namespace

struct UringSelector::State {
  // One per descriptor: the core registers a descriptor at most once.
  struct Entry {
    std::uint64_t data = 0;  // the core's user data (registration.hpp)
    std::uint32_t seq = 0;   // the kernel's user data carries it: see the header
    unsigned mask = 0;
    Trigger trigger = Trigger::level;
    bool active = false;  // registered
    bool armed = false;   // a poll with the current seq is in the SQ or the kernel
    bool queued = false;  // in to_arm
    bool waker = false;   // a user waker's eventfd, closed by remove_waker
    std::size_t out_index = 0;  // where reap() put its event in batch `batch`
    std::uint64_t batch = 0;
  };

  io_uring ring{};
  int wakefd = -1;
  std::mutex mu;                       // everything below, and the SQ
  std::vector<Entry> entries;          // by descriptor
  std::vector<int> to_arm;             // descriptors the poller arms in its next enter
  std::vector<std::uint64_t> to_cancel;
  bool in_wait = false;  // the poller owns the SQ until it is back from io_uring_enter
  bool kicked = false;   // and has been poked since
  std::uint64_t batch = 0;  // reap() calls so far: poller only

  State() noexcept { ring.ring_fd = -1; }
  ~State() {
    if (ring.ring_fd >= 0) io_uring_queue_exit(&ring);  // cancels every poll
    for (std::size_t fd = 0; fd < entries.size(); ++fd)
      if (entries[fd].active && entries[fd].waker) ::close(static_cast<int>(fd));
    if (wakefd >= 0) ::close(wakefd);
  }

  void arm_later(Entry& e, int fd) {
    if (!e.queued) to_arm.push_back(fd), e.queued = true;
  }

  // Ends the registration's current poll; the next one gets a new seq.
  void retire(Entry& e, int fd) {
    if (e.armed) to_cancel.push_back(user_data(fd, e.seq));
    e.armed = false;
    ++e.seq;
  }

  void configure(int fd, std::uint64_t data, unsigned mask, Trigger trigger, bool waker) {
    const auto i = static_cast<std::size_t>(fd);
    if (i >= entries.size()) entries.resize(std::max(i + 1, entries.size() * 2));
    Entry& e = entries[i];
    retire(e, fd);
    e.data = data, e.mask = mask, e.trigger = trigger, e.waker = waker, e.active = true;
    arm_later(e, fd);
    if (in_wait && !kicked) kicked = !poke(wakefd);
  }

  void unregister(int fd) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries.size()) return;
    Entry& e = entries[static_cast<std::size_t>(fd)];
    retire(e, fd);
    e.active = false;
    if (in_wait) {
      if (!kicked) kicked = !poke(wakefd);
    } else if (!to_cancel.empty()) {
      (void)submit(fill_sq(/*arms=*/false));
    }
  }

  // After dropped CQEs (below) nobody knows which polls ended: start them all
  // again. Spurious events follow, lost ones do not.
  void rearm_all() {
    for (std::size_t fd = 0; fd < entries.size(); ++fd) {
      if (!entries[fd].active) continue;
      retire(entries[fd], static_cast<int>(fd));
      arm_later(entries[fd], static_cast<int>(fd));
    }
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (!s) {  // full: send what is there (we own the SQ here), then retry
      (void)submit(flush());
      s = io_uring_get_sqe(&ring);
    }
    return s;
  }

  // Publishes the SQEs prepared so far; returns how many the kernel has not
  // consumed yet. liburing's own flush is internal, and its submit functions
  // would hold the SQ (our mutex) across the wait.
  unsigned flush() {
    io_uring_sq& sq = ring.sq;
    sq.sqe_head = sq.sqe_tail;
    __atomic_store_n(sq.ktail, sq.sqe_tail, __ATOMIC_RELEASE);
    return sq.sqe_tail - __atomic_load_n(sq.khead, __ATOMIC_ACQUIRE);
  }

  // Turns the queues into SQEs: cancels first, then (poller only) the arms.
  // What finds no room (the kernel not consuming) stays queued.
  unsigned fill_sq(bool arms) {
    std::size_t i = 0;
    for (io_uring_sqe* s; i < to_cancel.size() && (s = sqe()); ++i) {
      io_uring_prep_cancel64(s, to_cancel[i], 0);
      io_uring_sqe_set_data64(s, kIgnored);
      io_uring_sqe_set_flags(s, IOSQE_CQE_SKIP_SUCCESS);  // ENOENT (already over) still posts
    }
    to_cancel.erase(to_cancel.begin(), to_cancel.begin() + static_cast<std::ptrdiff_t>(i));
    const bool overflow = __atomic_load_n(ring.sq.kflags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW;
    if (arms && to_cancel.empty() && !overflow) {
      i = 0;
      const std::size_t budget = std::min(to_arm.size(), kArmBudget);
      for (; i < budget; ++i) {
        const int fd = to_arm[i];
        Entry& e = entries[static_cast<std::size_t>(fd)];
        if (!e.active || e.armed) {
          e.queued = false;
          continue;
        }
        io_uring_sqe* s = sqe();
        if (!s) break;
        if (e.trigger == Trigger::edge)
          io_uring_prep_poll_multishot(s, fd, e.mask);
        else
          io_uring_prep_poll_add(s, fd, e.mask);
        io_uring_sqe_set_data64(s, user_data(fd, e.seq));
        e.queued = false;
        e.armed = true;
      }
      to_arm.erase(to_arm.begin(), to_arm.begin() + static_cast<std::ptrdiff_t>(i));
    }
    return flush();
  }

  int submit(unsigned to_submit) {
    return to_submit ? io_uring_enter2(ring.ring_fd, to_submit, 0, 0, nullptr, _NSIG / 8) : 0;
  }

  // Submits and, unless timeout is 0, waits for one CQE. Returns -errno.
  int enter(unsigned to_submit, TimeoutNs timeout) {
    const unsigned wait = timeout == 0 ? 0 : 1;
    if (timeout <= 0)
      return io_uring_enter2(ring.ring_fd, to_submit, wait, IORING_ENTER_GETEVENTS, nullptr, _NSIG / 8);
    // EXT_ARG (5.11): a relative timeout in nanoseconds on the wait itself,
    // no timeout SQE. An hrtimer: it does not fire early.
    __kernel_timespec ts{};
    ts.tv_sec = timeout / 1'000'000'000;
    ts.tv_nsec = timeout % 1'000'000'000;
    io_uring_getevents_arg arg{};
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = reinterpret_cast<std::uintptr_t>(&ts);
    return io_uring_enter2(ring.ring_fd, to_submit, wait, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                           reinterpret_cast<sigset_t*>(&arg), sizeof arg);
  }

  // Poller only. Turns CQEs into events; stops before the one that would not
  // fit, leaving it in the CQ for the next call. Reads up to the tail seen on
  // entry, as epoll_wait returns a snapshot: a waker woken again while this
  // runs is reported by the next call, not twice by this one. A multishot
  // poll posts a CQE per wake-up, so one registration may have several here:
  // they become one event, as with epoll.
  std::size_t reap(Event* out, std::size_t capacity, const RegistrationTable& table) {
    ++batch;
    io_uring_cq& cq = ring.cq;
    const unsigned tail = io_uring_smp_load_acquire(cq.ktail);
    unsigned head = *cq.khead;
    std::size_t m = 0;
    for (; head != tail && m < capacity; ++head) {
      const io_uring_cqe* cqe = &cq.cqes[head & cq.ring_mask];
      const auto fd = static_cast<std::uint32_t>(cqe->user_data);
      if (fd >= entries.size()) continue;  // a cancel that found nothing
      Entry& e = entries[fd];
      if (!e.active || e.seq != static_cast<std::uint32_t>(cqe->user_data >> 32)) continue;
      const int res = cqe->res;
      if (!(cqe->flags & IORING_CQE_F_MORE)) {  // this poll is over
        e.armed = false;
        if (res == -ECANCELED) {  // not by us (see the header): arm again
          arm_later(e, static_cast<int>(fd));
          continue;
        }
        if (res >= 0 && e.trigger != Trigger::oneshot) arm_later(e, static_cast<int>(fd));
      }
      if (static_cast<int>(fd) == wakefd) continue;  // the internal wake-up
      Registration* reg = table.resolve(e.data);
      if (!reg) [[unlikely]]
        continue;  // removed; the core calls remove() next
      if (e.waker) reg->waker_pending.store(false, std::memory_order_release);
      // A failed arm (EBADF: closed without remove()) is reported once.
      const std::uint32_t flags =
          res >= 0 ? static_cast<std::uint32_t>(res) & kEventBits : Event::error_flag | Event::hangup_flag;
      const Token token{reg->token.load(std::memory_order_relaxed)};
      if (e.batch == batch) {
        out[e.out_index] = Event(token, out[e.out_index].flags() | flags);
        continue;
      }
      e.batch = batch;
      e.out_index = m;
      out[m++] = Event(token, flags);
    }
    io_uring_smp_store_release(cq.khead, head);
    return m;
  }
};

bool UringSelector::supported() noexcept {
  // io_uring_setup costs a few syscalls and mappings: ask the kernel once.
  // Only definite answers are kept; EMFILE and the like say nothing.
  static std::atomic<int> known{0};  // 1 yes, 2 no
  if (const int k = known.load(std::memory_order_relaxed)) return k == 1;
  io_uring ring{};
  const int r = setup(ring);
  if (r == 0) io_uring_queue_exit(&ring);
  if (r == 0 || unavailable(-r)) known.store(r == 0 ? 1 : 2, std::memory_order_relaxed);
  return !unavailable(-r);
}

Result<UringSelector> UringSelector::open() {
  auto s = std::make_unique<State>();
  if (const int r = setup(s->ring)) {
    s->ring.ring_fd = -1;  // liburing may have left a closed one there
    if (unavailable(-r)) return errc::backend_unavailable;
    return errno_code(-r);
  }
  s->wakefd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wakefd < 0) return errno_code();
  s->configure(s->wakefd, internal_user_data, POLLIN, Trigger::edge, false);
  return UringSelector(std::move(s));
}

UringSelector::UringSelector(std::unique_ptr<State> state) noexcept : s_(std::move(state)) {}
UringSelector::UringSelector(UringSelector&& other) noexcept = default;
UringSelector::~UringSelector() = default;

std::error_code UringSelector::add(int fd, std::uint64_t data, Interest interest, Trigger trigger) {
  // The poll is submitted later, by the poller: check now what epoll_ctl
  // would have refused at once. A file with no wait queue (regular file,
  // directory, block device) is always ready, and a multishot poll on it
  // ends at once (measured: a regular file gave one CQE without
  // IORING_CQE_F_MORE), so edge would turn into level: EPERM, as epoll says.
  struct stat st;
  if (::fstat(fd, &st) < 0) return errno_code();
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode)) return errno_code(EPERM);
  std::lock_guard lock(s_->mu);
  s_->configure(fd, data, to_poll(interest), trigger, false);
  return {};
}

std::error_code UringSelector::modify(int fd, std::uint64_t data, Interest interest,
                                      Trigger trigger) {
  // Cancel and arm anew, as EPOLL_CTL_MOD re-arms and reports what is ready
  // now. (IORING_OP_POLL_REMOVE's update fails once a single-shot poll fired.)
  std::lock_guard lock(s_->mu);
  s_->configure(fd, data, to_poll(interest), trigger, false);
  return {};
}

std::error_code UringSelector::remove(int fd, std::uint64_t) {
  std::lock_guard lock(s_->mu);
  s_->unregister(fd);
  return {};
}

std::error_code UringSelector::select(Event* out, std::size_t capacity,
                                      const RegistrationTable& table, TimeoutNs timeout,
                                      std::size_t& n) {
  State& s = *s_;
  std::unique_lock lock(s.mu);
  n = s.reap(out, capacity, table);  // left over from the last call
  if (n) return {};
  const unsigned to_submit = s.fill_sq(/*arms=*/true);
  // What is still queued must not wait for an event that may never come.
  const TimeoutNs wait = s.to_arm.empty() && s.to_cancel.empty() ? timeout : 0;
  s.in_wait = true;
  lock.unlock();
  // Not io_uring_submit_and_wait_timeout: it retries when the kernel takes
  // fewer SQEs than asked, and with no timeout that loop never sleeps.
  const int r = s.enter(to_submit, wait);
  lock.lock();
  s.in_wait = false;
  s.kicked = false;
  n = s.reap(out, capacity, table);
  // EBADR: the kernel dropped CQEs (no memory for its overflow list), maybe
  // the last one of a multishot poll.
  if (r == -EBADR) s.rearm_all();
  // Submitted SQEs hide the wait's result (r > 0; the kernel reports EBADR
  // at the next call without SQEs); with no event the core goes round anyway.
  // ETIME: the timeout expired. EBUSY/EAGAIN: the CQ overflowed, just drained.
  if (n || r >= 0 || r == -ETIME || r == -EBUSY || r == -EAGAIN || r == -EBADR) return {};
  return errno_code(-r);  // EINTR: the core retries with the remaining time
}

std::error_code UringSelector::wake() { return poke(s_->wakefd); }

Result<int> UringSelector::add_waker(std::uint64_t data) {
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return errno_code();
  std::lock_guard lock(s_->mu);
  s_->configure(fd, data, POLLIN, Trigger::edge, true);
  return fd;
}

std::error_code UringSelector::notify_waker(int fd) { return poke(fd); }

void UringSelector::remove_waker(int fd, std::uint64_t) {
  {
    std::lock_guard lock(s_->mu);
    s_->unregister(fd);
  }
  ::close(fd);  // the poll holds its own reference until the cancel
}

}  // namespace evq::detail
