#include "sys/kqueue/kqueue_selector.hpp"

#include <sys/event.h>
#include <sys/types.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <mutex>
#include <type_traits>
#include <utility>

#include "core/syscall.hpp"
#include "sys/selector.hpp"

namespace evq::detail {

static_assert(Selector<KqueueSelector>);

namespace {

using Kevent = struct kevent;

// udata is void* on FreeBSD and macOS (intptr_t on NetBSD before 10). It
// carries the 64-bit user data, so the backend needs 64-bit pointers; CMake
// leaves it out of 32-bit builds, where poll(2) serves instead.
using Udata = decltype(Kevent::udata);
static_assert(sizeof(Udata) >= sizeof(std::uint64_t),
              "kqueue's udata cannot carry evq's 64-bit user data on this target");

// Templates so that the branch not taken is never instantiated.
template <class U = Udata>
U to_udata(std::uint64_t data) noexcept {
  if constexpr (std::is_pointer_v<U>)
    return reinterpret_cast<U>(static_cast<std::uintptr_t>(data));
  else
    return static_cast<U>(data);
}

template <class U = Udata>
std::uint64_t from_udata(U udata) noexcept {
  if constexpr (std::is_pointer_v<U>)
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(udata));
  else
    return static_cast<std::uint64_t>(udata);
}

// EV_SET names every field both systems have; value-initialization zeroes
// the ones only one has (ext[] on FreeBSD).
Kevent change(std::uintptr_t ident, int filter, unsigned flags, unsigned fflags,
              std::uint64_t data) noexcept {
  Kevent ev{};
  EV_SET(&ev, ident, filter, flags, fflags, 0, to_udata(data));
  return ev;
}

// EVFILT_USER idents are ours to choose: the internal wake-up is 0, wakers
// count from 1.
constexpr std::uintptr_t wake_ident = 0;

// Changes are submitted with this timeout: every change carries EV_RECEIPT
// and the event list has exactly one entry per change, so kevent() returns
// the receipts without looking at pending events (kqueue(2): "If an error
// occurs while processing an element of the changelist and there is enough
// room in the eventlist, then the event will be placed in the eventlist with
// EV_ERROR set in flags"; with EV_RECEIPT every change takes such a place).
constexpr timespec no_wait{};

// One day: the longest single wait. The core waits again from its own
// deadline when a wait ends with nothing to report, and a day converts to any
// kernel's clock units without overflow (FreeBSD treats tv_sec > INT32_MAX
// as forever; a 2^63 ns wait is ~292 years).
constexpr TimeoutNs max_wait = 86'400'000'000'000;

std::error_code not_supported() noexcept {
  return std::make_error_code(std::errc::operation_not_supported);
}

}  // namespace

// What add/modify/remove share with the poller and with waking threads.
struct KqueueSelector::Shared {
  // Orders registry changes against the poller's disarming of oneshot
  // siblings (disarm_siblings). add/modify/remove already run one at a time
  // under the core's mutex; this lock only keeps the poller out.
  std::mutex mu;
  // Bumped after each add/modify/remove reached the kernel, under mu; read
  // by the poller without the lock before it waits.
  std::atomic<std::uint64_t> changes{0};
  // By descriptor, under mu: (value of `changes` after the descriptor's last
  // change) << 1 | 1 if it is a readable|writable oneshot registration.
  std::vector<std::uint64_t> fd_state;

  // Waker user data by id, read without a lock: Waker::wake may be called from
  // a signal handler. Chunks never move or go away before the selector does.
  static constexpr unsigned waker_chunk_bits = 6;  // 64 ids per chunk
  static constexpr unsigned waker_chunk_size = 1u << waker_chunk_bits;
  static constexpr unsigned max_waker_chunks = 1024;  // 65,536 wakers per Poll
  std::atomic<std::atomic<std::uint64_t>*> waker_chunks[max_waker_chunks] = {};
  // Under the core's mutex (add_waker/remove_waker).
  std::vector<int> free_waker_ids;
  int next_waker_id = 1;

  Shared() = default;
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  ~Shared() {
    for (auto& c : waker_chunks) delete[] c.load(std::memory_order_relaxed);
  }

  std::atomic<std::uint64_t>* waker_data(int id) const noexcept {
    const auto i = static_cast<unsigned>(id);
    if (id <= 0 || (i >> waker_chunk_bits) >= max_waker_chunks) return nullptr;
    std::atomic<std::uint64_t>* chunk =
        waker_chunks[i >> waker_chunk_bits].load(std::memory_order_acquire);
    return chunk ? &chunk[i & (waker_chunk_size - 1)] : nullptr;
  }

  // Under mu, after the kernel saw the change.
  void record(int fd, bool oneshot_both) {
    const auto i = static_cast<std::size_t>(fd);
    if (i >= fd_state.size()) fd_state.resize(std::max(i + 1, fd_state.size() * 2), 0);
    const std::uint64_t seq = changes.load(std::memory_order_relaxed) + 1;
    changes.store(seq, std::memory_order_release);
    fd_state[i] = seq << 1 | (oneshot_both ? 1 : 0);
  }
};

Result<KqueueSelector> KqueueSelector::open() {
  const int kq = ::kqueue();
  if (kq < 0) return errno_code();
  // kqueue() has no close-on-exec flag on macOS (FreeBSD 14 added
  // kqueuex(KQUEUE_CLOEXEC)); a fork+exec on another thread between these two
  // calls can leak the descriptor into the child, as with any fcntl() fallback.
  if (::fcntl(kq, F_SETFD, FD_CLOEXEC) < 0) {
    const auto ec = errno_code();
    ::close(kq);
    return ec;
  }
  // The internal wake-up: an EVFILT_USER knote carrying internal_user_data,
  // which never resolves, so select() drops its events with the stale ones.
  // EV_CLEAR resets the trigger when it is retrieved.
  const Kevent wake = change(wake_ident, EVFILT_USER, EV_ADD | EV_CLEAR, 0, internal_user_data);
  if (::kevent(kq, &wake, 1, nullptr, 0, nullptr) < 0) {
    const auto ec = errno_code();
    ::close(kq);
    return ec;
  }
  return KqueueSelector(kq, std::make_unique<Shared>());
}

KqueueSelector::KqueueSelector(int kq, std::unique_ptr<Shared> shared) noexcept
    : kq_(kq), shared_(std::move(shared)) {}

KqueueSelector::KqueueSelector(KqueueSelector&& other) noexcept
    : kq_(std::exchange(other.kq_, -1)),
      shared_(std::move(other.shared_)),
      kernel_events_(std::move(other.kernel_events_)),
      kernel_capacity_(std::exchange(other.kernel_capacity_, 0)),
      disarm_(std::move(other.disarm_)) {}

KqueueSelector::~KqueueSelector() {
  // Closing the kqueue drops every knote, wakers' included.
  if (kq_ >= 0) ::close(kq_);
}

// Changes are applied at once, with their own kevent() call, rather than
// queued for the kevent() that waits: they come from any thread while the
// poller may be blocked (queuing would need a lock shared with the poller and
// a wake-up, one system call anyway), their errors belong to the caller of
// add/modify/remove, and a deferred EV_DELETE could reach a descriptor number
// that was closed and reused in between, deleting another file's knote.
std::error_code KqueueSelector::apply(int fd, std::uint64_t data, Interest interest,
                                      Trigger trigger, bool delete_first) {
  if (fd < 0) return errno_code(EBADF);
  if (interest.is_priority() && !interest.is_readable()) return not_supported();
  const auto ident = static_cast<std::uintptr_t>(fd);
  // EV_DISPATCH rather than EV_ONESHOT: retrieval re-runs the filter, so a
  // condition that ended since it was queued is dropped rather than reported
  // (EV_ONESHOT returns the activation as it was), and the knote stays, so
  // deleting it later is never ENOENT for a registered interest.
  const unsigned mode = trigger == Trigger::edge      ? EV_CLEAR
                        : trigger == Trigger::oneshot ? EV_DISPATCH
                                                      : 0u;
  Kevent changes[4];
  int n = 0;
  if (delete_first) {
    // EV_CLEAR, EV_DISPATCH and EV_ONESHOT keep the values a knote was
    // created with when it is added again (kqueue(2) on FreeBSD and macOS
    // alike), so a modify deletes both filters and adds afresh. The new
    // knotes evaluate their condition at once: readiness pending at modify
    // time is reported again, whatever the trigger.
    changes[n++] = change(ident, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, data);
    changes[n++] = change(ident, EVFILT_WRITE, EV_DELETE | EV_RECEIPT, 0, data);
  }
  const int first_add = n;
  if (interest.is_readable())
    changes[n++] = change(ident, EVFILT_READ, EV_ADD | EV_RECEIPT | mode, 0, data);
  if (interest.is_writable())
    changes[n++] = change(ident, EVFILT_WRITE, EV_ADD | EV_RECEIPT | mode, 0, data);

  Kevent receipts[4];
  std::error_code ec;
  std::lock_guard lock(shared_->mu);
  const int r = ::kevent(kq_, changes, n, receipts, n, &no_wait);
  if (r < 0) {
    ec = errno_code();
  } else {
    // One receipt per change, in order (EV_RECEIPT); data is 0 or an errno.
    for (int i = 0; i < r && i < n; ++i) {
      const auto err = static_cast<int>(receipts[i].data);
      if ((receipts[i].flags & EV_ERROR) == 0 || err == 0) continue;
      // Deleting a filter the old interest did not have. (A oneshot that
      // fired is only disabled, never deleted: EV_DISPATCH.)
      if (i < first_add && err == ENOENT) continue;
      if (!ec) ec = errno_code(err);
    }
    if (!ec && r < n) ec = errno_code(EIO);  // not one receipt per change: never seen
  }
  if (ec && !delete_first) {
    // A failed add leaves nothing behind: a knote kept by mistake would keep
    // its trigger when the descriptor is added again.
    Kevent undo[2] = {change(ident, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, data),
                      change(ident, EVFILT_WRITE, EV_DELETE | EV_RECEIPT, 0, data)};
    // ENOENT here is expected (the filter whose add failed, or one not
    // asked for); nothing else can be done about any other error.
    (void)::kevent(kq_, undo, 2, undo, 2, &no_wait);
  }
  // Recorded after the kernel saw the change, also after a failed modify
  // (it may have deleted the old knotes); a failed add left nothing behind.
  if (!ec || delete_first)
    shared_->record(fd, trigger == Trigger::oneshot && interest.is_readable() &&
                            interest.is_writable());
  return ec;
}

std::error_code KqueueSelector::add(int fd, std::uint64_t data, Interest interest,
                                    Trigger trigger) {
  return apply(fd, data, interest, trigger, false);
}

std::error_code KqueueSelector::modify(int fd, std::uint64_t data, Interest interest,
                                       Trigger trigger) {
  return apply(fd, data, interest, trigger, true);
}

std::error_code KqueueSelector::remove(int fd, std::uint64_t data) {
  if (fd < 0) return errno_code(EBADF);
  const auto ident = static_cast<std::uintptr_t>(fd);
  Kevent changes[2] = {change(ident, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, data),
                       change(ident, EVFILT_WRITE, EV_DELETE | EV_RECEIPT, 0, data)};
  std::error_code ec;
  std::lock_guard lock(shared_->mu);
  const int r = ::kevent(kq_, changes, 2, changes, 2, &no_wait);
  if (r < 0) {
    ec = errno_code();
  } else {
    for (int i = 0; i < r && i < 2; ++i) {
      const auto err = static_cast<int>(changes[i].data);
      if ((changes[i].flags & EV_ERROR) == 0 || err == 0) continue;
      // The registration had no interest in this filter.
      if (err == ENOENT) continue;
      if (!ec) ec = errno_code(err);  // e.g. EBADF: closed before remove(), knotes gone with it
    }
  }
  shared_->record(fd, false);
  return ec;
}

std::error_code KqueueSelector::select(Event* out, std::size_t capacity,
                                       const RegistrationTable& /*table: see registration_of*/,
                                       TimeoutNs timeout, std::size_t& n) {
  n = 0;
  if (capacity > kernel_capacity_) {
    kernel_events_ = std::make_unique<Kevent[]>(capacity);
    kernel_capacity_ = capacity;
  }
  const int cap = capacity > INT_MAX ? INT_MAX : static_cast<int>(capacity);
  timespec ts{};
  const timespec* tsp = nullptr;
  if (timeout >= 0) {
    // kevent() takes nanoseconds: nothing to round.
    const TimeoutNs t = std::min(timeout, max_wait);
    ts.tv_sec = static_cast<time_t>(t / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(t % 1'000'000'000);
    tsp = &ts;
  }
  // Before the wait: a registry change after this point makes
  // disarm_siblings() leave that descriptor alone.
  const std::uint64_t changes_before_wait = shared_->changes.load(std::memory_order_acquire);
  const int r = ::kevent(kq_, nullptr, 0, kernel_events_.get(), cap, tsp);
  if (r < 0) return errno_code();

  // Per event, as on epoll: one mask, one generation compare, one 16-byte
  // store. The two filters of one registration come as two kevents; adjacent
  // ones are merged into one Event (others stay two events with one token).
  Event* o = out;
  std::uint64_t previous = internal_user_data;  // user data of o[-1]; never live
  const Kevent* ke = kernel_events_.get();
  for (const Kevent* end = ke + r; ke != end; ++ke) {
    const std::uint64_t data = from_udata(ke->udata);
    Registration& reg = registration_of(data);
    if (!is_current(reg, data)) [[unlikely]]
      continue;  // removed since the kernel queued it, or the internal wake-up
    const bool eof = (ke->flags & EV_EOF) != 0;
    std::uint32_t flags;
    if (ke->filter == EVFILT_READ) {
      flags = Event::readable_flag | (eof ? Event::read_hangup_flag : 0);
    } else if (ke->filter == EVFILT_WRITE) {
      flags = Event::writable_flag | (eof ? Event::write_hangup_flag : 0);
    } else {  // EVFILT_USER: a waker
      reg.waker_pending.store(false, std::memory_order_release);
      flags = Event::readable_flag;
    }
    // With EV_EOF, fflags holds the socket's error (kqueue(2), EVFILT_READ):
    // a reset or refused connection ends both directions, as EPOLLERR|EPOLLHUP
    // says on epoll. A plain EOF (peer's shutdown) has fflags 0.
    if (eof && ke->fflags != 0) flags |= Event::error_flag | Event::hangup_flag;
    if ((ke->flags & EV_ERROR) != 0) [[unlikely]]
      flags |= Event::error_flag;
    if ((ke->flags & EV_DISPATCH) != 0) [[unlikely]] {
      // A oneshot fired. If the other direction fired right before it, the
      // kernel disabled both: nothing is left to disarm.
      if (data == previous && !disarm_.empty() && disarm_.back().ident == ke->ident)
        disarm_.pop_back();
      else
        disarm_.push_back(*ke);
    }
    if (data == previous) {  // the other filter of the registration just reported
      o[-1] = Event(o[-1].token(), o[-1].flags() | flags);
      continue;
    }
    previous = data;
    *o++ = Event(Token{reg.token.load(std::memory_order_relaxed)}, flags);
  }
  n = static_cast<std::size_t>(o - out);
  if (!disarm_.empty()) [[unlikely]]
    disarm_siblings(changes_before_wait);
  return {};
}

// A oneshot registration delivers one event and is then disarmed until
// modify(), as on every other backend. kqueue arms each filter apart, so when
// the EV_DISPATCH knote of one direction fired, the other direction's knote
// is disabled here, before select() returns. This must not undo a re-arm: if
// another thread changed the descriptor's registration since the wait began,
// its knotes may be fresh ones, and they are left alone (at worst the other
// direction reports once more, a spurious event). The check and the
// EV_DISABLE happen under the lock add/modify/remove take, so no change can
// slip in between.
void KqueueSelector::disarm_siblings(std::uint64_t changes_before_wait) {
  Shared& s = *shared_;
  std::lock_guard lock(s.mu);
  int k = 0;
  for (const Kevent& fired : disarm_) {
    const std::size_t fd = fired.ident;
    if (fd >= s.fd_state.size()) continue;
    const std::uint64_t state = s.fd_state[fd];
    if ((state & 1) == 0) continue;                       // one direction only: nothing to do
    if ((state >> 1) > changes_before_wait) continue;     // changed during the wait: see above
    // EV_DISABLE stores udata like any change to a knote (FreeBSD and macOS):
    // it carries the registration's own.
    disarm_[static_cast<std::size_t>(k++)] =
        change(fired.ident, fired.filter == EVFILT_READ ? EVFILT_WRITE : EVFILT_READ,
               EV_DISABLE | EV_RECEIPT, 0, from_udata(fired.udata));
  }
  // changelist and eventlist may be one array (kqueue(2)). The receipts are
  // not looked at: ENOENT and EBADF mean the descriptor was closed since the
  // event (its knotes went with it), and nothing else can fail when disabling
  // a knote of ours; any failure leaves the other direction armed, which
  // costs at most one spurious event. The event is delivered either way.
  if (k > 0) (void)::kevent(kq_, disarm_.data(), k, disarm_.data(), k, &no_wait);
  disarm_.clear();
}

std::error_code KqueueSelector::wake() {
  // No EV_CLEAR in a NOTE_TRIGGER change: FreeBSD's filt_usertouch resets
  // the trigger after applying it when the change carries EV_CLEAR.
  const Kevent trigger = change(wake_ident, EVFILT_USER, 0, NOTE_TRIGGER, internal_user_data);
  return check(::kevent(kq_, &trigger, 1, nullptr, 0, nullptr));
}

Result<int> KqueueSelector::add_waker(std::uint64_t data) {
  Shared& s = *shared_;
  int id;
  if (!s.free_waker_ids.empty()) {
    id = s.free_waker_ids.back();
    s.free_waker_ids.pop_back();
  } else {
    id = s.next_waker_id;
    const auto c = static_cast<unsigned>(id) >> Shared::waker_chunk_bits;
    if (c >= Shared::max_waker_chunks) return std::make_error_code(std::errc::too_many_files_open);
    if (!s.waker_chunks[c].load(std::memory_order_relaxed))
      s.waker_chunks[c].store(new std::atomic<std::uint64_t>[Shared::waker_chunk_size](),
                              std::memory_order_release);
    ++s.next_waker_id;
  }
  s.waker_data(id)->store(data, std::memory_order_release);
  // EV_CLEAR: one NOTE_TRIGGER, one event; retrieval resets the trigger, so
  // many notifications before one poll coalesce into one event.
  const Kevent add =
      change(static_cast<std::uintptr_t>(id), EVFILT_USER, EV_ADD | EV_CLEAR, 0, data);
  if (::kevent(kq_, &add, 1, nullptr, 0, nullptr) < 0) {
    const auto ec = errno_code();
    s.free_waker_ids.push_back(id);
    return ec;
  }
  return id;
}

std::error_code KqueueSelector::notify_waker(int id) {
  const std::atomic<std::uint64_t>* slot = shared_->waker_data(id);
  if (!slot) return errno_code(EBADF);
  // A NOTE_TRIGGER change stores its udata in the knote (FreeBSD and macOS
  // have no portable way to keep it), so it carries the waker's own.
  const Kevent trigger = change(static_cast<std::uintptr_t>(id), EVFILT_USER, 0, NOTE_TRIGGER,
                                slot->load(std::memory_order_acquire));
  return check(::kevent(kq_, &trigger, 1, nullptr, 0, nullptr));
}

void KqueueSelector::remove_waker(int id, std::uint64_t data) {
  std::atomic<std::uint64_t>* slot = shared_->waker_data(id);
  if (!slot) return;
  // Deleting the knote also drops a trigger not yet retrieved; one a poller
  // already holds carries the old generation and is dropped as stale.
  const Kevent del = change(static_cast<std::uintptr_t>(id), EVFILT_USER, EV_DELETE, 0, data);
  (void)::kevent(kq_, &del, 1, nullptr, 0, nullptr);
  slot->store(internal_user_data, std::memory_order_relaxed);
  shared_->free_waker_ids.push_back(id);
}

}  // namespace evq::detail
