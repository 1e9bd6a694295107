#include "core/ring_emulated.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <utility>

#include "evq/net.hpp"

namespace evq::detail {

namespace {

// Internal tokens: the top two bits say what an event is about.
constexpr unsigned kTagShift = 62;
constexpr std::uint64_t kDescriptorTag = 0;  // low bits: the descriptor
constexpr std::uint64_t kTimerTag = 1;       // low 32 bits: record index; next 30: generation
constexpr std::uint64_t kWakeTag = 2;
constexpr std::uint64_t kGenerationMask = (std::uint64_t{1} << 30) - 1;

constexpr Token wake_token{kWakeTag << kTagShift};

Token descriptor_token(NativeHandle h) noexcept { return Token{static_cast<std::uint64_t>(h)}; }

Token timer_token(OpIndex i, std::uint32_t generation) noexcept {
  return Token{(kTimerTag << kTagShift) | ((generation & kGenerationMask) << 32) | i};
}

static_assert(sizeof(TimerId) == sizeof(std::uint64_t) && std::is_trivially_copyable_v<TimerId>);

// EAGAIN/EWOULDBLOCK in the system category first: the common case costs two
// compares instead of the category's virtual equivalent().
bool would_block(const std::error_code& ec) noexcept {
  if (ec.category() == std::system_category()) {
#if EVQ_POSIX
    return ec.value() == EWOULDBLOCK || ec.value() == EAGAIN;
#endif
  }
  return ec == std::errc::operation_would_block;
}

bool is_input(RingOp kind) noexcept {
  return kind == RingOp::read || kind == RingOp::recv || kind == RingOp::recv_from ||
         kind == RingOp::accept;
}

template <class S>
S& as(const OpRecord& op) noexcept {
  return *static_cast<S*>(op.source);
}

Result<std::size_t> read_into(const OpRecord& op, std::span<std::byte> buf) noexcept {
  switch (op.source_type) {
    case SourceType::tcp_stream:
      return op.vectored ? as<TcpStream>(op).read_vectored(op.read_slices) : as<TcpStream>(op).read(buf);
#if EVQ_POSIX
    case SourceType::unix_stream:
      return op.vectored ? as<UnixStream>(op).read_vectored(op.read_slices) : as<UnixStream>(op).read(buf);
    case SourceType::pipe_receiver: return as<PipeReceiver>(op).read(buf);
#endif
    default: return errc::invalid_source;  // the core only pairs readable types with reads
  }
}

Result<std::size_t> write_from(const OpRecord& op) noexcept {
  const std::span<const std::byte> buf(op.data, op.size);
  switch (op.source_type) {
    case SourceType::tcp_stream:
      return op.vectored ? as<TcpStream>(op).write_vectored(op.write_slices) : as<TcpStream>(op).write(buf);
#if EVQ_POSIX
    case SourceType::unix_stream:
      return op.vectored ? as<UnixStream>(op).write_vectored(op.write_slices) : as<UnixStream>(op).write(buf);
    case SourceType::pipe_sender: return as<PipeSender>(op).write(buf);
#endif
    default: return errc::invalid_source;
  }
}

}  // namespace

Result<EmulatedRing> EmulatedRing::open(std::optional<Backend> backend, const RingOptions&) {
  auto poll = backend ? Poll::create(*backend) : Poll::create();
  if (!poll) return poll.error();
  auto waker = Waker::create(poll->registry(), wake_token);
  if (!waker) return waker.error();
  return EmulatedRing(std::move(*poll), std::move(*waker));
}

// 1024 events per poll: more ready descriptors than that are picked up by
// the next pass, which the kernel (epoll's ready list) keeps for us.
EmulatedRing::EmulatedRing(Poll poll, Waker waker) noexcept
    : poll_(std::move(poll)), waker_(std::move(waker)), events_(1024) {}

EmulatedRing::Descriptor* EmulatedRing::grow_descriptors(std::size_t i) noexcept {
  try {
    fds_.resize(std::max(i + 1, fds_.size() * 2));
  } catch (...) {
    return nullptr;
  }
  return &fds_[i];
}

EmulatedRing::Fifo& EmulatedRing::fifo_of(const OpRecord& op) noexcept {
  Descriptor& d = fds_[static_cast<std::size_t>(op.handle)];
  return is_input(op.kind) ? d.in : d.out;
}

void EmulatedRing::park(Fifo& q, RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  op.engine_next = no_op;
  op.engine_prev = q.tail;
  if (q.tail == no_op)
    q.head = i;
  else
    state.op(q.tail).engine_next = i;
  q.tail = i;
  ++waiting_;
}

void EmulatedRing::unpark(Fifo& q, RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  if (op.engine_prev == no_op)
    q.head = op.engine_next;
  else
    state.op(op.engine_prev).engine_next = op.engine_next;
  if (op.engine_next == no_op)
    q.tail = op.engine_prev;
  else
    state.op(op.engine_next).engine_prev = op.engine_prev;
  op.engine_prev = op.engine_next = no_op;
  --waiting_;
}

std::error_code EmulatedRing::run(RingState& state, TimeoutNs timeout) {
  if (state.has_cancels()) {
    state.drain_cancels([&](OpIndex i) {
      withdraw(state, i);
      state.complete(i, std::make_error_code(std::errc::operation_canceled), 0);
    });
  }
  if (state.has_submissions()) state.drain_submissions([&](OpIndex i) { start(state, i); });

  if (state.has_output()) {
    // Return what is ready without a system call, unless the previous pass
    // did so too (fairness to parked operations, see skipped_poll_) or there
    // is room for more and something could be ready.
    if (waiting_ == 0 || state.output_full() || !skipped_poll_) {
      skipped_poll_ = waiting_ != 0;
      return {};
    }
    timeout = 0;
  }
  skipped_poll_ = false;

  std::optional<std::chrono::nanoseconds> wait;
  if (timeout >= 0) wait = std::chrono::nanoseconds(timeout);
  if (auto ec = poll_.poll(events_, wait)) return ec;
  for (const Event& e : events_) on_event(state, e);
  return {};
}

void EmulatedRing::on_event(RingState& state, const Event& event) {
  const auto token = static_cast<std::uint64_t>(event.token());
  switch (token >> kTagShift) {
    case kDescriptorTag: {
      const auto fd = static_cast<std::size_t>(token);
      if (fd >= fds_.size()) return;
      Descriptor& d = fds_[fd];
      // Errors and hang-ups end both directions: let each operation see it.
      const bool broken = event.is_error() || event.is_read_closed() || event.is_write_closed();
      if (event.is_readable() || event.is_priority() || broken) drive(state, d.in);
      if (event.is_writable() || broken) drive(state, d.out);
      return;
    }
    case kTimerTag: {
      const auto i = static_cast<OpIndex>(token);
      if (i >= state.op_extent()) return;
      OpRecord& op = state.op(i);
      // The record may have been cancelled and reused since: the generation says.
      if (op.state != OpState::in_engine || op.kind != RingOp::timeout || op.engine_word == 0 ||
          (op.generation & kGenerationMask) != ((token >> 32) & kGenerationMask))
        return;
      op.engine_word = 0;
      --waiting_;
      state.complete(i, {}, 0);
      return;
    }
    default:
      return;  // the waker: it only had to end the wait
  }
}

void EmulatedRing::drive(RingState& state, Fifo& q) {
  while (q.head != no_op) {
    const OpIndex i = q.head;
    std::error_code error;
    std::size_t bytes = 0;
    if (attempt(state.op(i), error, bytes) == Attempt::blocked) return;
    unpark(q, state, i);
    finish(state, i, error, bytes);
  }
}

void EmulatedRing::start(RingState& state, OpIndex i) {
  OpRecord& op = state.op(i);
  if (op.kind == RingOp::timeout) return start_timeout(state, i);
  if (op.kind == RingOp::connect) return start_connect(state, i);

  Descriptor* d = descriptor(op.handle);
  if (!d) return finish(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
  Fifo& q = is_input(op.kind) ? d->in : d->out;
  // Behind an older parked operation of the same direction: keep the order
  // (the descriptor is registered: the older one parked).
  if (q.head != no_op) return park(q, state, i);

  std::error_code error;
  std::size_t bytes = 0;
  if (attempt(op, error, bytes) == Attempt::done) return finish(state, i, error, bytes);
  if (auto ec = ensure_registered(op, *d)) return finish(state, i, ec, 0);
  park(q, state, i);
}

// The first time one of the socket's operations has to wait. Later calls
// cost the registry's lock and no system call (already_registered).
std::error_code EmulatedRing::ensure_registered(OpRecord& op, Descriptor& d) {
  const std::error_code ec = poll_.registry().add(*op.source, descriptor_token(op.handle),
                                                  Interest::readable | Interest::writable, Trigger::edge);
  if (!ec) {
    d.registered = true;
    return {};
  }
  // Registered already: with us, or with a Poll of the user's (see ring.hpp).
  if (ec == errc::already_registered && d.registered) return {};
  return ec;
}

void EmulatedRing::start_timeout(RingState& state, OpIndex i) {
  OpRecord& op = state.op(i);
  const std::chrono::steady_clock::time_point deadline(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::nanoseconds(op.deadline_ns)));
  auto id = poll_.registry().add_timer(timer_token(i, op.generation), deadline);
  if (!id) return finish(state, i, id.error(), 0);
  op.engine_word = std::bit_cast<std::uint64_t>(*id);
  ++waiting_;
}

void EmulatedRing::start_connect(RingState& state, OpIndex i) {
  OpRecord& op = state.op(i);
  auto stream = TcpStream::connect(op.addr);
  if (!stream) return finish(state, i, stream.error(), 0);
  Descriptor* d = descriptor(stream->native_handle());
  if (!d) return finish(state, i, std::make_error_code(std::errc::not_enough_memory), 0);
  op.handle = stream->native_handle();
  op.stream.emplace(std::move(*stream));
  // Level: the socket turns writable once, when the attempt ends; it is
  // removed right then, so level never reports it twice.
  if (auto ec = poll_.registry().add(*op.stream, descriptor_token(op.handle), Interest::writable,
                                     Trigger::level)) {
    op.stream.reset();
    return finish(state, i, ec, 0);
  }
  d->registered = true;
  park(d->out, state, i);
}

EmulatedRing::Attempt EmulatedRing::attempt(OpRecord& op, std::error_code& error,
                                            std::size_t& bytes) noexcept {
  Result<std::size_t> r = std::size_t{0};
  switch (op.kind) {
    case RingOp::read: r = read_into(op, std::span<std::byte>(op.data, op.size)); break;
    case RingOp::write: r = write_from(op); break;
    case RingOp::recv: return attempt_recv(op, error, bytes);
    case RingOp::accept: return attempt_accept(op, error);
    case RingOp::connect: return attempt_connect(op, error);
    case RingOp::recv_from: {
      auto got = as<UdpSocket>(op).recv_from(std::span<std::byte>(op.data, op.size));
      if (got) {
        op.addr = got->second;
        r = got->first;
      } else {
        r = got.error();
      }
      break;
    }
    case RingOp::send_to:
      r = as<UdpSocket>(op).send_to(std::span<const std::byte>(op.data, op.size), op.addr);
      break;
    case RingOp::timeout:
    case RingOp::wake: r = errc::invalid_argument; break;  // never parked on a descriptor
  }
  if (r) {
    bytes = *r;
    return Attempt::done;
  }
  if (would_block(r.error())) return Attempt::blocked;
  error = r.error();
  return Attempt::done;
}

// A buffer only for the moment of receiving: taken before the call, given
// back if nothing came. An empty pool fails the operation at once, as
// io_uring's provided buffers do (-ENOBUFS), whether or not data is there.
EmulatedRing::Attempt EmulatedRing::attempt_recv(OpRecord& op, std::error_code& error,
                                                 std::size_t& bytes) noexcept {
  PoolState& pool = *op.pool;
  std::uint32_t id = 0;
  if (!pool.take(id)) {
    error = std::make_error_code(std::errc::no_buffer_space);
    return Attempt::done;
  }
  auto r = read_into(op, std::span<std::byte>(pool.data(id), pool.buffer_size));
  if (!r || *r == 0) {
    pool.give_back(id);
    if (!r && would_block(r.error())) return Attempt::blocked;
    if (!r) error = r.error();
    return Attempt::done;
  }
  op.buffer = pool.data(id);
  op.buffer_id = id;
  bytes = *r;
  return Attempt::done;
}

EmulatedRing::Attempt EmulatedRing::attempt_accept(OpRecord& op, std::error_code& error) noexcept {
  auto accepted = as<TcpListener>(op).accept();
  if (!accepted) {
    if (would_block(accepted.error())) return Attempt::blocked;
    error = accepted.error();
    return Attempt::done;
  }
  op.stream.emplace(std::move(accepted->first));
  op.addr = accepted->second;
  return Attempt::done;
}

// The socket reported writable (or an error). SO_ERROR says whether the
// attempt failed; getpeername whether it is really over (spurious events
// are allowed by the readiness API).
EmulatedRing::Attempt EmulatedRing::attempt_connect(OpRecord& op, std::error_code& error) noexcept {
  if (auto ec = op.stream->take_error()) {
    error = ec;
    return Attempt::done;
  }
  auto peer = op.stream->peer_addr();
  if (peer) return Attempt::done;
  if (peer.error() == std::errc::not_connected) return Attempt::blocked;
  error = peer.error();
  return Attempt::done;
}

void EmulatedRing::finish(RingState& state, OpIndex i, std::error_code error, std::size_t bytes) noexcept {
  OpRecord& op = state.op(i);
  if (op.kind == RingOp::connect && op.stream) {
    // The stream leaves registered nowhere, as an accepted one does.
    fds_[static_cast<std::size_t>(op.handle)].registered = false;
    if (error)
      op.stream.reset();
    else
      poll_.registry().remove(*op.stream);
  }
  state.complete(i, error, bytes);
}

void EmulatedRing::withdraw(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  if (op.kind == RingOp::timeout) {
    if (op.engine_word) {
      poll_.registry().cancel_timer(std::bit_cast<TimerId>(op.engine_word));
      op.engine_word = 0;
      --waiting_;
    }
    return;
  }
  // Every other operation the engine holds is parked: the rest completed in start().
  unpark(fifo_of(op), state, i);
  if (op.kind == RingOp::connect) {
    fds_[static_cast<std::size_t>(op.handle)].registered = false;
    op.stream.reset();  // closing leaves the registry
  }
}

void EmulatedRing::shutdown(RingState& state) noexcept {
  state.for_each_in_engine([&](OpIndex i) {
    withdraw(state, i);
    state.discard(i);
  });
}

}  // namespace evq::detail
