// src/core/ring_pool.hpp: the state behind a BufferPool.
//
// One block of count * buffer_size bytes and a stack of free buffer ids. The
// stack is LIFO on purpose: the buffer released last is the one most likely
// still in cache when the next recv takes one. Engines take a buffer when
// data is there to receive and give it back when the receive would block, so
// a recv waiting for data holds none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace evq::detail {

struct PoolState {
  std::unique_ptr<std::byte[]> memory;
  std::size_t buffer_size = 0;
  std::uint32_t count = 0;
  std::vector<std::uint32_t> free_ids;  // reserved to `count`: pushes never allocate
  std::vector<std::uint8_t> lent;  // 1 while a completion holds the buffer
  // For native engines: e.g. the io_uring buffer group this pool is
  // registered as, 0 while not registered. The emulation does not use it.
  std::uint32_t engine_tag = 0;
  // Native engines: buffers handed to the kernel (an io_uring buffer ring),
  // free but no longer in free_ids. The emulation leaves it 0.
  std::uint32_t provided = 0;

  std::uint32_t available() const noexcept { return static_cast<std::uint32_t>(free_ids.size()) + provided; }

  std::byte* data(std::uint32_t id) const noexcept { return memory.get() + std::size_t{id} * buffer_size; }

  // A free buffer, or false when every one is lent out.
  bool take(std::uint32_t& id) noexcept {
    if (free_ids.empty()) return false;
    id = free_ids.back();
    free_ids.pop_back();
    lent[id] = 1;
    return true;
  }

  // A buffer taken and not kept (the receive would block, or read nothing).
  void give_back(std::uint32_t id) noexcept {
    lent[id] = 0;
    free_ids.push_back(id);
  }
};

}  // namespace evq::detail
