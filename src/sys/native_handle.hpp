// Native handles: the only OS differences the core itself needs.
#pragma once

#include "evq/platform.hpp"

#if EVQ_WINDOWS
#include <winsock2.h>
#else
#include <unistd.h>
#endif

namespace evq::detail {

inline bool is_valid_handle(NativeHandle h) noexcept {
#if EVQ_WINDOWS
  return h != invalid_handle;
#else
  return h >= 0;  // -1 and every other negative number: not a descriptor
#endif
}

inline void close_native(NativeHandle h) noexcept {
#if EVQ_WINDOWS
  ::closesocket(h);
#else
  // On Linux the descriptor is released even when close() reports EINTR;
  // retrying could close a descriptor another thread just opened.
  ::close(h);
#endif
}

}  // namespace evq::detail
