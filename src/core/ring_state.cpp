#include "core/ring_state.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace evq::detail {

Result<OpRecord*> RingState::submit(RingOp kind, Token token) noexcept {
  // Room for this operation's completion in the backlog, taken now so that
  // completing can never fail for want of memory.
  if (!backlog_.reserve(in_flight_ + 1)) return std::make_error_code(std::errc::not_enough_memory);
  auto i = ops_.allocate();
  if (!i) return i.error();
  OpRecord& op = ops_[*i];
  op.token = token;
  op.kind = kind;
  op.seq = next_seq_++;
  if (indexed_) {
    if (auto ec = index_.insert(ops_, *i)) {
      ops_.release(*i);
      return ec;
    }
  }
  op.state = OpState::queued;
  if (submit_tail_ == no_op)
    submit_head_ = *i;
  else
    ops_[submit_tail_].next = *i;
  submit_tail_ = *i;
  ++in_flight_;
  return &op;
}

// Every operation not yet completed and not cancelled, inserted oldest first
// so that each token's list runs newest to oldest, as if indexed all along.
std::error_code RingState::build_index() noexcept {
  std::vector<OpIndex> live;
  try {
    live.reserve(in_flight_);
    for (OpIndex i = 0; i < ops_.extent(); ++i)
      if (ops_[i].state != OpState::free && !ops_[i].cancel_requested) live.push_back(i);
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  std::sort(live.begin(), live.end(), [&](OpIndex a, OpIndex b) { return ops_[a].seq < ops_[b].seq; });
  for (const OpIndex i : live) {
    if (auto ec = index_.insert(ops_, i)) {
      index_.clear();
      return ec;
    }
  }
  indexed_ = true;
  return {};
}

std::error_code RingState::cancel(Token token) noexcept {
  if (!indexed_) {
    if (auto ec = build_index()) return ec;
  }
  const OpIndex newest = index_.find(token);
  if (newest == no_op) return ring_errc::unknown_token;
  OpIndex oldest = newest;
  while (ops_[oldest].token_next != no_op) oldest = ops_[oldest].token_next;
  index_.erase_key(token);
  for (OpIndex i = oldest; i != no_op;) {
    OpRecord& op = ops_[i];
    const OpIndex newer = op.token_prev;
    op.token_prev = op.token_next = no_op;
    op.cancel_requested = true;
    // A queued one completes in drain_submissions without reaching the engine.
    if (op.state == OpState::in_engine) {
      if (cancel_tail_ == no_op)
        cancel_head_ = i;
      else
        ops_[cancel_tail_].next = i;
      cancel_tail_ = i;
    }
    i = newer;
  }
  return {};
}

void RingState::begin_wait(Completions& out) noexcept {
  out.clear();
  out_ = &out;
  while (!backlog_.empty() && out.size_ < out.capacity_) {
    out.items_[out.size_++] = std::move(backlog_.front());
    backlog_.pop();
    --in_flight_;
  }
}

Completion& RingState::slot() noexcept {
  if (out_ && out_->size_ < out_->capacity_ && backlog_.empty()) {
    --in_flight_;
    return out_->items_[out_->size_++];
  }
  return backlog_.push();
}

void RingState::complete(OpIndex i, std::error_code error, std::size_t bytes) noexcept {
  OpRecord& op = ops_[i];
  assert(op.state == OpState::in_engine);
  if (indexed_ && !op.cancel_requested) index_.erase(ops_, i);
  // Every field but peer_ is written: slots are reused without being reset.
  Completion& c = slot();
  c.token_ = op.token;
  c.op_ = op.kind;
  if (error) {
    assert(!op.buffer);
    c.code_ = error.value();
    c.category_ = &error.category();
    c.bytes_ = 0;
  } else {
    c.code_ = 0;
    c.category_ = nullptr;
    c.bytes_ = bytes;
  }
  c.buffer_ = op.buffer;
  c.buffer_id_ = op.buffer_id;
  // peer() is unspecified for the other operations (ring.hpp): not written.
  if (op.kind == RingOp::accept || op.kind == RingOp::connect || op.kind == RingOp::recv_from) c.peer_ = op.addr;
  if (op.stream) c.stream_.emplace(std::move(*op.stream));
  ops_.release(i);
}

void RingState::emit_wake(Token token) noexcept {
  assert(!output_full());
  Completion& c = out_->items_[out_->size_++];
  c.token_ = token;
  c.op_ = RingOp::wake;
  c.code_ = 0;
  c.category_ = nullptr;
  c.bytes_ = 0;
  c.buffer_ = nullptr;
  c.buffer_id_ = 0;
  c.peer_ = SocketAddr{};
}

void RingState::discard(OpIndex i) noexcept {
  OpRecord& op = ops_[i];
  assert(!op.buffer);
  if (indexed_ && !op.cancel_requested) index_.erase(ops_, i);
  ops_.release(i);
  --in_flight_;
}

void RingState::discard_undelivered() noexcept {
  drain_submissions([&](OpIndex i) { discard(i); });
  // drain_submissions completed the cancelled ones into the backlog (out_ is
  // null outside wait()): they go with the rest. Pool buffers they hold stay
  // lent: pools may already be gone (ring.hpp), and are of no use without
  // their Ring anyway.
  while (!backlog_.empty()) {
    backlog_.pop();
    --in_flight_;
  }
  cancel_head_ = cancel_tail_ = no_op;
}

bool RingState::Backlog::grow(std::size_t n) noexcept {
  std::size_t cap = capacity_ ? capacity_ : 64;
  while (cap < n) cap *= 2;
  std::unique_ptr<Completion[]> items(new (std::nothrow) Completion[cap]);
  if (!items) return false;
  for (std::size_t k = 0; k < size_; ++k) items[k] = std::move(items_[(head_ + k) & (capacity_ - 1)]);
  items_ = std::move(items);
  capacity_ = cap;
  head_ = 0;
  return true;
}

Completion& RingState::Backlog::push() noexcept {
  assert(size_ < capacity_);
  Completion& c = items_[(head_ + size_) & (capacity_ - 1)];
  ++size_;
  return c;
}

}  // namespace evq::detail
