#include "sys/iocp/windows_error.hpp"

#include <string>

#include "sys/iocp/win32.hpp"

namespace evq::detail {
namespace {

// Each Windows error a socket or the selector can raise: the portable
// condition it compares equal to, and a text for when the system has none
// (Wine's message tables lack the Winsock ones). Where Windows and Linux name
// one situation differently, the condition is what a Linux program would see
// in the same situation.
struct Known {
  int code;
  std::errc condition;
  const char* text;
};

constexpr Known known_errors[] = {
    // Winsock ("Windows Sockets Error Codes" in the Winsock reference).
    {WSAEWOULDBLOCK, std::errc::operation_would_block, "operation would block"},
    {WSAEINPROGRESS, std::errc::operation_in_progress, "operation in progress"},
    {WSAEALREADY, std::errc::connection_already_in_progress, "operation already in progress"},
    // A SOCKET value that names no open socket (closed, moved from, never
    // opened) is WSAENOTSOCK: the situation POSIX reports as EBADF.
    {WSAENOTSOCK, std::errc::bad_file_descriptor, "not a socket (closed or never opened)"},
    {WSAEBADF, std::errc::bad_file_descriptor, "bad file descriptor"},
    {WSAEDESTADDRREQ, std::errc::destination_address_required, "destination address required"},
    {WSAEMSGSIZE, std::errc::message_size, "message too long"},
    {WSAEPROTOTYPE, std::errc::wrong_protocol_type, "protocol wrong type for socket"},
    {WSAENOPROTOOPT, std::errc::no_protocol_option, "protocol not available"},
    {WSAEPROTONOSUPPORT, std::errc::protocol_not_supported, "protocol not supported"},
    {WSAESOCKTNOSUPPORT, std::errc::protocol_not_supported, "socket type not supported"},
    {WSAEOPNOTSUPP, std::errc::operation_not_supported, "operation not supported"},
    {WSAEPFNOSUPPORT, std::errc::address_family_not_supported, "protocol family not supported"},
    {WSAEAFNOSUPPORT, std::errc::address_family_not_supported, "address family not supported"},
    {WSAEADDRINUSE, std::errc::address_in_use, "address already in use"},
    {WSAEADDRNOTAVAIL, std::errc::address_not_available, "cannot assign requested address"},
    {WSAENETDOWN, std::errc::network_down, "network is down"},
    {WSAENETUNREACH, std::errc::network_unreachable, "network is unreachable"},
    {WSAENETRESET, std::errc::network_reset, "network dropped connection on reset"},
    {WSAECONNABORTED, std::errc::connection_aborted, "connection aborted"},
    {WSAECONNRESET, std::errc::connection_reset, "connection reset by peer"},
    {WSAENOBUFS, std::errc::no_buffer_space, "no buffer space available"},
    {WSAEISCONN, std::errc::already_connected, "socket is already connected"},
    {WSAENOTCONN, std::errc::not_connected, "socket is not connected"},
    // Sending after shutdown(SD_SEND): Linux says EPIPE.
    {WSAESHUTDOWN, std::errc::broken_pipe, "cannot send after socket shutdown"},
    {WSAETIMEDOUT, std::errc::timed_out, "connection timed out"},
    {WSAECONNREFUSED, std::errc::connection_refused, "connection refused"},
    {WSAELOOP, std::errc::too_many_symbolic_link_levels, "too many levels of symbolic links"},
    {WSAENAMETOOLONG, std::errc::filename_too_long, "name too long"},
    {WSAEHOSTDOWN, std::errc::host_unreachable, "host is down"},
    {WSAEHOSTUNREACH, std::errc::host_unreachable, "no route to host"},
    {WSAEMFILE, std::errc::too_many_files_open, "too many open sockets"},
    {WSAEACCES, std::errc::permission_denied, "permission denied"},
    {WSAEFAULT, std::errc::bad_address, "bad address"},
    {WSAEINVAL, std::errc::invalid_argument, "invalid argument"},
    {WSAEINTR, std::errc::interrupted, "interrupted function call"},
    // Win32 (the selector's calls, and overlapped socket operations).
    {ERROR_FILE_NOT_FOUND, std::errc::no_such_file_or_directory, "file not found"},
    {ERROR_PATH_NOT_FOUND, std::errc::no_such_file_or_directory, "path not found"},
    {ERROR_TOO_MANY_OPEN_FILES, std::errc::too_many_files_open, "too many open files"},
    {ERROR_ACCESS_DENIED, std::errc::permission_denied, "access denied"},
    {ERROR_INVALID_HANDLE, std::errc::bad_file_descriptor, "invalid handle"},
    {ERROR_NOT_ENOUGH_MEMORY, std::errc::not_enough_memory, "not enough memory"},
    {ERROR_OUTOFMEMORY, std::errc::not_enough_memory, "out of memory"},
    {ERROR_NO_SYSTEM_RESOURCES, std::errc::not_enough_memory, "insufficient system resources"},
    {ERROR_NOT_SUPPORTED, std::errc::not_supported, "request not supported"},
    {ERROR_INVALID_PARAMETER, std::errc::invalid_argument, "invalid parameter"},
    {ERROR_BROKEN_PIPE, std::errc::broken_pipe, "broken pipe"},
    {ERROR_NETNAME_DELETED, std::errc::connection_reset, "network name no longer available"},
    {ERROR_CONNECTION_REFUSED, std::errc::connection_refused, "connection refused"},
    {ERROR_CONNECTION_ABORTED, std::errc::connection_aborted, "connection aborted"},
    {ERROR_OPERATION_ABORTED, std::errc::operation_canceled, "operation aborted"},
    {ERROR_IO_PENDING, std::errc::operation_in_progress, "overlapped I/O in progress"},
    {ERROR_SEM_TIMEOUT, std::errc::timed_out, "timed out"},
    {WAIT_TIMEOUT, std::errc::timed_out, "wait timed out"},
    {ERROR_TIMEOUT, std::errc::timed_out, "timed out"},
};

// A cold path (messages, comparisons with std::errc): a linear scan.
const Known* find_known(int code) noexcept {
  for (const Known& k : known_errors)
    if (k.code == code) return &k;
  return nullptr;
}

class WindowsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "windows"; }

  std::string message(int code) const override {
    // Language 0: the user's language, falling back as the system does.
    char* text = nullptr;
    const DWORD n = ::FormatMessageA(
        FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
        nullptr, static_cast<DWORD>(code), 0,
        reinterpret_cast<char*>(&text), 0, nullptr);
    std::string s;
    if (n && text) {
      s.assign(text, n);
      // FormatMessage ends its text with ".\r\n".
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    }
    if (text) ::LocalFree(text);
    if (s.empty()) {
      const Known* k = find_known(code);
      s = k ? k->text : "Windows error";
      s += " (" + std::to_string(code) + ")";
    }
    return s;
  }

  std::error_condition default_error_condition(int code) const noexcept override {
    if (const Known* k = find_known(code)) return std::make_error_condition(k->condition);
    return {code, *this};
  }
};

}  // namespace

const std::error_category& windows_category() noexcept {
  static const WindowsCategory category;
  return category;
}

std::error_code last_windows_error() noexcept { return windows_error(::GetLastError()); }

std::error_code last_wsa_error() noexcept {
  return windows_error(static_cast<unsigned long>(::WSAGetLastError()));
}

std::error_code nt_error(long status) noexcept {
  return windows_error(::RtlNtStatusToDosError(static_cast<NTSTATUS>(status)));
}

}  // namespace evq::detail
