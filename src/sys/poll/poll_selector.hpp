// poll(2): the portable O(n) fallback. Level is native; oneshot and edge are
// emulated here by disarming a registration's directions once reported. Edge
// re-arms a direction when evq's socket saw would-block (rearm()); a raw
// SourceFd cannot do that, so the core refuses edge for it on this backend.
#pragma once

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <vector>

#include "core/registration.hpp"
#include "evq/event.hpp"
#include "evq/result.hpp"

namespace evq::detail {

using TimeoutNs = std::int64_t;

class PollSelector {
 public:
  static constexpr bool native_edge = false;

  static Result<PollSelector> open();
  PollSelector(PollSelector&& other) noexcept;
  PollSelector& operator=(PollSelector&&) = delete;
  ~PollSelector();

  std::error_code add(int fd, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code modify(int fd, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code remove(int fd, std::uint64_t data);
  void rearm(int fd, std::uint64_t data, Interest interest);
  std::error_code select(Event* out, std::size_t capacity, const RegistrationTable& table,
                         TimeoutNs timeout, std::size_t& n);
  std::error_code wake();
  Result<int> add_waker(std::uint64_t data);
  std::error_code notify_waker(int fd);
  void remove_waker(int fd, std::uint64_t data);

 private:
  struct Entry {
    int fd;
    int waker_write_fd;   // -1 unless a user waker (fd is then its read end)
    short armed;          // what poll(2) is asked for now
    short wanted;         // what the user registered
    Trigger trigger;
    std::uint64_t data;
  };

  PollSelector(int wake_read, int wake_write) noexcept;
  Entry* find(int fd) noexcept;            // under mu_
  void changed_locked();                   // under mu_: rebuild before next poll; wake a poller
  void erase_locked(int fd);

  std::mutex mu_;
  std::vector<Entry> entries_;             // guarded by mu_
  std::vector<std::int32_t> index_by_fd_;  // fd -> position in entries_ + 1; guarded by mu_
  bool dirty_ = true;                      // guarded by mu_
  bool polling_ = false;                   // guarded by mu_
  // The poller's own copy, rebuilt when dirty_. fds_[0] is the wake-up pipe.
  std::vector<pollfd> fds_;
  std::vector<std::uint64_t> fd_data_;
  int wake_read_ = -1;
  int wake_write_ = -1;
};

}  // namespace evq::detail
