// Registrations: the per-source state the core keeps, in a table whose slots
// never move, so the polling thread reads them without a lock while other
// threads add and remove.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "evq/event.hpp"
#include "evq/platform.hpp"
#include "evq/result.hpp"

namespace evq::detail {

enum class RegKind : std::uint8_t { io, waker };

// Everything the polling thread reads is atomic: writers (any thread, under
// the core's mutex) store the fields, then publish with a release store of
// `generation`; the poller loads `generation` with acquire and compares it
// with the generation carried in the kernel's user data.
struct Registration {
  std::atomic<std::uint32_t> generation{1};
  std::atomic<RegKind> kind{RegKind::io};
  std::atomic<bool> waker_pending{false};
  std::atomic<std::uint64_t> token{0};
  NativeHandle handle = invalid_handle;  // only touched under the core's mutex
};

// The kernel's user data for a registration: slot in the low half, generation
// in the high half. Slot 0 is reserved and its generation is never 0, so data
// 0 never matches a registration: backends give it to their internal wake-up
// descriptor, whose events are then dropped with the stale ones for free.
inline constexpr std::uint64_t make_user_data(std::uint32_t slot, std::uint32_t gen) noexcept {
  return (std::uint64_t{gen} << 32) | slot;
}
inline constexpr std::uint64_t internal_user_data = 0;

class RegistrationTable {
 public:
  static constexpr unsigned chunk_bits = 12;  // 4096 slots per chunk
  static constexpr std::uint32_t chunk_size = 1u << chunk_bits;
  static constexpr std::uint32_t max_chunks = 4096;  // 16M registrations

  RegistrationTable() = default;
  RegistrationTable(const RegistrationTable&) = delete;
  RegistrationTable& operator=(const RegistrationTable&) = delete;
  ~RegistrationTable() {
    for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
  }

  // Lock-free; `slot` must have been allocated at some point (slots are never
  // freed back to the OS, so any slot seen in user data stays readable).
  Registration& at(std::uint32_t slot) const noexcept {
    return chunks_[slot >> chunk_bits].load(std::memory_order_acquire)[slot & (chunk_size - 1)];
  }

  // Returns the registration for user data from the kernel, or nullptr when
  // its generation no longer matches (removed since, or internal).
  Registration* resolve(std::uint64_t data) const noexcept {
    Registration& r = at(static_cast<std::uint32_t>(data));
    if (r.generation.load(std::memory_order_acquire) != static_cast<std::uint32_t>(data >> 32))
      return nullptr;
    return &r;
  }

  // Under the core's mutex.
  Result<std::uint32_t> allocate() {
    if (!free_.empty()) {
      const std::uint32_t s = free_.back();
      free_.pop_back();
      return s;
    }
    if (next_ == 0) ensure_chunk(0), next_ = 1;  // slot 0 stays reserved
    if ((next_ >> chunk_bits) >= max_chunks) return std::make_error_code(std::errc::not_enough_memory);
    ensure_chunk(next_ >> chunk_bits);
    return next_++;
  }
  // Under the core's mutex, after the fields are set and before the kernel
  // learns the user data: orders the field stores before the poller's
  // acquire load of the generation.
  static std::uint64_t publish(std::uint32_t slot, Registration& r) noexcept {
    const std::uint32_t g = r.generation.load(std::memory_order_relaxed);
    r.generation.store(g, std::memory_order_release);
    return make_user_data(slot, g);
  }

  // Under the core's mutex. Bumps the generation so that user data still in
  // the kernel or in a poller's hands no longer resolves.
  void release(std::uint32_t slot) {
    Registration& r = at(slot);
    std::uint32_t g = r.generation.load(std::memory_order_relaxed) + 1;
    if (g == 0) g = 1;
    r.generation.store(g, std::memory_order_release);
    r.handle = invalid_handle;
    r.kind.store(RegKind::io, std::memory_order_relaxed);
    free_.push_back(slot);
  }

 private:
  void ensure_chunk(std::uint32_t c) {
    if (chunks_[c].load(std::memory_order_relaxed)) return;
    chunks_[c].store(new Registration[chunk_size], std::memory_order_release);
  }

  std::atomic<Registration*> chunks_[max_chunks] = {};
  std::vector<std::uint32_t> free_;
  std::uint32_t next_ = 0;
};

}  // namespace evq::detail
