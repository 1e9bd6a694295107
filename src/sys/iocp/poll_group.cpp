#include "sys/iocp/poll_group.hpp"

#include "sys/iocp/afd.hpp"

namespace evq::detail {

PollGroups::~PollGroups() {
  for (const auto& g : groups_) ::CloseHandle(g->helper);
}

Result<PollGroups::Group*> PollGroups::acquire() {
  // Groups that filled up since they were listed are dropped lazily here.
  while (!with_room_.empty() && with_room_.back()->sockets >= max_sockets_per_group) {
    with_room_.back()->has_room_listed = false;
    with_room_.pop_back();
  }
  if (with_room_.empty()) {
    HANDLE helper = nullptr;
    if (auto ec = afd::open_helper(port_, helper)) return ec;
    auto group = std::make_unique<Group>();
    group->helper = helper;
    group->has_room_listed = true;
    groups_.push_back(std::move(group));
    // A group is listed at most once, so with this capacity release() never
    // allocates (it is noexcept).
    with_room_.reserve(groups_.size());
    with_room_.push_back(groups_.back().get());
  }
  Group* g = with_room_.back();
  ++g->sockets;
  return g;
}

void PollGroups::release(Group* group) noexcept {
  --group->sockets;
  if (!group->has_room_listed) {
    group->has_room_listed = true;
    with_room_.push_back(group);
  }
}

}  // namespace evq::detail
