// evq/platform.hpp: the one place public headers look at the OS.
#pragma once

#include <cstdint>

#if defined(_WIN32)
#define EVQ_WINDOWS 1
#else
#define EVQ_POSIX 1
#endif

namespace evq {

#if EVQ_WINDOWS
using NativeHandle = std::uintptr_t;  // a SOCKET
inline constexpr NativeHandle invalid_handle = ~NativeHandle{0};
#else
using NativeHandle = int;  // a file descriptor
inline constexpr NativeHandle invalid_handle = -1;
#endif

}  // namespace evq
