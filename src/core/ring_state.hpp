// src/core/ring_state.hpp: the engine-neutral state of a Ring, which every
// completion engine works on (ring_backend.hpp is the contract).
//
// It holds the operation records, the token index for cancel(), the FIFO of
// submissions not yet handed to the engine, the cancel requests for
// operations the engine holds, and where completions go: straight into the
// caller's Completions while wait() runs, into a queue when that is full.
// Not thread-safe: a Ring is used by one thread at a time.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>

#include "core/ring_op.hpp"
#include "core/ring_pool.hpp"
#include "core/ring_token_index.hpp"
#include "evq/ring.hpp"

namespace evq::detail {

class RingState {
 public:
  explicit RingState(std::uint32_t max_operations) noexcept : ops_(max_operations) {}
  RingState(const RingState&) = delete;
  RingState& operator=(const RingState&) = delete;
  ~RingState() = default;

  // ---- The portable core's side --------------------------------------------

  // A record for a new operation, indexed by its token and queued behind the
  // earlier submissions; the caller fills the request fields. Errors:
  // ring_errc::queue_full, not_enough_memory.
  Result<OpRecord*> submit(RingOp kind, Token token) noexcept;
  // See Ring::cancel.
  std::error_code cancel(Token token) noexcept;
  // Clears `out`, makes it where completions go, and moves queued ones in.
  void begin_wait(Completions& out) noexcept;
  void end_wait() noexcept { out_ = nullptr; }
  // A RingWaker's completion. Only while output_full() is false: wakes never
  // queue (the waker stays pending instead), so the backlog holds operation
  // completions only and never outgrows in_flight().
  void emit_wake(Token token) noexcept;
  std::size_t in_flight() const noexcept { return in_flight_; }
  // After the engine's shutdown(): forgets submissions it never saw and
  // completions never delivered (their streams close; pools are not touched).
  void discard_undelivered() noexcept;

  // ---- The engines' side ----------------------------------------------------

  OpRecord& op(OpIndex i) noexcept { return ops_[i]; }
  std::uint32_t op_extent() const noexcept { return ops_.extent(); }

  // Calls withdraw(i) for each operation the engine holds that cancel() was
  // called for, oldest request first. The engine must complete each exactly
  // once: with operation_canceled, or with its result if it won the race.
  template <class F>
  void drain_cancels(F&& withdraw) {
    OpIndex i = cancel_head_;
    cancel_head_ = cancel_tail_ = no_op;
    while (i != no_op) {
      const OpIndex next = ops_[i].next;
      ops_[i].next = no_op;
      withdraw(i);
      i = next;
    }
  }

  // Hands each submission to start(i), in submission order; from here the
  // engine owns the operation. Submissions cancelled before this point
  // complete here with operation_canceled and never reach the engine.
  template <class F>
  void drain_submissions(F&& start) {
    OpIndex i = submit_head_;
    submit_head_ = submit_tail_ = no_op;
    while (i != no_op) {
      OpRecord& op = ops_[i];
      const OpIndex next = op.next;
      op.next = no_op;
      op.state = OpState::in_engine;
      if (op.cancel_requested)
        complete(i, std::make_error_code(std::errc::operation_canceled), 0);
      else
        start(i);
      i = next;
    }
  }

  // Whether drain_submissions has anything to hand over.
  bool has_submissions() const noexcept { return submit_head_ != no_op; }
  bool has_cancels() const noexcept { return cancel_head_ != no_op; }

  // Every operation the engine holds (for shutdown). f may discard it.
  template <class F>
  void for_each_in_engine(F&& f) {
    const std::uint32_t n = ops_.extent();
    for (OpIndex i = 0; i < n; ++i)
      if (ops_[i].state == OpState::in_engine) f(i);
    cancel_head_ = cancel_tail_ = no_op;
  }

  // The one way an operation ends: its record becomes a Completion (error
  // empty: `bytes` transferred; set: bytes ignored), carrying the outcome
  // fields (stream, peer address, pool buffer), and the record is freed.
  void complete(OpIndex i, std::error_code error, std::size_t bytes) noexcept;
  // Shutdown only: frees the record without a completion. A pool buffer
  // the engine took for it must already be given back.
  void discard(OpIndex i) noexcept;

  // A completion is ready for the wait() in progress.
  bool has_output() const noexcept { return out_ && out_->size_ > 0; }
  // The caller's Completions is full: more completions would only queue.
  bool output_full() const noexcept { return !out_ || out_->size_ == out_->capacity_; }

 private:
  // Completions that did not fit the caller's buffer, oldest first. A ring
  // buffer that doubles when full and never shrinks.
  class Backlog {
   public:
    bool empty() const noexcept { return size_ == 0; }
    Completion& front() noexcept { return items_[head_]; }
    void pop() noexcept {
      items_[head_].stream_.reset();
      head_ = (head_ + 1) & (capacity_ - 1);
      --size_;
    }
    // Room for `n` without growing; false when memory ran out.
    bool reserve(std::size_t n) noexcept { return n <= capacity_ || grow(n); }
    // A fresh slot at the back; reserve() made room for it.
    Completion& push() noexcept;
    void clear() noexcept {
      while (!empty()) pop();
    }

   private:
    bool grow(std::size_t n) noexcept;
    std::unique_ptr<Completion[]> items_;
    std::size_t capacity_ = 0;  // a power of two
    std::size_t head_ = 0;
    std::size_t size_ = 0;
  };

  Completion& slot() noexcept;
  std::error_code build_index() noexcept;

  OpTable ops_;
  // Built by the first cancel(), kept from then on. Until then submitting
  // and completing skip it: a hash insert and a backward-shift erase per
  // operation, about 90 instructions of the ~250 the portable core spent per
  // operation (callgrind, bench/servers/ring_server.cpp), paid by every Ring
  // for a call that many never make.
  TokenIndex index_;
  bool indexed_ = false;
  std::uint64_t next_seq_ = 0;
  OpIndex submit_head_ = no_op;
  OpIndex submit_tail_ = no_op;
  OpIndex cancel_head_ = no_op;
  OpIndex cancel_tail_ = no_op;
  Completions* out_ = nullptr;
  Backlog backlog_;
  // Submitted and not yet delivered. The backlog keeps room for all of
  // them (reserved at submission), so completing never allocates or fails.
  std::size_t in_flight_ = 0;
};

}  // namespace evq::detail
