// Winsock's one-time start-up, shared by the selector (which asks sockets for
// their base handle) and the Windows net layer (which creates them).
#pragma once

#include <system_error>

namespace evq::detail {

// Calls WSAStartup(2.2) the first time, from whichever thread comes first;
// later calls return its result without a system call. WSACleanup is never
// called: sockets may outlive any owner evq could tie it to (static objects,
// other libraries), and the process's exit releases Winsock anyway.
std::error_code ensure_winsock() noexcept;

}  // namespace evq::detail
