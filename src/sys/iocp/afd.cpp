#include "sys/iocp/afd.hpp"

#include <cstdint>

#include "sys/iocp/windows_error.hpp"

// ntdll exports it since Vista; MinGW's winternl.h does not declare it.
extern "C" NTSTATUS NTAPI NtCancelIoFileEx(HANDLE file, PIO_STATUS_BLOCK request,
                                           PIO_STATUS_BLOCK status);

namespace evq::detail::afd {

std::error_code open_helper(HANDLE port, HANDLE& helper) noexcept {
  // Any name below \Device\Afd opens the driver, but the path needs a last
  // component; it shows in handle listings, so it names its owner.
  wchar_t path[] = L"\\Device\\Afd\\Evq";
  UNICODE_STRING name;
  name.Buffer = path;
  name.Length = static_cast<USHORT>((sizeof path) - sizeof(wchar_t));
  name.MaximumLength = static_cast<USHORT>(sizeof path);
  OBJECT_ATTRIBUTES attributes;
  InitializeObjectAttributes(&attributes, &name, 0, nullptr, nullptr);

  // No extended attributes: AFD then creates no endpoint, so the handle is a
  // plain channel to the driver and not a socket. SYNCHRONIZE and no
  // FILE_SYNCHRONOUS_IO_* option: the handle is asynchronous.
  HANDLE h = nullptr;
  IO_STATUS_BLOCK iosb{};
  const NTSTATUS status = ::NtCreateFile(&h, SYNCHRONIZE, &attributes, &iosb, nullptr, 0,
                                         FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN, 0, nullptr, 0);
  if (status != status_success) return nt_error(status);

  if (!::CreateIoCompletionPort(h, port, 0, 0)) {
    const auto ec = last_windows_error();
    ::CloseHandle(h);
    return ec;
  }
  // Nobody waits on the handle itself: skip signalling it on every
  // completion. FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is deliberately not set,
  // so that every accepted poll completes through the port, also one that
  // finds its events at once: one path for every completion.
  if (!::SetFileCompletionNotificationModes(h, FILE_SKIP_SET_EVENT_ON_HANDLE)) {
    const auto ec = last_windows_error();
    ::CloseHandle(h);
    return ec;
  }
  helper = h;
  return {};
}

NTSTATUS poll(HANDLE helper, PollInfo& info, IO_STATUS_BLOCK& iosb) noexcept {
  // The status block reads "pending" until the kernel writes the result:
  // cancel() relies on it to skip polls that have completed.
  iosb.Status = status_pending;
  // The APC context is what the completion packet carries as lpOverlapped:
  // the status block, from which the selector finds the socket's state.
  return ::NtDeviceIoControlFile(helper, nullptr, nullptr, &iosb, &iosb, ioctl_poll, &info,
                                 sizeof info, &info, sizeof info);
}

std::error_code cancel(HANDLE helper, IO_STATUS_BLOCK& iosb) noexcept {
  if (iosb.Status != status_pending) return {};  // completed: its packet is on its way
  IO_STATUS_BLOCK cancel_iosb{};
  const NTSTATUS status = ::NtCancelIoFileEx(helper, &iosb, &cancel_iosb);
  // STATUS_NOT_FOUND: it completed between the check above and the call.
  if (status == status_success || status == status_not_found) return {};
  return nt_error(status);
}

std::error_code base_socket(SOCKET s, SOCKET& base) noexcept {
  // SIO_BASE_HANDLE asks the chain of providers for the bottom one. Some LSPs
  // fail it; the SIO_BSP_HANDLE_* variants, which an LSP must pass down for
  // select() and WSAPoll to work, then still find it (the order mio uses).
  const DWORD ioctls[] = {SIO_BASE_HANDLE, SIO_BSP_HANDLE_POLL, SIO_BSP_HANDLE_SELECT};
  std::error_code first;
  for (const DWORD ioctl : ioctls) {
    SOCKET out = INVALID_SOCKET;
    DWORD bytes = 0;
    if (::WSAIoctl(s, ioctl, nullptr, 0, &out, sizeof out, &bytes, nullptr, nullptr) == 0 &&
        out != INVALID_SOCKET) {
      base = out;
      return {};
    }
    if (!first) first = last_wsa_error();
    // Not a socket at all: no other provider query can change that.
    if (::WSAGetLastError() == WSAENOTSOCK) break;
  }
  return first;
}

}  // namespace evq::detail::afd
