// src/core/ring_backend.hpp: the contract every completion engine meets.
//
// A Ring is two layers. The portable core (ring_core.hpp, ring_state.hpp)
// owns everything engines would otherwise each reimplement: operation
// records (OpRecord, in a slab), the token index behind cancel(), the FIFO of
// submissions, queued completions, RingWaker coalescing, buffer pools' free
// lists, the wait loop with its deadline (never early), and the exactly-once
// bookkeeping. An engine only turns records into completions.
//
// Dispatch happens once per Ring::wait(), not per operation: a submission
// writes a record and links it into a FIFO without asking the engine
// anything; wait() calls the engine's run() (one std::visit) and run() takes
// the whole batch. This is io_uring's own shape (fill SQEs, one
// io_uring_enter), so the native engine maps records to SQEs in one pass.
//
// ---------------------------------------------------------------------------
// The contract (E is an engine; `state` the Ring's RingState):
//
//   static constexpr bool native
//       true for an engine the OS completes (io_uring, IOCP), false for the
//       emulation over readiness.
//   static Result<E> open(std::optional<Backend> backend, const RingOptions&)
//       Creates the engine. `backend` is what Ring::create(Backend) or
//       EVQ_BACKEND asked for (nullopt: the platform's choice).
//       errc::backend_unavailable when this engine cannot serve it, so the
//       core can fall back (io_uring_setup refused by seccomp or
//       kernel.io_uring_disabled, an old kernel).
//   Backend backend() const
//   std::error_code run(RingState& state, TimeoutNs timeout)
//       Called once per pass of the core's wait loop, with state.begin_wait()
//       done. In this order:
//       1. state.drain_cancels(f): withdraw each operation named; it must
//          still complete exactly once, with operation_canceled, or with its
//          own result where the OS finished it first (io_uring
//          IORING_OP_ASYNC_CANCEL that finds nothing: the op's own CQE
//          follows; IOCP CancelIoEx the same).
//       2. state.drain_submissions(f): start each operation, in order. An
//          operation may complete at once (state.complete()).
//       3. Wait for completions up to `timeout` ns (0: do not block;
//          ring_wait_forever: no limit) unless state.has_output() already,
//          then reap them with state.complete(). With output already there
//          it may still reap what is ready without blocking (the emulation
//          does, so waiting operations are not starved by ready ones).
//       4. Return. Returning early with nothing (a wake-up, an interrupted
//          wait, a stale kernel event) is fine: the core loops with the time
//          that is left and never returns before its deadline. Return an
//          error only for a broken queue; EINTR must not escape.
//       notify() must make a run() blocked in step 3 return soon.
//   std::error_code notify()
//       From any thread, also concurrently with run(), also after
//       shutdown(): wakes a blocked run(). RingWaker coalescing is the
//       core's: notify() is called once per pending wake, not per wake().
//   void shutdown(RingState& state)
//       From ~Ring, after the last run(). Withdraw every operation the engine
//       holds (state.for_each_in_engine) and state.discard() each, returning
//       any pool buffer taken for it first. On return, nothing the engine
//       started may touch a user buffer, socket object or pool again: a
//       native engine cancels everything in the kernel and waits for every
//       CQE / overlapped result before returning. The engine object itself
//       lives on (notify() still works) until the last RingWaker or
//       BufferPool lets go of the core.
//   void forget_pool(PoolState& pool)
//       From ~BufferPool of a pool bound to this Ring (before or after
//       shutdown()), when no recv on it is in flight: drop what the engine
//       registered for it (io_uring: unregister its buffer ring).
//
// Per-operation duties (OpRecord in ring_op.hpp):
//  - Request fields are the core's and read-only for the engine, except
//    `handle` for connect (the engine creates the socket) and `addr`, which
//    accept and recv_from overwrite with the peer.
//  - Outcome fields, set before complete(): `stream` (accept: the accepted
//    stream; connect: the connected stream; the core hands it to the
//    Completion, and a failed connect must reset it), `buffer`/`buffer_id`
//    (recv: the pool buffer holding the data; only with bytes > 0: an end of
//    stream or an error returns the buffer to the pool and sets none).
//  - complete(i, error, bytes) exactly once per started operation, during
//    run() only (never from notify() or another thread); then the record is
//    gone: read what you need first. Errors as std::error_code in the system
//    category (errno, GetLastError), operation_canceled for withdrawals,
//    std::errc::no_buffer_space when a recv finds its pool empty at the
//    moment data is to be received (io_uring: -ENOBUFS). A timeout that
//    expires completes with no error and 0 bytes (io_uring's -ETIME is
//    success here).
//  - engine_prev/engine_next/engine_word are free for the engine. Kernel
//    user data should carry the index and the generation (e.g. index in the
//    low 32 bits, generation above), and a completion whose generation no
//    longer matches is dropped: a record is reused as soon as it completes.
//  - Buffer pools (PoolState, ring_pool.hpp): BufferPool::release() pushes
//    the id on `free_ids` and clears `lent`. The emulation takes an id when
//    it is about to receive and gives it back on would-block. A native
//    engine registers the pool with the kernel the first time a recv uses it
//    (keep the registration in `engine_tag`), and at each run() moves the
//    ids in `free_ids` into the kernel's buffer ring, counting them in
//    `provided` (so available() stays right) and setting `lent` for the id
//    a CQE reports used.
//  - Timeouts: absolute steady_clock deadlines (`deadline_ns`), which on
//    Linux are CLOCK_MONOTONIC: io_uring takes them as IORING_TIMEOUT_ABS.
//  - Sockets: the core checked `handle` != invalid_handle. The emulation
//    calls the public socket methods through `source` (cast by
//    `source_type`); native engines use `handle` and, for accept, must turn
//    the new descriptor into a TcpStream (a small hook in net/ is needed for
//    that: TcpStream's descriptor constructor is private).
//
// Engines must not allocate per operation in steady state.
// ---------------------------------------------------------------------------
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <system_error>

#include "core/ring_state.hpp"
#include "evq/poll.hpp"
#include "evq/ring.hpp"

namespace evq::detail {

// Nanoseconds; -1 waits forever, 0 does not wait (as in sys/selector.hpp).
using TimeoutNs = std::int64_t;
inline constexpr TimeoutNs ring_wait_forever = -1;

template <class E>
concept RingEngine = requires(E& e, const E& ce, RingState& state, TimeoutNs timeout,
                              std::optional<Backend> backend, const RingOptions& options,
                              PoolState& pool) {
  { E::native } -> std::convertible_to<bool>;
  { E::open(backend, options) } -> std::same_as<Result<E>>;
  { ce.backend() } -> std::same_as<Backend>;
  { e.run(state, timeout) } -> std::same_as<std::error_code>;
  { e.notify() } -> std::same_as<std::error_code>;
  { e.shutdown(state) } -> std::same_as<void>;
  { e.forget_pool(pool) } -> std::same_as<void>;
};

}  // namespace evq::detail
