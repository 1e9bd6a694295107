// Registrations: the per-source state the core keeps, in a table whose slots
// never move, so the polling thread reads them without a lock while other
// threads add and remove.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
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
  std::atomic<std::uint16_t> generation{1};  // wraps; see make_user_data
  std::atomic<RegKind> kind{RegKind::io};
  std::atomic<bool> waker_pending{false};
  std::atomic<std::uint64_t> token{0};
  NativeHandle handle = invalid_handle;  // only touched under the core's mutex
};

// The kernel's user data for a registration: the address of its Registration
// (user-space addresses fit in 47 bits on every 64-bit OS evq supports, and
// slots never move), bit 47 set for a waker, and the low 16 bits of the
// generation in bits 48..63. Turning user data into a registration is one
// mask, and no table lookup: this runs once per event (callgrind-checked).
// A stale event would have to survive 65,536 reuses of its slot within one
// batch to be mistaken for a live one.
inline constexpr std::uint64_t kAddressMask = (std::uint64_t{1} << 47) - 1;
inline constexpr std::uint64_t kWakerBit = std::uint64_t{1} << 47;
inline constexpr unsigned kGenerationShift = 48;

inline std::uint64_t make_user_data(const Registration& r, std::uint16_t generation) noexcept {
  return reinterpret_cast<std::uintptr_t>(&r) |
         (r.kind.load(std::memory_order_relaxed) == RegKind::waker ? kWakerBit : 0) |
         (std::uint64_t{generation} << kGenerationShift);
}

// Never matches: its generation stays 1 while internal_user_data says 0.
// Backends give this user data to their internal wake-up, whose events are
// then dropped with the stale ones, at no extra cost.
inline Registration internal_registration;
inline const std::uint64_t internal_user_data = make_user_data(internal_registration, 0);

// The registration behind live user data, or null when stale (removed since)
// or internal. `waker` tells whether the poller must clear waker_pending.
inline Registration& registration_of(std::uint64_t data) noexcept {
  return *reinterpret_cast<Registration*>(static_cast<std::uintptr_t>(data & kAddressMask));
}
inline bool is_current(const Registration& r, std::uint64_t data) noexcept {
  return r.generation.load(std::memory_order_acquire) == (data >> kGenerationShift);
}
inline Registration* resolve_user_data(std::uint64_t data) noexcept {
  Registration& r = registration_of(data);
  return is_current(r, data) ? &r : nullptr;
}

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
  Registration* resolve(std::uint64_t data) const noexcept { return resolve_user_data(data); }

  // The user data of a slot's current registration.
  std::uint64_t user_data(std::uint32_t slot) const noexcept {
    const Registration& r = at(slot);
    return make_user_data(r, r.generation.load(std::memory_order_relaxed));
  }

  // Under the core's mutex.
  Result<std::uint32_t> allocate() {
    if (!free_.empty()) {
      const std::uint32_t s = free_.back();
      free_.pop_back();
      return s;
    }
    if (next_ == 0) next_ = 1;  // slot 0 stays unused: 0 is "no slot" in lookups
    if ((next_ >> chunk_bits) >= max_chunks || !ensure_chunk(next_ >> chunk_bits))
      return std::make_error_code(std::errc::not_enough_memory);
    return next_++;
  }
  // Under the core's mutex, after the fields are set and before the kernel
  // learns the user data: orders the field stores before the poller's
  // acquire load of the generation.
  static std::uint64_t publish(std::uint32_t slot, Registration& r) noexcept {
    (void)slot;
    const std::uint16_t g = r.generation.load(std::memory_order_relaxed);
    r.generation.store(g, std::memory_order_release);
    return make_user_data(r, g);
  }

  // Under the core's mutex. Bumps the generation so that user data still in
  // the kernel or in a poller's hands no longer resolves.
  void release(std::uint32_t slot) {
    Registration& r = at(slot);
    r.generation.store(static_cast<std::uint16_t>(r.generation.load(std::memory_order_relaxed) + 1),
                       std::memory_order_release);
    r.handle = invalid_handle;
    r.kind.store(RegKind::io, std::memory_order_relaxed);
    free_.push_back(slot);
  }

 private:
  bool ensure_chunk(std::uint32_t c) {
    if (chunks_[c].load(std::memory_order_relaxed)) return true;
    auto* chunk = new (std::nothrow) Registration[chunk_size];
    // User data carries the address in 47 bits (see make_user_data).
    if (!chunk || reinterpret_cast<std::uintptr_t>(chunk + chunk_size) > kAddressMask) {
      delete[] chunk;
      return false;
    }
    chunks_[c].store(chunk, std::memory_order_release);
    return true;
  }

  std::atomic<Registration*> chunks_[max_chunks] = {};
  std::vector<std::uint32_t> free_;
  std::uint32_t next_ = 0;
};

}  // namespace evq::detail
