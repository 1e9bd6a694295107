// Linux epoll(7): native edge (EPOLLET), level and oneshot (EPOLLONESHOT).
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>

#include "core/registration.hpp"
#include "evq/event.hpp"
#include "evq/result.hpp"

namespace evq::detail {

using TimeoutNs = std::int64_t;

class EpollSelector {
 public:
  static constexpr bool native_edge = true;

  static Result<EpollSelector> open();
  EpollSelector(EpollSelector&& other) noexcept;
  EpollSelector& operator=(EpollSelector&&) = delete;
  ~EpollSelector();

  std::error_code add(int fd, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code modify(int fd, std::uint64_t data, Interest interest, Trigger trigger);
  std::error_code remove(int fd, std::uint64_t data);
  void rearm(int, std::uint64_t, Interest) {}  // edge is native: nothing to re-arm
  std::error_code select(Event* out, std::size_t capacity, const RegistrationTable& table,
                         TimeoutNs timeout, std::size_t& n);
  std::error_code wake();
  Result<int> add_waker(std::uint64_t data);
  std::error_code notify_waker(int fd);
  void remove_waker(int fd, std::uint64_t data);

 private:
  EpollSelector(int epfd, int wakefd) noexcept : epfd_(epfd), wakefd_(wakefd) {}
  int wait(int capacity, TimeoutNs timeout);

  int epfd_ = -1;
  int wakefd_ = -1;  // internal wake-up: registered with internal_user_data
  bool have_pwait2_ = true;
  std::unique_ptr<epoll_event[]> kernel_events_;
  std::size_t kernel_capacity_ = 0;
};

}  // namespace evq::detail
