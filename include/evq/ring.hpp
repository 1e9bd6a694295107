// evq/ring.hpp: the completion API: Ring, Completion, Completions,
// BufferPool, RingWaker.
//
// Readiness (evq/poll.hpp) says "this socket can be read now"; completion
// says "your read finished, here is how many bytes landed in your buffer".
// A Ring takes operations (read, write, accept, connect, recv_from, send_to,
// recv from a buffer pool, timeout), each tagged with a Token, and reports
// each one exactly once as a Completion from wait().
//
// Engines. io_uring (Linux) and IOCP (Windows) complete operations natively.
// Elsewhere, and where the native engine is unavailable, the Ring emulates
// completion over a readiness backend (epoll, kqueue, poll): at the next
// wait() it tries the system call at once and, when that would block, waits
// for readiness on an internal Poll and then performs it. backend() names the
// OS queue underneath; is_native() tells the two apart. The observable
// behaviour is the same; where native engines differ it is said below.
//
// Threads. A Ring is used from one thread at a time: submissions, cancel()
// and wait() must not run concurrently. RingWaker::wake() is the one call
// safe from any thread (and from a signal handler).
//
// Ownership and lifetime rules (the caller's side of the bargain):
//  - Buffers. A buffer passed to a submission (and for vectored calls the
//    array of slices too) must stay alive and untouched until that
//    operation's Completion comes out of wait(). After cancel(), likewise
//    until the cancelled operation's Completion (operation_canceled, or its
//    ordinary result if it finished first) comes out of wait().
//  - Sources. The stream, listener or socket an operation names must stay
//    alive, at the same address (not moved) and open until the operation's
//    Completion comes out of wait(). Cancel first to close a socket early.
//    (The emulation calls the object's own methods; native engines need the
//    descriptor open.) Between operations a socket may be moved or closed
//    freely.
//  - A socket used with a Ring must not be registered with a Poll at the
//    same time: the emulation registers it with the Ring's internal queue the
//    first time an operation on it has to wait, and it stays there until the
//    socket is closed. An operation on a socket registered with a Poll
//    completes with errc::already_registered. (Not detected: a socket that
//    reuses the descriptor number of one the Ring already drove, registered
//    with a Poll, then given to the Ring; its operations would never end.)
//  - IOCP (Windows, native). A socket is tied to the completion port of the
//    first Ring that runs an operation on it, for the socket's whole life
//    (Windows cannot undo that): operations on it through another Ring, also
//    after the first is destroyed, complete with std::errc::invalid_argument.
//    A connect's stream belongs to its Ring's port from the start. Use one
//    Ring per socket (or RingOptions::force_emulation).
//  - Order. On one socket, operations of one direction (reads, or writes)
//    are performed in submission order by the emulation. Native engines do
//    not promise that, so portable code keeps at most one read and one write
//    in flight per stream.
//
// Exactly once. Every accepted submission (one that returned an empty
// error_code) completes exactly once: with its result, with an error, or with
// std::errc::operation_canceled; only ~Ring discards completions (below). A
// submission that returned an error was not accepted and never completes.
//
// Destruction. ~Ring cancels every operation still in flight. When it
// returns, no operation touches any buffer, source or pool any more, and
// their completions (also those completed but not yet returned by wait())
// are discarded, never delivered: streams they carried are closed, pool
// buffers they held stay lent (the pool is of no further use without its
// Ring). Native engines reach that state by cancelling and waiting for the
// kernel inside ~Ring; the emulation holds no kernel reference to a buffer and
// only forgets its records. So the simple way to shut down is to declare the
// Ring after the buffers, pools and sockets it works on: it is destroyed
// first. Sockets the emulation registered stay attached to its internal
// queue (kept alive for them) until they close.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <type_traits>

#include "evq/event.hpp"
#include "evq/pipe.hpp"
#include "evq/platform.hpp"
#include "evq/poll.hpp"
#include "evq/result.hpp"
#include "evq/socket_addr.hpp"
#include "evq/tcp.hpp"
#include "evq/udp.hpp"
#include "evq/unix.hpp"

namespace evq {

// Errors only the Ring raises. Each is equivalent to the closest std::errc.
enum class ring_errc {
  unknown_token = 1,  // cancel(): nothing in flight with this token ~ no_such_file_or_directory
  queue_full,         // RingOptions::max_operations already in flight ~ device_or_resource_busy
};

const std::error_category& ring_error_category() noexcept;

inline std::error_code make_error_code(ring_errc e) noexcept {
  return {static_cast<int>(e), ring_error_category()};
}

// What a Completion reports on.
enum class RingOp : std::uint8_t {
  read,       // read / read_vectored
  write,      // write / write_vectored
  accept,
  connect,
  recv_from,
  send_to,
  recv,       // recv into a BufferPool buffer
  timeout,
  wake,       // a RingWaker, not an operation
};

struct RingOptions {
  // Operations in flight at once (submitted, completion not yet returned by
  // wait()); a submission beyond it fails with ring_errc::queue_full. Memory
  // for operation records grows on demand up to this bound and is reused: in
  // steady state a submission allocates nothing.
  std::uint32_t max_operations = 65536;
  // Use the emulation even where a native completion engine exists.
  bool force_emulation = false;
};

class BufferPool;
class Ring;
class RingWaker;
namespace detail {
class RingCore;
class RingState;
struct PoolState;
struct WakerSlot;
}  // namespace detail

// The result of one operation (or one wake-up). Move-only: an accept or
// connect completion owns the new stream until take_stream().
class Completion {
 public:
  Completion() noexcept = default;
  Completion(Completion&&) noexcept = default;
  Completion& operator=(Completion&&) noexcept = default;
  ~Completion() = default;

  // The token the operation was submitted with.
  Token token() const noexcept { return token_; }
  RingOp op() const noexcept { return op_; }

  // No error: the operation did what it was asked.
  bool ok() const noexcept { return category_ == nullptr; }
  // Empty on success. std::errc::operation_canceled after cancel() or when
  // the operation was withdrawn; otherwise the OS error (connection_reset,
  // connection_refused, broken_pipe, ...) or std::errc::no_buffer_space for a
  // recv() that found its pool empty.
  std::error_code error() const noexcept {
    return category_ ? std::error_code(code_, *category_) : std::error_code{};
  }
  bool is_canceled() const noexcept { return error() == std::errc::operation_canceled; }

  // Bytes transferred; 0 on error. A read or recv of 0 bytes is end of stream.
  // A write can complete with fewer bytes than asked (submit the rest).
  // 0 for accept, connect, timeout and wake.
  std::size_t bytes() const noexcept { return bytes_; }
  // bytes() or error() in one.
  Result<std::size_t> result() const noexcept {
    if (category_) return std::error_code(code_, *category_);
    return bytes_;
  }

  // recv() with a pool: the buffer the data landed in. A completion with
  // bytes() > 0 always carries one; give it back with pool.release(buffer_id())
  // when done. End of stream and errors carry none.
  bool has_buffer() const noexcept { return buffer_ != nullptr; }
  std::uint32_t buffer_id() const noexcept { return buffer_id_; }
  // The received bytes: bytes() of them, at the start of the pool's buffer.
  std::span<std::byte> buffer() const noexcept {
    return buffer_ ? std::span<std::byte>(buffer_, bytes_) : std::span<std::byte>();
  }

  // accept and connect: the new stream, non-blocking and registered nowhere.
  // Each call after the first (and for other operations) gives nullopt. A
  // stream not taken is closed when its Completions is cleared or reused.
  std::optional<TcpStream> take_stream() noexcept {
    std::optional<TcpStream> s = std::move(stream_);
    stream_.reset();
    return s;
  }
  // accept: the peer's address; recv_from: the sender's; connect: the address
  // connected to. Unspecified for other operations.
  const SocketAddr& peer() const noexcept { return peer_; }

 private:
  friend class detail::RingState;
  friend class Completions;

  Token token_{};
  RingOp op_ = RingOp::read;
  std::uint32_t buffer_id_ = 0;
  int code_ = 0;
  const std::error_category* category_ = nullptr;  // null on success
  std::size_t bytes_ = 0;
  std::byte* buffer_ = nullptr;
  SocketAddr peer_{};
  std::optional<TcpStream> stream_;
};

// A reusable buffer that Ring::wait fills, like Events for Poll::poll.
class Completions {
 public:
  explicit Completions(std::size_t capacity)
      : items_(capacity ? std::make_unique<Completion[]>(capacity) : nullptr), capacity_(capacity) {}

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  Completion* begin() noexcept { return items_.get(); }
  Completion* end() noexcept { return items_.get() + size_; }
  const Completion* begin() const noexcept { return items_.get(); }
  const Completion* end() const noexcept { return items_.get() + size_; }
  Completion& operator[](std::size_t i) noexcept { return items_[i]; }
  const Completion& operator[](std::size_t i) const noexcept { return items_[i]; }
  // Forgets the completions; streams not taken are closed.
  void clear() noexcept {
    for (std::size_t i = 0; i < size_; ++i) items_[i].stream_.reset();
    size_ = 0;
  }

 private:
  friend class detail::RingState;
  std::unique_ptr<Completion[]> items_;  // [0, size_): delivered; the rest hold no stream
  std::size_t capacity_;
  std::size_t size_ = 0;
};

// N buffers of one size that recv() draws from only when data arrives, so
// that ten thousand idle connections with a recv() in flight hold no buffer.
// Natively an io_uring provided-buffer ring; emulated elsewhere.
//
// A pool serves one Ring: the first recv() binds it (a recv on another Ring
// then fails with errc::invalid_argument). Single-threaded like that Ring:
// release() on the thread that calls wait(). A pool must outlive every recv()
// that uses it, until that recv's Completion comes out of wait() or the Ring
// is destroyed: declare pools (and sockets) before the Ring, so that the Ring
// goes first.
class BufferPool {
 public:
  // `count` buffers of `buffer_size` bytes. Both must be positive:
  // errc::invalid_argument otherwise.
  static Result<BufferPool> create(std::size_t buffer_size, std::uint32_t count);

  BufferPool(BufferPool&& other) noexcept;
  BufferPool& operator=(BufferPool&& other) noexcept;
  ~BufferPool();

  std::size_t buffer_size() const noexcept;
  std::uint32_t count() const noexcept;
  // Buffers free right now (not lent to a completion).
  std::uint32_t available() const noexcept;
  // The whole buffer `id` (buffer_size() bytes).
  std::span<std::byte> buffer(std::uint32_t id) const noexcept;
  // Gives back a buffer a completion lent out. errc::invalid_argument for an
  // id out of range or not lent out (a double release).
  std::error_code release(std::uint32_t id) noexcept;

 private:
  friend class Ring;
  BufferPool() noexcept = default;
  detail::RingCore* core_ = nullptr;  // the Ring it serves, one reference; null until bound
  std::unique_ptr<detail::PoolState> state_;
};

// Wakes a Ring's wait() from any thread: the next wait() returns a
// Completion with op() == RingOp::wake and this token. Wakes coalesce: many
// wake() calls before that completion give one. May outlive its Ring (wake()
// then does nothing useful, harmlessly).
class RingWaker {
 public:
  static Result<RingWaker> create(Ring& ring, Token token);

  RingWaker(RingWaker&& other) noexcept;
  RingWaker& operator=(RingWaker&& other) noexcept;
  ~RingWaker();

  // One atomic exchange, and one system call unless a wake is pending.
  std::error_code wake() noexcept;

 private:
  RingWaker() noexcept = default;
  detail::RingCore* core_ = nullptr;  // one reference while set
  detail::WakerSlot* slot_ = nullptr;
};

// Owns a completion queue. Move-only; a moved-from Ring may only be assigned
// to or destroyed.
class Ring {
 public:
  // The platform's best engine: io_uring where the kernel allows it, IOCP on
  // Windows, otherwise the emulation over Poll::create()'s backend. The
  // environment variable EVQ_BACKEND names a backend instead (as for
  // Poll::create), so one test binary runs on each.
  static Result<Ring> create(const RingOptions& options = {});
  // The native engine of `backend` where this build and system have one and
  // options.force_emulation is false, else the emulation over
  // Poll::create(backend). errc::backend_unavailable when neither can run.
  static Result<Ring> create(Backend backend, const RingOptions& options = {});

  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&& other) noexcept;
  // See "Destruction" at the top of this header.
  ~Ring();

  Backend backend() const noexcept;
  // True for io_uring and IOCP completion engines, false for the emulation.
  bool is_native() const noexcept;
  // Submissions accepted whose Completion wait() has not returned yet.
  std::size_t in_flight() const noexcept;

  // ---- Submissions ---------------------------------------------------------
  // Each returns at once. An empty error_code: accepted, one Completion will
  // follow. Otherwise rejected, nothing will follow: errc::invalid_source (a
  // closed or moved-from socket), errc::invalid_argument (an empty buffer, a
  // pool of another Ring), ring_errc::queue_full, or not_enough_memory.
  // Nothing starts before the next wait(), which flushes submissions in
  // order.

  // Reads what is there, up to buf.size() bytes; 0 bytes = end of stream.
  std::error_code read(TcpStream& stream, std::span<std::byte> buf, Token token);
  std::error_code read_vectored(TcpStream& stream, std::span<const IoSliceMut> bufs, Token token);
  // Writes what fits, at least one byte unless it fails (see bytes()).
  std::error_code write(TcpStream& stream, std::span<const std::byte> buf, Token token);
  std::error_code write_vectored(TcpStream& stream, std::span<const IoSlice> bufs, Token token);
  // Reads into a buffer of `pool` taken only when data arrives. The pool
  // empty at that moment: std::errc::no_buffer_space (release and resubmit).
  // Binds the pool to this Ring on first use.
  std::error_code recv(TcpStream& stream, BufferPool& pool, Token token);

#if EVQ_POSIX
  std::error_code read(UnixStream& stream, std::span<std::byte> buf, Token token);
  std::error_code read_vectored(UnixStream& stream, std::span<const IoSliceMut> bufs, Token token);
  std::error_code write(UnixStream& stream, std::span<const std::byte> buf, Token token);
  std::error_code write_vectored(UnixStream& stream, std::span<const IoSlice> bufs, Token token);
  std::error_code recv(UnixStream& stream, BufferPool& pool, Token token);
  std::error_code read(PipeReceiver& pipe, std::span<std::byte> buf, Token token);
  std::error_code recv(PipeReceiver& pipe, BufferPool& pool, Token token);
  std::error_code write(PipeSender& pipe, std::span<const std::byte> buf, Token token);
#endif

  // One connection; the completion carries it (take_stream()) and peer().
  std::error_code accept(TcpListener& listener, Token token);
  // Opens a stream to `addr`; the completion carries it once connected, or
  // the error (connection_refused, timed_out, ...).
  std::error_code connect(const SocketAddr& addr, Token token);

  // One datagram, truncated to buf.size(); peer() is the sender.
  std::error_code recv_from(UdpSocket& socket, std::span<std::byte> buf, Token token);
  // One datagram (may be empty). `to` is copied.
  std::error_code send_to(UdpSocket& socket, std::span<const std::byte> buf, const SocketAddr& to,
                          Token token);

  // Completes (ok(), 0 bytes) once steady_clock reaches now + `after`, never
  // before. Timeouts are independent operations: to bound another operation,
  // cancel() it when its timeout completes first.
  std::error_code timeout(Token token, std::chrono::nanoseconds after);
  std::error_code timeout_at(Token token, std::chrono::steady_clock::time_point deadline);

  // Cancels every operation in flight submitted with `token`; each completes
  // with operation_canceled at a later wait() (on native engines an
  // operation that finished first completes with its result instead).
  // ring_errc::unknown_token when none is in flight: never submitted, already
  // cancelled, or already completed (its Completion may still be queued).
  std::error_code cancel(Token token);

  // Flushes the submissions, then waits until at least one completion, the
  // timeout, or a RingWaker. Fills `completions` (cleared first) with up to
  // capacity() of them; the rest wait for the next call. nullopt waits
  // forever; zero does not wait. A timeout is never cut short. Returns an
  // empty error_code also when the timeout passed with nothing done;
  // errc::zero_capacity for a Completions of capacity 0.
  std::error_code wait(Completions& completions, std::optional<std::chrono::nanoseconds> timeout);

 private:
  friend class BufferPool;
  friend class RingWaker;
  explicit Ring(detail::RingCore* core) noexcept : core_(core) {}
  std::error_code submit_recv(int source_type, Source& source, BufferPool& pool, Token token);
  detail::RingCore* core_ = nullptr;
};

}  // namespace evq

template <>
struct std::is_error_code_enum<evq::ring_errc> : std::true_type {};
