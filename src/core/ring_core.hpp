// src/core/ring_core.hpp: the portable core behind Ring: reference counting,
// the engine chosen at creation, RingWaker coalescing, and the wait loop.
//
// Reference-counted like the readiness Core: the Ring holds one reference,
// each RingWaker and each BufferPool one more, so a waker or a pool may
// outlive its Ring safely. ~Ring shuts the engine down (every operation
// withdrawn, nothing touches user memory afterwards); the engine object and
// its OS queue go with the last reference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <variant>
#include <vector>

#include "core/ring_backend.hpp"
#include "core/ring_emulated.hpp"
#include "core/ring_state.hpp"
#include "evq/ring.hpp"

// Which native completion engines this build has. CMake defines EVQ_HAVE_*
// per OS (as for the readiness backends in sys/selector.hpp); this is the
// one place that includes them.
#if EVQ_HAVE_URING
#include "sys/uring/uring_ring.hpp"
#endif
#if EVQ_HAVE_IOCP
#include "sys/iocp/iocp_ring.hpp"
#endif

namespace evq::detail {

// One RingWaker. Heap-allocated so its address is stable for wake() on other
// threads while the vector of them changes.
struct WakerSlot {
  std::atomic<bool> pending{false};
  Token token{};
};

// One alternative per engine this build has; native engines go first when
// they join (#if EVQ_HAVE_URING ... UringRing, #if EVQ_HAVE_IOCP ... IocpRing).
// std::variant keeps dispatch to one jump per wait() pass with no virtual
// call, as AnySelector does for Poll.
using AnyRingEngine = std::variant<
#if EVQ_HAVE_URING
    UringRing,
#endif
#if EVQ_HAVE_IOCP
    IocpRing,
#endif
    EmulatedRing>;

class RingCore {
 public:
  // nullopt: the platform's best engine.
  static Result<RingCore*> create(std::optional<Backend> backend, const RingOptions& options);

  void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept;

  Backend backend() const noexcept;
  bool native() const noexcept;
  RingState& state() noexcept { return state_; }

  std::error_code wait(Completions& out, std::optional<std::chrono::nanoseconds> timeout);
  // From ~Ring: withdraws and forgets every operation (see ring.hpp).
  void shutdown() noexcept;
  // From ~BufferPool of a pool bound to this Ring.
  void forget_pool(PoolState& pool) noexcept;

  Result<WakerSlot*> add_waker(Token token);
  void remove_waker(WakerSlot* slot) noexcept;
  std::error_code wake(WakerSlot* slot) noexcept;

 private:
  template <class E>
  RingCore(E&& engine, const RingOptions& options)
      : state_(options.max_operations), engine_(std::in_place_type<std::decay_t<E>>, std::forward<E>(engine)) {}
  ~RingCore() = default;

  template <class F>
  decltype(auto) with_engine(F&& f) {
    return std::visit(std::forward<F>(f), engine_);
  }
  template <class F>
  decltype(auto) with_engine(F&& f) const {
    return std::visit(std::forward<F>(f), engine_);
  }
  void collect_wakes() noexcept;
  static Result<RingCore*> try_native(std::optional<Backend> backend, const RingOptions& options);
  // A new core around an opened native engine; nullptr when it answered
  // backend_unavailable (the caller falls back to the emulation).
  template <class E>
  static Result<RingCore*> adopt(Result<E> engine, const RingOptions& options) {
    if (!engine) {
      if (engine.error() == errc::backend_unavailable) return static_cast<RingCore*>(nullptr);
      return engine.error();
    }
    RingCore* core = new (std::nothrow) RingCore(std::move(*engine), options);
    if (!core) return std::make_error_code(std::errc::not_enough_memory);
    return core;
  }

  std::atomic<std::uint32_t> refs_{1};
  RingState state_;
  AnyRingEngine engine_;
  // Some RingWaker is pending: set by wake() after its slot's flag.
  std::atomic<bool> wake_pending_{false};
  std::mutex wakers_mu_;  // guards wakers_; never held across a wait
  std::vector<std::unique_ptr<WakerSlot>> wakers_;
};

}  // namespace evq::detail
