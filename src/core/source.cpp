#include "evq/source.hpp"

#include "core/core.hpp"
#include "sys/native_handle.hpp"

namespace evq {

void Source::close() noexcept {
  if (link_.core) link_.core->detach(*this);
  if (owning_ && handle_ != invalid_handle) detail::close_native(handle_);
  handle_ = invalid_handle;
}

void Source::rearm(Interest direction) noexcept {
  link_.core->rearm(link_.slot, link_.generation, handle_, direction);
}

}  // namespace evq
