// The one include of the Windows SDK headers for evq's Windows code, in the
// order they need: winsock2.h before windows.h (windows.h alone pulls in the
// old winsock.h, whose declarations clash with winsock2.h), winternl.h last
// for the NT types (IO_STATUS_BLOCK, NtCreateFile, NtDeviceIoControlFile).
//
// EvqWindows.cmake defines WIN32_LEAN_AND_MEAN and NOMINMAX for the library,
// so that windows.h's min/max macros never meet std::min in portable code.
#pragma once

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <winternl.h>
