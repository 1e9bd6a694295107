// The public face of the completion API: Ring, BufferPool and RingWaker
// validate arguments and fill operation records; RingCore does the rest.
#include "evq/ring.hpp"

#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

#include "core/ring_core.hpp"

namespace evq {

// ---- Errors -------------------------------------------------------------------

namespace {

class RingCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "evq.ring"; }

  std::string message(int code) const override {
    switch (static_cast<ring_errc>(code)) {
      case ring_errc::unknown_token: return "no operation with this token is in flight";
      case ring_errc::queue_full: return "too many operations in flight (RingOptions::max_operations)";
    }
    return "unknown evq.ring error";
  }

  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<ring_errc>(code)) {
      // io_uring's IORING_OP_ASYNC_CANCEL answers ENOENT for the same case.
      case ring_errc::unknown_token: return std::errc::no_such_file_or_directory;
      // Not resource_unavailable_try_again: that one equals would_block on
      // Linux, which a submission must never look like.
      case ring_errc::queue_full: return std::errc::device_or_resource_busy;
    }
    return {code, *this};
  }
};

using detail::OpRecord;
using detail::SourceType;

std::int64_t to_ns(std::chrono::steady_clock::time_point t) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return ns < 0 ? 0 : ns;
}

// The checks every operation on a socket shares, then a queued record.
Result<OpRecord*> submit_on(detail::RingCore* core, RingOp kind, SourceType type, Source& source, Token token) {
  if (source.native_handle() == invalid_handle) return errc::invalid_source;
  auto op = core->state().submit(kind, token);
  if (!op) return op.error();
  (*op)->source = &source;
  (*op)->source_type = type;
  (*op)->handle = source.native_handle();
  return op;
}

std::error_code submit_read(detail::RingCore* core, SourceType type, Source& source, std::span<std::byte> buf,
                            Token token) {
  // An empty read would complete with 0 bytes, which means end of stream.
  if (buf.empty()) return errc::invalid_argument;
  auto op = submit_on(core, RingOp::read, type, source, token);
  if (!op) return op.error();
  (*op)->data = buf.data();
  (*op)->size = buf.size();
  return {};
}

std::error_code submit_write(detail::RingCore* core, SourceType type, Source& source,
                             std::span<const std::byte> buf, Token token) {
  if (buf.empty()) return errc::invalid_argument;
  auto op = submit_on(core, RingOp::write, type, source, token);
  if (!op) return op.error();
  // Stored without const; engines only read it for writes.
  (*op)->data = const_cast<std::byte*>(buf.data());
  (*op)->size = buf.size();
  return {};
}

template <class Slice>
bool all_empty(std::span<const Slice> slices) noexcept {
  for (const Slice& s : slices)
    if (!s.empty()) return false;
  return true;
}

std::error_code submit_read_vectored(detail::RingCore* core, SourceType type, Source& source,
                                     std::span<const IoSliceMut> bufs, Token token) {
  if (all_empty(bufs)) return errc::invalid_argument;
  auto op = submit_on(core, RingOp::read, type, source, token);
  if (!op) return op.error();
  (*op)->vectored = true;
  (*op)->read_slices = bufs;
  return {};
}

std::error_code submit_write_vectored(detail::RingCore* core, SourceType type, Source& source,
                                      std::span<const IoSlice> bufs, Token token) {
  if (all_empty(bufs)) return errc::invalid_argument;
  auto op = submit_on(core, RingOp::write, type, source, token);
  if (!op) return op.error();
  (*op)->vectored = true;
  (*op)->write_slices = bufs;
  return {};
}


}  // namespace

const std::error_category& ring_error_category() noexcept {
  static const RingCategory category;
  return category;
}

// ---- Ring -------------------------------------------------------------------

std::error_code Ring::submit_recv(int type, Source& source, BufferPool& pool, Token token) {
  if (!pool.state_) return errc::invalid_argument;
  if (pool.core_ != core_) {
    if (pool.core_) return errc::invalid_argument;  // serves another Ring
    pool.core_ = core_;
    core_->ref();
  }
  auto op = submit_on(core_, RingOp::recv, static_cast<SourceType>(type), source, token);
  if (!op) return op.error();
  (*op)->pool = pool.state_.get();
  return {};
}

Result<Ring> Ring::create(const RingOptions& options) {
  // As Poll::create: EVQ_BACKEND lets one test binary run on every backend.
  if (const char* env = std::getenv("EVQ_BACKEND"); env && *env) {
    const auto b = backend_from_string(env);
    if (!b) return errc::invalid_argument;
    return create(*b, options);
  }
  auto core = detail::RingCore::create(std::nullopt, options);
  if (!core) return core.error();
  return Ring(*core);
}

Result<Ring> Ring::create(Backend backend, const RingOptions& options) {
  auto core = detail::RingCore::create(backend, options);
  if (!core) return core.error();
  return Ring(*core);
}

Ring::Ring(Ring&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}

Ring& Ring::operator=(Ring&& other) noexcept {
  if (this != &other) {
    if (core_) {
      core_->shutdown();
      core_->unref();
    }
    core_ = std::exchange(other.core_, nullptr);
  }
  return *this;
}

Ring::~Ring() {
  if (core_) {
    core_->shutdown();
    core_->unref();
  }
}

Backend Ring::backend() const noexcept { return core_->backend(); }
bool Ring::is_native() const noexcept { return core_->native(); }
std::size_t Ring::in_flight() const noexcept { return core_->state().in_flight(); }

std::error_code Ring::read(TcpStream& stream, std::span<std::byte> buf, Token token) {
  return submit_read(core_, SourceType::tcp_stream, stream, buf, token);
}
std::error_code Ring::read_vectored(TcpStream& stream, std::span<const IoSliceMut> bufs, Token token) {
  return submit_read_vectored(core_, SourceType::tcp_stream, stream, bufs, token);
}
std::error_code Ring::write(TcpStream& stream, std::span<const std::byte> buf, Token token) {
  return submit_write(core_, SourceType::tcp_stream, stream, buf, token);
}
std::error_code Ring::write_vectored(TcpStream& stream, std::span<const IoSlice> bufs, Token token) {
  return submit_write_vectored(core_, SourceType::tcp_stream, stream, bufs, token);
}
std::error_code Ring::recv(TcpStream& stream, BufferPool& pool, Token token) {
  return submit_recv(static_cast<int>(SourceType::tcp_stream), stream, pool, token);
}

#if EVQ_POSIX
std::error_code Ring::read(UnixStream& stream, std::span<std::byte> buf, Token token) {
  return submit_read(core_, SourceType::unix_stream, stream, buf, token);
}
std::error_code Ring::read_vectored(UnixStream& stream, std::span<const IoSliceMut> bufs, Token token) {
  return submit_read_vectored(core_, SourceType::unix_stream, stream, bufs, token);
}
std::error_code Ring::write(UnixStream& stream, std::span<const std::byte> buf, Token token) {
  return submit_write(core_, SourceType::unix_stream, stream, buf, token);
}
std::error_code Ring::write_vectored(UnixStream& stream, std::span<const IoSlice> bufs, Token token) {
  return submit_write_vectored(core_, SourceType::unix_stream, stream, bufs, token);
}
std::error_code Ring::recv(UnixStream& stream, BufferPool& pool, Token token) {
  return submit_recv(static_cast<int>(SourceType::unix_stream), stream, pool, token);
}
std::error_code Ring::read(PipeReceiver& pipe, std::span<std::byte> buf, Token token) {
  return submit_read(core_, SourceType::pipe_receiver, pipe, buf, token);
}
std::error_code Ring::recv(PipeReceiver& pipe, BufferPool& pool, Token token) {
  return submit_recv(static_cast<int>(SourceType::pipe_receiver), pipe, pool, token);
}
std::error_code Ring::write(PipeSender& pipe, std::span<const std::byte> buf, Token token) {
  return submit_write(core_, SourceType::pipe_sender, pipe, buf, token);
}
#endif

std::error_code Ring::accept(TcpListener& listener, Token token) {
  auto op = submit_on(core_, RingOp::accept, SourceType::tcp_listener, listener, token);
  return op ? std::error_code{} : op.error();
}

std::error_code Ring::connect(const SocketAddr& addr, Token token) {
  auto op = core_->state().submit(RingOp::connect, token);
  if (!op) return op.error();
  (*op)->addr = addr;
  return {};
}

std::error_code Ring::recv_from(UdpSocket& socket, std::span<std::byte> buf, Token token) {
  if (buf.empty()) return errc::invalid_argument;
  auto op = submit_on(core_, RingOp::recv_from, SourceType::udp_socket, socket, token);
  if (!op) return op.error();
  (*op)->data = buf.data();
  (*op)->size = buf.size();
  return {};
}

std::error_code Ring::send_to(UdpSocket& socket, std::span<const std::byte> buf, const SocketAddr& to,
                              Token token) {
  auto op = submit_on(core_, RingOp::send_to, SourceType::udp_socket, socket, token);
  if (!op) return op.error();
  (*op)->data = const_cast<std::byte*>(buf.data());
  (*op)->size = buf.size();
  (*op)->addr = to;
  return {};
}

std::error_code Ring::timeout(Token token, std::chrono::nanoseconds after) {
  const std::int64_t now = to_ns(std::chrono::steady_clock::now());
  const std::int64_t d = after.count() > 0 ? after.count() : 0;
  constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();
  auto op = core_->state().submit(RingOp::timeout, token);
  if (!op) return op.error();
  (*op)->deadline_ns = now > never - d ? never : now + d;
  return {};
}

std::error_code Ring::timeout_at(Token token, std::chrono::steady_clock::time_point deadline) {
  auto op = core_->state().submit(RingOp::timeout, token);
  if (!op) return op.error();
  (*op)->deadline_ns = to_ns(deadline);
  return {};
}

std::error_code Ring::cancel(Token token) { return core_->state().cancel(token); }

std::error_code Ring::wait(Completions& completions, std::optional<std::chrono::nanoseconds> timeout) {
  return core_->wait(completions, timeout);
}

// ---- BufferPool ---------------------------------------------------------------

Result<BufferPool> BufferPool::create(std::size_t buffer_size, std::uint32_t count) {
  if (buffer_size == 0 || count == 0 || buffer_size > std::numeric_limits<std::size_t>::max() / count)
    return errc::invalid_argument;
  auto state = std::unique_ptr<detail::PoolState>(new (std::nothrow) detail::PoolState);
  if (!state) return std::make_error_code(std::errc::not_enough_memory);
  state->memory.reset(new (std::nothrow) std::byte[buffer_size * count]);
  if (!state->memory) return std::make_error_code(std::errc::not_enough_memory);
  state->buffer_size = buffer_size;
  state->count = count;
  try {
    state->free_ids.reserve(count);
    state->lent.assign(count, 0);
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  // Buffer 0 on top: the first recv takes it.
  for (std::uint32_t id = count; id-- > 0;) state->free_ids.push_back(id);
  BufferPool pool;
  pool.state_ = std::move(state);
  return pool;
}

BufferPool::BufferPool(BufferPool&& other) noexcept
    : core_(std::exchange(other.core_, nullptr)), state_(std::move(other.state_)) {}

BufferPool& BufferPool::operator=(BufferPool&& other) noexcept {
  if (this != &other) {
    if (core_) {
      core_->forget_pool(*state_);
      core_->unref();
    }
    core_ = std::exchange(other.core_, nullptr);
    state_ = std::move(other.state_);
  }
  return *this;
}

BufferPool::~BufferPool() {
  if (core_) {
    core_->forget_pool(*state_);
    core_->unref();
  }
}

std::size_t BufferPool::buffer_size() const noexcept { return state_ ? state_->buffer_size : 0; }
std::uint32_t BufferPool::count() const noexcept { return state_ ? state_->count : 0; }
std::uint32_t BufferPool::available() const noexcept { return state_ ? state_->available() : 0; }

std::span<std::byte> BufferPool::buffer(std::uint32_t id) const noexcept {
  if (!state_ || id >= state_->count) return {};
  return {state_->data(id), state_->buffer_size};
}

std::error_code BufferPool::release(std::uint32_t id) noexcept {
  if (!state_ || id >= state_->count || !state_->lent[id]) return errc::invalid_argument;
  state_->give_back(id);
  return {};
}

// ---- RingWaker ----------------------------------------------------------------

Result<RingWaker> RingWaker::create(Ring& ring, Token token) {
  auto slot = ring.core_->add_waker(token);
  if (!slot) return slot.error();
  RingWaker w;
  w.core_ = ring.core_;
  w.slot_ = *slot;
  return w;
}

RingWaker::RingWaker(RingWaker&& other) noexcept
    : core_(std::exchange(other.core_, nullptr)), slot_(std::exchange(other.slot_, nullptr)) {}

RingWaker& RingWaker::operator=(RingWaker&& other) noexcept {
  if (this != &other) {
    if (core_) core_->remove_waker(slot_);
    core_ = std::exchange(other.core_, nullptr);
    slot_ = std::exchange(other.slot_, nullptr);
  }
  return *this;
}

RingWaker::~RingWaker() {
  if (core_) core_->remove_waker(slot_);
}

std::error_code RingWaker::wake() noexcept {
  if (!core_) return std::make_error_code(std::errc::bad_file_descriptor);
  return core_->wake(slot_);
}

}  // namespace evq
