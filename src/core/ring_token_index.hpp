// src/core/ring_token_index.hpp: from a Token to the operations in flight
// with it, for Ring::cancel.
//
// Tokens are the user's and need not be unique (one per connection, shared
// by its read and its write, is common), so each key leads to a list of
// operations threaded through OpRecord::token_prev/token_next. The map is
// open addressing with linear probing and backward-shift deletion (no
// tombstones, so probe lengths stay short under churn), Fibonacci hashing
// (tokens are often small consecutive integers). It grows when half full and
// never shrinks: in steady state insert and erase allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <system_error>
#include <vector>

#include "core/ring_op.hpp"

namespace evq::detail {

class TokenIndex {
 public:
  // The newest operation with `token`, or no_op. Older ones follow token_next.
  OpIndex find(Token token) const noexcept {
    if (slots_.empty()) return no_op;
    const std::uint64_t key = static_cast<std::uint64_t>(token);
    for (std::size_t i = home(key);; i = (i + 1) & mask()) {
      if (slots_[i].head == no_op) return no_op;
      if (slots_[i].key == key) return slots_[i].head;
    }
  }

  // Links record `i` (its token set) in front of its token's list.
  std::error_code insert(OpTable& ops, OpIndex i) noexcept {
    if ((used_ + 1) * 2 > slots_.size() && !grow()) return std::make_error_code(std::errc::not_enough_memory);
    const std::uint64_t key = static_cast<std::uint64_t>(ops[i].token);
    std::size_t s = home(key);
    while (slots_[s].head != no_op && slots_[s].key != key) s = (s + 1) & mask();
    OpRecord& op = ops[i];
    op.token_prev = no_op;
    if (slots_[s].head == no_op) {
      slots_[s] = Slot{key, i};
      op.token_next = no_op;
      ++used_;
    } else {
      op.token_next = slots_[s].head;
      ops[slots_[s].head].token_prev = i;
      slots_[s].head = i;
    }
    return {};
  }

  // Unlinks record `i`; the key goes when its list empties.
  void erase(OpTable& ops, OpIndex i) noexcept {
    OpRecord& op = ops[i];
    if (op.token_next != no_op) ops[op.token_next].token_prev = op.token_prev;
    if (op.token_prev != no_op) {
      ops[op.token_prev].token_next = op.token_next;
    } else {
      const std::size_t s = position(static_cast<std::uint64_t>(op.token));
      if (op.token_next != no_op)
        slots_[s].head = op.token_next;
      else
        remove_at(s);
    }
    op.token_prev = op.token_next = no_op;
  }

  // Forgets every key; keeps the memory.
  void clear() noexcept {
    for (Slot& s : slots_) s.head = no_op;
    used_ = 0;
  }

  // Drops `token` and its whole list (the records' links are the caller's).
  void erase_key(Token token) noexcept { remove_at(position(static_cast<std::uint64_t>(token))); }

 private:
  struct Slot {
    std::uint64_t key;
    OpIndex head;  // no_op: empty slot
  };

  std::size_t mask() const noexcept { return slots_.size() - 1; }
  std::size_t home(std::uint64_t key) const noexcept {
    return static_cast<std::size_t>((key * 0x9E37'79B9'7F4A'7C15ull) >> shift_);
  }
  // The slot of a key that is present.
  std::size_t position(std::uint64_t key) const noexcept {
    std::size_t s = home(key);
    while (slots_[s].key != key || slots_[s].head == no_op) s = (s + 1) & mask();
    return s;
  }

  // Knuth's algorithm R: pull later members of the probe run back over the
  // hole unless their home lies cyclically in (hole, j].
  void remove_at(std::size_t hole) noexcept {
    std::size_t j = hole;
    for (;;) {
      j = (j + 1) & mask();
      if (slots_[j].head == no_op) break;
      const std::size_t k = home(slots_[j].key);
      const bool stays = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
      if (stays) continue;
      slots_[hole] = slots_[j];
      hole = j;
    }
    slots_[hole].head = no_op;
    --used_;
  }

  bool grow() noexcept {
    const std::size_t n = slots_.empty() ? 64 : slots_.size() * 2;
    std::vector<Slot> old;
    try {
      old = std::move(slots_);
      slots_.assign(n, Slot{0, no_op});
    } catch (...) {
      slots_ = std::move(old);
      return false;
    }
    unsigned bits = 0;
    while ((std::size_t{1} << bits) < n) ++bits;
    shift_ = 64 - bits;
    for (const Slot& e : old) {
      if (e.head == no_op) continue;
      std::size_t s = home(e.key);
      while (slots_[s].head != no_op) s = (s + 1) & mask();
      slots_[s] = e;
    }
    return true;
  }

  std::vector<Slot> slots_;
  std::size_t used_ = 0;
  unsigned shift_ = 64;
};

}  // namespace evq::detail
