// Windows error numbers as std::error_code: the Windows counterpart of
// core/syscall.hpp, used by the IOCP selector and the Windows net layer.
//
// Win32 (ERROR_*) and Winsock (WSAE*) codes share one number space, so one
// category holds both. Its default_error_condition maps them to std::errc, so
// that a caller writes `ec == std::errc::operation_would_block` (or
// connection_reset, connection_refused, timed_out, ...) on Windows exactly as
// on Linux (API.md, "Results and errors"). No Windows header is needed here.
#pragma once

#include <system_error>

namespace evq::detail {

const std::error_category& windows_category() noexcept;

// A Win32 or Winsock error number.
inline std::error_code windows_error(unsigned long code) noexcept {
  return {static_cast<int>(code), windows_category()};
}

// GetLastError() / WSAGetLastError() as an error_code.
std::error_code last_windows_error() noexcept;
std::error_code last_wsa_error() noexcept;

// An NTSTATUS (from the NT API the AFD poll uses) as the Win32 error the
// system maps it to (RtlNtStatusToDosError).
std::error_code nt_error(long status) noexcept;

}  // namespace evq::detail
