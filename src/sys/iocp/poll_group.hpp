// AFD helper handles, shared by up to 32 sockets each.
//
// Every poll request travels on a helper handle (afd.hpp). One handle per
// socket would double the handles a server holds; one handle for all sockets
// makes the driver walk one long list of pending requests on every
// completion and cancellation. wepoll settled on 32 sockets per handle and
// mio followed; evq takes the same figure.
//
// Not thread-safe: the selector calls it under its mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <system_error>
#include <vector>

#include "evq/result.hpp"
#include "sys/iocp/win32.hpp"

namespace evq::detail {

class PollGroups {
 public:
  static constexpr std::uint32_t max_sockets_per_group = 32;

  struct Group {
    HANDLE helper = nullptr;
    std::uint32_t sockets = 0;  // registrations that hold this group
    bool has_room_listed = false;
  };

  explicit PollGroups(HANDLE port) noexcept : port_(port) {}
  PollGroups(const PollGroups&) = delete;
  PollGroups& operator=(const PollGroups&) = delete;
  // Closes every helper handle: only once no poll on them is in flight
  // (a closed handle cancels its polls, and their completions would write
  // into freed socket state).
  ~PollGroups();

  // A group with room, opening a new helper handle when all are full.
  Result<Group*> acquire();
  // The socket's state is freed (no poll of it in flight any more). Groups
  // stay open, empty or not, until the selector closes: reopening \Device\Afd
  // costs a system call and a kernel object each time a server's connection
  // count dips and rises again.
  void release(Group* group) noexcept;

 private:
  HANDLE port_;
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<Group*> with_room_;  // each group with room at most once
};

}  // namespace evq::detail
