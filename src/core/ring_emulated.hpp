// src/core/ring_emulated.hpp: completion emulated over readiness, for every
// backend Poll has (epoll, kqueue, poll(2), and io_uring/IOCP wherever their
// native engine is unavailable or declined).
//
// At each run(): cancel requests first, then each new operation is tried at
// once through the public socket methods; one that would block is parked on
// its descriptor (a FIFO per direction) and its socket registered, once, with
// an internal Poll for readable|writable, edge-triggered. An event drives the
// FIFOs of its descriptor: the oldest parked operation is retried until one
// would block again. Edge suits this because every operation is first tried
// and parks only after seeing would-block, which is exactly when an edge
// trigger promises the next event; it costs no re-arm system call per
// operation, and on poll(2), which emulates edge, the socket methods'
// would-block hook re-arms the registration in user space. A registration
// stays until the socket closes (its Source link then removes it), so a
// busy connection never pays epoll_ctl again.
//
// Timeouts are the internal Poll's timers. A RingWaker's wake-up is the
// internal Poll's Waker. connect() opens the socket with TcpStream::connect,
// owns it in the operation record, and waits for it level-triggered for
// writable (a connecting socket is not writable, so level never spins).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <system_error>
#include <vector>

#include "core/ring_backend.hpp"
#include "evq/poll.hpp"

namespace evq::detail {

class EmulatedRing {
 public:
  static constexpr bool native = false;

  // Over Poll::create(*backend), or Poll::create() for nullopt.
  static Result<EmulatedRing> open(std::optional<Backend> backend, const RingOptions& options);

  EmulatedRing(EmulatedRing&&) noexcept = default;
  EmulatedRing& operator=(EmulatedRing&&) = delete;
  ~EmulatedRing() = default;

  Backend backend() const noexcept { return poll_.backend(); }
  std::error_code run(RingState& state, TimeoutNs timeout);
  std::error_code notify() noexcept { return waker_.wake(); }
  void shutdown(RingState& state) noexcept;
  void forget_pool(PoolState&) noexcept {}  // nothing registered: pools are plain memory here

 private:
  // Parked operations of one direction of one descriptor, oldest first,
  // threaded through OpRecord::engine_prev/engine_next.
  struct Fifo {
    OpIndex head = no_op;
    OpIndex tail = no_op;
  };
  struct Descriptor {
    Fifo in;   // read, recv, recv_from, accept
    Fifo out;  // write, send_to, connect
    // The socket on this descriptor was registered with poll_ by us. Stays
    // set after the socket closes (its link removed the registration): a new
    // socket on the same number then registers again at its first park.
    bool registered = false;
  };
  enum class Attempt : bool { blocked, done };

  EmulatedRing(Poll poll, Waker waker) noexcept;

  void start(RingState& state, OpIndex i);
  void start_timeout(RingState& state, OpIndex i);
  void start_connect(RingState& state, OpIndex i);
  // The system call. done: the outcome is in `error`/`bytes` and the
  // record's outcome fields; blocked: try again on the next event.
  Attempt attempt(OpRecord& op, std::error_code& error, std::size_t& bytes) noexcept;
  Attempt attempt_recv(OpRecord& op, std::error_code& error, std::size_t& bytes) noexcept;
  Attempt attempt_accept(OpRecord& op, std::error_code& error) noexcept;
  Attempt attempt_connect(OpRecord& op, std::error_code& error) noexcept;
  void finish(RingState& state, OpIndex i, std::error_code error, std::size_t bytes) noexcept;
  std::error_code ensure_registered(OpRecord& op, Descriptor& d);
  void park(Fifo& q, RingState& state, OpIndex i) noexcept;
  void unpark(Fifo& q, RingState& state, OpIndex i) noexcept;
  Fifo& fifo_of(const OpRecord& op) noexcept;
  // Undoes what start() set up, without completing.
  void withdraw(RingState& state, OpIndex i) noexcept;
  void drive(RingState& state, Fifo& q);
  void on_event(RingState& state, const Event& event);
  Descriptor* descriptor(NativeHandle h) noexcept {
    const auto i = static_cast<std::size_t>(h);
    return i < fds_.size() ? &fds_[i] : grow_descriptors(i);
  }
  Descriptor* grow_descriptors(std::size_t i) noexcept;

  Poll poll_;
  Waker waker_;
  Events events_;
  std::vector<Descriptor> fds_;  // by descriptor number
  // Parked operations and armed timeouts: what a poll could complete.
  std::size_t waiting_ = 0;
  // run() returned completions without polling last time: poll this time
  // even if completions are ready, so parked operations are never starved
  // by ones that keep completing at once.
  bool skipped_poll_ = false;
};

static_assert(RingEngine<EmulatedRing>);

}  // namespace evq::detail
