#include "core/core.hpp"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <new>

#include "core/syscall.hpp"

namespace evq::detail {

namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kNotWaiting = std::numeric_limits<std::int64_t>::min();

std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Saturating a + b for deadlines far in the future.
std::int64_t add_sat(std::int64_t a, std::int64_t b) noexcept {
  return b > 0 && a > kNever - b ? kNever : a + b;
}

template <class S>
Result<Core*> open_backend(Backend b, auto make) {
  auto sel = S::open();
  if (!sel) return sel.error();
  return make(b, std::move(*sel));
}

}  // namespace

bool Core::available(Backend backend) noexcept {
  switch (backend) {
#if EVQ_HAVE_EPOLL
    case Backend::epoll: return true;
#endif
#if EVQ_HAVE_POLL
    case Backend::poll: return true;
#endif
#if EVQ_HAVE_KQUEUE
    case Backend::kqueue: return true;
#endif
#if EVQ_HAVE_URING
    case Backend::io_uring: return UringSelector::supported();
#endif
#if EVQ_HAVE_IOCP
    case Backend::iocp: return true;
#endif
    default: return false;
  }
}

Result<Core*> Core::create(Backend backend) {
  auto make = [](Backend b, auto&& sel) -> Result<Core*> {
    Core* c = new (std::nothrow) Core(b, std::move(sel));
    if (!c) return std::make_error_code(std::errc::not_enough_memory);
    return c;
  };
  switch (backend) {
#if EVQ_HAVE_EPOLL
    case Backend::epoll: return open_backend<EpollSelector>(backend, make);
#endif
#if EVQ_HAVE_POLL
    case Backend::poll: return open_backend<PollSelector>(backend, make);
#endif
#if EVQ_HAVE_KQUEUE
    case Backend::kqueue: return open_backend<KqueueSelector>(backend, make);
#endif
#if EVQ_HAVE_URING
    case Backend::io_uring: return open_backend<UringSelector>(backend, make);
#endif
#if EVQ_HAVE_IOCP
    case Backend::iocp: return open_backend<IocpSelector>(backend, make);
#endif
    default: return errc::backend_unavailable;
  }
}

void Core::unref() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

bool Core::native_edge() noexcept {
  return with_selector([](auto& s) { return std::decay_t<decltype(s)>::native_edge; });
}

std::uint32_t Core::slot_of(NativeHandle h) const noexcept {
  const auto i = static_cast<std::size_t>(h);
  return i < slot_by_handle_.size() ? slot_by_handle_[i] : 0;
}

void Core::bind_handle(NativeHandle h, std::uint32_t slot) {
  // Descriptors are small integers, and the kernel has just accepted this one
  // (so it is no larger than the process's descriptor limit): a dense vector
  // beats a hash map here.
  const auto i = static_cast<std::size_t>(h);
  if (i >= slot_by_handle_.size()) slot_by_handle_.resize(std::max(i + 1, slot_by_handle_.size() * 2), 0);
  slot_by_handle_[i] = slot;
}

void Core::close() noexcept {
  closed_.store(true, std::memory_order_release);
  unref();
}

std::error_code Core::add(Source& source, Token token, Interest interest, Trigger trigger) {
  const NativeHandle h = source.handle_;
  if (!valid_handle(h)) return errc::invalid_source;
  // Still linked to a Poll that was destroyed: that registration is gone with
  // its Poll, so the socket may join another one.
  if (Core* old = source.link_.core; old && old != this && old->closed_.load(std::memory_order_acquire))
    old->detach(source);
  // Here or in another Poll. No lock needed: a Source's link is changed only
  // by calls on that Source, which its user makes from one thread at a time.
  // (The Ring emulation asks this for every operation that has to wait.)
  if (source.link_.core) return errc::already_registered;
  const bool emulated_edge = trigger == Trigger::edge && !native_edge();
  // Without evq's would-block hook nothing would ever re-arm the registration.
  if (emulated_edge && !source.owning_) return errc::trigger_unsupported;

  std::lock_guard lock(mu_);
  if (slot_of(h)) return errc::already_registered;
  auto slot = table_.allocate();
  if (!slot) return slot.error();
  Registration& r = table_.at(*slot);
  r.token.store(static_cast<std::uint64_t>(token), std::memory_order_relaxed);
  r.kind.store(RegKind::io, std::memory_order_relaxed);
  r.handle = h;
  const std::uint64_t data = RegistrationTable::publish(*slot, r);
  if (auto ec = with_selector([&](auto& s) { return s.add(h, data, interest, trigger); })) {
    table_.release(*slot);
    return ec;
  }
  bind_handle(h, *slot);
  if (source.owning_) {
    source.link_ = Source::Link{this, *slot, r.generation.load(std::memory_order_relaxed), emulated_edge};
    ref();
  }
  return {};
}

std::error_code Core::modify(Source& source, Token token, Interest interest, Trigger trigger) {
  const NativeHandle h = source.handle_;
  if (!valid_handle(h)) return errc::invalid_source;
  const bool emulated_edge = trigger == Trigger::edge && !native_edge();
  if (emulated_edge && !source.owning_) return errc::trigger_unsupported;

  std::lock_guard lock(mu_);
  if (source.owning_ && source.link_.core != this) return errc::not_registered;
  const std::uint32_t slot = slot_of(h);
  if (!slot) return errc::not_registered;
  Registration& r = table_.at(slot);
  // The token first: an event the kernel reports after the change carries it.
  r.token.store(static_cast<std::uint64_t>(token), std::memory_order_relaxed);
  const std::uint64_t data = RegistrationTable::publish(slot, r);
  if (auto ec = with_selector([&](auto& s) { return s.modify(h, data, interest, trigger); }))
    return ec;
  if (source.owning_) source.link_.rearm = emulated_edge;
  return {};
}

void Core::remove_locked(std::uint32_t slot, NativeHandle h) {
  const std::uint64_t data = table_.user_data(slot);
  // The generation moves first: a poller that already holds this data drops it.
  table_.release(slot);
  with_selector([&](auto& s) { return s.remove(h, data); });
  slot_by_handle_[static_cast<std::size_t>(h)] = 0;
}

std::error_code Core::remove(Source& source) {
  const NativeHandle h = source.handle_;
  if (!valid_handle(h)) return errc::invalid_source;
  bool drop_link = false;
  {
    std::lock_guard lock(mu_);
    if (source.owning_ && source.link_.core != this) return errc::not_registered;
    const std::uint32_t slot = slot_of(h);
    if (!slot) return errc::not_registered;
    remove_locked(slot, h);
    if (source.owning_) {
      source.link_ = Source::Link{};
      drop_link = true;
    }
  }
  if (drop_link) unref();  // may delete this: after the lock is gone
  return {};
}

void Core::detach(Source& source) noexcept {
  {
    std::lock_guard lock(mu_);
    const NativeHandle h = source.handle_;
    const auto i = static_cast<std::size_t>(h);
    if (h != invalid_handle && i < slot_by_handle_.size() && slot_by_handle_[i] == source.link_.slot &&
        table_.at(source.link_.slot).generation.load(std::memory_order_relaxed) == source.link_.generation)
      remove_locked(source.link_.slot, h);
    source.link_ = Source::Link{};
  }
  unref();
}

void Core::rearm(std::uint32_t slot, std::uint16_t generation, NativeHandle h,
                 Interest interest) noexcept {
  with_selector([&](auto& s) { s.rearm(h, make_user_data(table_.at(slot), generation), interest); });
}

namespace {

std::int64_t steady_ns(std::chrono::steady_clock::time_point t) noexcept {
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return ns >= 0 ? ns : 0;
}

}  // namespace

// Under mu_, after a timer was armed for `at`. Only ever lowers the cached
// earliest deadline: it is now min(old, at), and asking the wheel
// (next_deadline()) cost more than the add itself. The value may be earlier
// than the wheel's answer, never later; expiring recomputes it.
void Core::timer_armed_locked(std::int64_t at) noexcept {
  if (at < next_timer_.load(std::memory_order_relaxed)) next_timer_.store(at, std::memory_order_seq_cst);
}

// After mu_ is released. Pairs with the poller's store of waiting_until_ then
// load of next_timer_ (both seq_cst): either it sees the timer or we see its
// wait and wake it.
void Core::wake_if_waiting_past(std::int64_t at) noexcept {
  if (at < waiting_until_.load(std::memory_order_seq_cst)) with_selector([](auto& s) { return s.wake(); });
}

Result<TimerId> Core::add_timer(Token token, std::chrono::steady_clock::time_point deadline,
                                std::chrono::nanoseconds period) {
  if (period.count() < 0) return errc::invalid_argument;
  const std::int64_t at = steady_ns(deadline);
  TimerHandle handle;
  {
    std::lock_guard lock(mu_);
    auto added = timers_.add(token, at, period.count());
    if (!added) return added.error();
    handle = *added;
    timer_armed_locked(at);
  }
  wake_if_waiting_past(at);
  return TimerId(handle.slot, handle.generation);
}

std::error_code Core::reset_timer(TimerId id, std::chrono::steady_clock::time_point deadline) {
  const std::int64_t at = steady_ns(deadline);
  {
    std::lock_guard lock(mu_);
    if (auto ec = timers_.reset(TimerHandle{id.slot_, id.generation_}, at)) return ec;
    timer_armed_locked(at);
  }
  wake_if_waiting_past(at);
  return {};
}

std::error_code Core::cancel_timer(TimerId id) {
  std::lock_guard lock(mu_);
  // next_timer_ is left as it is: if this was the earliest timer, the poller
  // wakes at its deadline, finds nothing due and recomputes. One early
  // wake-up at worst, instead of asking the wheel on every cancel (a timeout
  // restarted per request is a cancel and an add).
  return timers_.cancel(TimerHandle{id.slot_, id.generation_});
}

std::size_t Core::expire_timers(std::int64_t now, Event* out, std::size_t capacity) {
  std::lock_guard lock(mu_);
  const std::size_t n = timers_.expire(now, out, capacity);
  next_timer_.store(timers_.next_deadline(), std::memory_order_seq_cst);
  return n;
}

Result<std::uint32_t> Core::add_waker(Token token) {
  std::lock_guard lock(mu_);
  auto slot = table_.allocate();
  if (!slot) return slot.error();
  Registration& r = table_.at(*slot);
  r.token.store(static_cast<std::uint64_t>(token), std::memory_order_relaxed);
  r.kind.store(RegKind::waker, std::memory_order_relaxed);
  r.waker_pending.store(false, std::memory_order_relaxed);
  const std::uint64_t data = RegistrationTable::publish(*slot, r);
  auto h = with_selector([&](auto& s) { return s.add_waker(data); });
  if (!h) {
    table_.release(*slot);
    return h.error();
  }
  r.handle = *h;
  ref();
  return *slot;
}

std::error_code Core::wake(std::uint32_t slot) noexcept {
  Registration& r = table_.at(slot);
  // Coalescing: only the first wake() since the poller last delivered this
  // waker's event pays for a system call.
  if (r.waker_pending.exchange(true, std::memory_order_acq_rel)) return {};
  const NativeHandle h = r.handle;
  return with_selector([&](auto& s) { return s.notify_waker(h); });
}

void Core::remove_waker(std::uint32_t slot) noexcept {
  {
    std::lock_guard lock(mu_);
    Registration& r = table_.at(slot);
    const std::uint64_t data = table_.user_data(slot);
    const NativeHandle h = r.handle;
    table_.release(slot);
    with_selector([&](auto& s) { s.remove_waker(h, data); });
  }
  unref();
}

std::error_code Core::poll(Events& events, std::optional<std::chrono::nanoseconds> timeout) {
  const std::size_t capacity = events.capacity();
  events.clear();
  if (capacity == 0) return errc::zero_capacity;
  Event* const out = events.data();

  // The clock is read only when a finite wait or an armed timer needs it, so
  // the common server loop (wait forever, no timers) never pays for it.
  std::int64_t user_deadline = kNever;  // steady ns
  TimeoutNs first_wait = wait_forever;
  if (timeout) {
    first_wait = std::max<std::int64_t>(0, timeout->count());
    if (first_wait > 0) user_deadline = add_sat(steady_now_ns(), first_wait);
  }

  for (;;) {
    std::size_t n = 0;
    TimeoutNs wait = first_wait;
    std::int64_t now = 0;
    if (next_timer_.load(std::memory_order_relaxed) != kNever) {
      now = steady_now_ns();
      if (now >= next_timer_.load(std::memory_order_relaxed)) n = expire_timers(now, out, capacity);
    }
    if (n > 0) {
      wait = 0;  // deliver the timers now; pick up I/O that is already ready
    } else if (wait != 0) {
      // Never early: re-derived from the deadline on every pass, so an early
      // return, EINTR or a wake-up only shortens the next wait.
      const std::int64_t until = std::min(user_deadline, next_timer_.load(std::memory_order_seq_cst));
      waiting_until_.store(until, std::memory_order_seq_cst);
      const std::int64_t next = next_timer_.load(std::memory_order_seq_cst);
      const std::int64_t wake_at = std::min(until, next);
      if (wake_at != kNever) {
        if (!now) now = steady_now_ns();
        wait = wake_at > now ? wake_at - now : 0;
      }
    }

    std::size_t got = 0;
    std::error_code ec;
    if (n < capacity)
      ec = with_selector([&](auto& s) { return s.select(out + n, capacity - n, table_, wait, got); });
    waiting_until_.store(kNotWaiting, std::memory_order_relaxed);
    if (ec && ec != std::errc::interrupted) {
      events.set_size(n);
      return ec;
    }
    n += got;
    if (n > 0) {
      events.set_size(n);
      return {};
    }
    if (first_wait == 0) return {};
    if (user_deadline != kNever && steady_now_ns() >= user_deadline) return {};
    // Otherwise: only stale events, an internal wake-up, EINTR, or a wait
    // that ended early. Go round: the wait is re-derived from the deadline.
  }
}

}  // namespace evq::detail
