// src/core/ring_op.hpp: the record of one Ring operation, and the slab that
// keeps them.
//
// One record per operation in flight, engine-neutral: the portable core fills
// the request at submission, an engine reads it, writes the outcome fields
// and calls RingState::complete(), which copies the record into a Completion
// and frees it. Records live in fixed-size chunks that are never freed or
// moved while the Ring lives, so an index (and a pointer) stays valid, and a
// freed record goes on a free list: in steady state a submission allocates
// nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <vector>

#include "evq/ring.hpp"

namespace evq::detail {

using OpIndex = std::uint32_t;
inline constexpr OpIndex no_op = 0xffff'ffffu;

// Which public type OpRecord::source points to, for engines that call the
// type's own methods (the emulation does; native engines use the handle).
enum class SourceType : std::uint8_t {
  none,
  tcp_stream,
  unix_stream,
  pipe_sender,
  pipe_receiver,
  udp_socket,
  tcp_listener,
};

enum class OpState : std::uint8_t {
  free,
  queued,     // submitted, waiting for the next wait() to hand it to the engine
  in_engine,  // handed over: the engine completes (or, at shutdown, discards) it
};

struct PoolState;

struct OpRecord {
  // ---- The request: set by the portable core at submission ----------------
  Token token{};
  RingOp kind = RingOp::read;
  SourceType source_type = SourceType::none;
  OpState state = OpState::free;
  bool cancel_requested = false;  // cancel() asked; the token index no longer lists it
  bool vectored = false;          // read/write: use read_slices/write_slices, not data/size
  // Bumped each time the record is freed: engines put it next to the index
  // in whatever the kernel hands back, to drop what refers to an older use.
  std::uint32_t generation = 1;
  // Submission order, for building the token index on demand (RingState).
  std::uint64_t seq = 0;
  NativeHandle handle = invalid_handle;  // the source's descriptor; connect: set by the engine
  Source* source = nullptr;              // the user's object (see SourceType); null for connect/timeout
  std::byte* data = nullptr;             // read/recv_from: writable; write/send_to: read only
  std::size_t size = 0;
  std::span<const IoSliceMut> read_slices;
  std::span<const IoSlice> write_slices;
  PoolState* pool = nullptr;             // recv
  SocketAddr addr{};                     // connect, send_to: the target
  std::int64_t deadline_ns = 0;          // timeout: steady_clock, nanoseconds since its epoch

  // ---- The outcome: set by the engine before RingState::complete() ---------
  std::optional<TcpStream> stream;  // accept: the new stream; connect: the stream being connected
  // accept/recv_from: the peer is written into `addr` (connect keeps its target).
  std::byte* buffer = nullptr;      // recv: the pool buffer the data landed in
  std::uint32_t buffer_id = 0;

  // ---- Links ----------------------------------------------------------------
  OpIndex next = no_op;  // portable core: free list, submission FIFO, cancel list
  OpIndex token_prev = no_op;  // portable core: operations sharing a token
  OpIndex token_next = no_op;
  OpIndex engine_prev = no_op;  // engine-private
  OpIndex engine_next = no_op;
  std::uint64_t engine_word = 0;  // engine-private
};

class OpTable {
 public:
  static constexpr unsigned chunk_bits = 8;  // 256 records (~60 KiB) per chunk
  static constexpr std::uint32_t chunk_size = 1u << chunk_bits;

  explicit OpTable(std::uint32_t max_live) noexcept : max_live_(max_live) {}
  OpTable(const OpTable&) = delete;
  OpTable& operator=(const OpTable&) = delete;

  OpRecord& operator[](OpIndex i) noexcept { return chunks_[i >> chunk_bits][i & (chunk_size - 1)]; }
  const OpRecord& operator[](OpIndex i) const noexcept {
    return chunks_[i >> chunk_bits][i & (chunk_size - 1)];
  }

  // A free record (state still free), or ring_errc::queue_full when
  // max_live records are in use, or not_enough_memory.
  Result<OpIndex> allocate() noexcept {
    if (live_ >= max_live_) return make_error_code(ring_errc::queue_full);
    if (free_ == no_op && !grow()) return std::make_error_code(std::errc::not_enough_memory);
    const OpIndex i = free_;
    free_ = (*this)[i].next;
    (*this)[i].next = no_op;
    ++live_;
    return i;
  }

  // Frees the record, closing a stream it still holds. Only the fields an
  // engine may read without the submission setting them are reset (a full
  // reset of the 200-byte record doubled the cost of completing): the
  // request fields are written by every submission that uses them.
  void release(OpIndex i) noexcept {
    OpRecord& r = (*this)[i];
    if (r.stream) r.stream.reset();
    r.state = OpState::free;
    r.cancel_requested = false;
    r.vectored = false;
    r.handle = invalid_handle;
    r.source = nullptr;
    r.pool = nullptr;
    r.buffer = nullptr;
    r.buffer_id = 0;
    r.token_prev = r.token_next = r.engine_prev = r.engine_next = no_op;
    r.engine_word = 0;
    r.generation = r.generation + 1 == 0 ? 1 : r.generation + 1;
    r.next = free_;
    free_ = i;
    --live_;
  }

  std::uint32_t live() const noexcept { return live_; }
  // Records ever made: indexes below it are valid.
  std::uint32_t extent() const noexcept { return static_cast<std::uint32_t>(chunks_.size()) << chunk_bits; }

 private:
  bool grow() noexcept {
    if (chunks_.size() >= (std::size_t{1} << (32 - chunk_bits)) - 1) return false;
    std::unique_ptr<OpRecord[]> chunk(new (std::nothrow) OpRecord[chunk_size]);
    if (!chunk) return false;
    try {
      chunks_.push_back(std::move(chunk));
    } catch (...) {
      return false;
    }
    const OpIndex base = extent() - chunk_size;
    // Lowest index first off the free list: records are used in order.
    for (std::uint32_t k = chunk_size; k-- > 0;) {
      (*this)[base + k].next = free_;
      free_ = base + k;
    }
    return true;
  }

  std::vector<std::unique_ptr<OpRecord[]>> chunks_;
  OpIndex free_ = no_op;
  std::uint32_t live_ = 0;
  std::uint32_t max_live_;
};

}  // namespace evq::detail
