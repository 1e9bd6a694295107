#include "core/ring_core.hpp"

#include <algorithm>
#include <limits>
#include <new>
#include <utility>

namespace evq::detail {

namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t add_sat(std::int64_t a, std::int64_t b) noexcept { return b > 0 && a > kNever - b ? kNever : a + b; }

}  // namespace

// The native engine for `backend`; nullptr to fall back to the emulation
// (none here, or it answered backend_unavailable).
Result<RingCore*> RingCore::try_native([[maybe_unused]] std::optional<Backend> backend,
                                       [[maybe_unused]] const RingOptions& options) {
#if EVQ_HAVE_URING
  if (!backend || *backend == Backend::io_uring) return adopt(UringRing::open(backend, options), options);
#endif
#if EVQ_HAVE_IOCP
  if (!backend || *backend == Backend::iocp) return adopt(IocpRing::open(backend, options), options);
#endif
  return static_cast<RingCore*>(nullptr);
}

Result<RingCore*> RingCore::create(std::optional<Backend> backend, const RingOptions& options) {
  if (options.max_operations == 0) return errc::invalid_argument;
  // The native engine first, unless options.force_emulation; the emulation
  // when there is none or it answers backend_unavailable. Which serves what:
  //  - nullopt (Ring::create() without EVQ_BACKEND): the native engine where
  //    the kernel allows it (io_uring on Linux), else the emulation over
  //    Poll::create()'s choice (epoll).
  //  - io_uring: the native engine; where it cannot run, the emulation over
  //    the io_uring readiness backend, which then answers
  //    backend_unavailable too when io_uring_setup is refused.
  //  - iocp (Windows; also nullopt there): the native engine, else the
  //    emulation over the IOCP readiness backend.
  //  - epoll, poll, kqueue: the emulation over that readiness backend.
  if (!options.force_emulation) {
    auto native = try_native(backend, options);
    if (!native || *native) return native;
  }
  auto engine = EmulatedRing::open(backend, options);
  if (!engine) return engine.error();
  RingCore* core = new (std::nothrow) RingCore(std::move(*engine), options);
  if (!core) return std::make_error_code(std::errc::not_enough_memory);
  return core;
}

void RingCore::unref() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

Backend RingCore::backend() const noexcept {
  return with_engine([](const auto& e) { return e.backend(); });
}

bool RingCore::native() const noexcept {
  return with_engine([](const auto& e) { return std::decay_t<decltype(e)>::native; });
}

std::error_code RingCore::wait(Completions& out, std::optional<std::chrono::nanoseconds> timeout) {
  state_.begin_wait(out);
  if (out.capacity() == 0) {
    state_.end_wait();
    return errc::zero_capacity;
  }
  // The clock is read only for a finite, non-zero wait.
  TimeoutNs first = ring_wait_forever;
  std::int64_t deadline = kNever;
  if (timeout) {
    first = std::max<std::int64_t>(0, timeout->count());
    if (first > 0) deadline = add_sat(steady_now_ns(), first);
  }
  std::error_code ec;
  for (;;) {
    TimeoutNs t = first;
    if (deadline != kNever) t = std::max<std::int64_t>(0, deadline - steady_now_ns());
    if (wake_pending_.load(std::memory_order_relaxed)) t = 0;
    ec = with_engine([&](auto& e) { return e.run(state_, t); });
    collect_wakes();
    if (ec || state_.has_output() || first == 0) break;
    // Never early: a pass that ended with nothing (an internal wake-up, a
    // stale event, EINTR) goes round with the time that is left.
    if (deadline != kNever && steady_now_ns() >= deadline) break;
  }
  state_.end_wait();
  return ec;
}

void RingCore::collect_wakes() noexcept {
  if (!wake_pending_.load(std::memory_order_seq_cst) || state_.output_full()) return;
  // Cleared before the scan: a wake() that sets it again after we passed its
  // slot is seen by the next wait(), and its notify() ends that wait's block.
  wake_pending_.store(false, std::memory_order_seq_cst);
  std::lock_guard lock(wakers_mu_);
  for (const auto& w : wakers_) {
    if (!w->pending.load(std::memory_order_relaxed)) continue;
    if (state_.output_full()) {
      wake_pending_.store(true, std::memory_order_seq_cst);  // deliver the rest next time
      return;
    }
    if (w->pending.exchange(false, std::memory_order_acq_rel)) state_.emit_wake(w->token);
  }
}

void RingCore::shutdown() noexcept {
  with_engine([&](auto& e) { e.shutdown(state_); });
  state_.discard_undelivered();
}

void RingCore::forget_pool(PoolState& pool) noexcept {
  with_engine([&](auto& e) { e.forget_pool(pool); });
}

Result<WakerSlot*> RingCore::add_waker(Token token) {
  auto slot = std::unique_ptr<WakerSlot>(new (std::nothrow) WakerSlot);
  if (!slot) return std::make_error_code(std::errc::not_enough_memory);
  slot->token = token;
  WakerSlot* raw = slot.get();
  {
    std::lock_guard lock(wakers_mu_);
    try {
      wakers_.push_back(std::move(slot));
    } catch (...) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
  }
  ref();
  return raw;
}

void RingCore::remove_waker(WakerSlot* slot) noexcept {
  {
    std::lock_guard lock(wakers_mu_);
    auto it = std::find_if(wakers_.begin(), wakers_.end(), [&](const auto& w) { return w.get() == slot; });
    if (it != wakers_.end()) {
      std::swap(*it, wakers_.back());
      wakers_.pop_back();
    }
  }
  unref();  // may delete this: after the lock is gone
}

std::error_code RingCore::wake(WakerSlot* slot) noexcept {
  // Coalescing: only the first wake() since this waker's last completion
  // pays for notify().
  if (slot->pending.exchange(true, std::memory_order_acq_rel)) return {};
  wake_pending_.store(true, std::memory_order_seq_cst);
  return with_engine([](auto& e) { return e.notify(); });
}

}  // namespace evq::detail
