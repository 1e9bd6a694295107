// tests/support/wine.hpp: whether this Windows test binary runs under Wine,
// for the few places where Wine measurably differs from Windows and a test
// accepts Wine's answer too (each such place says why). Never true on POSIX.
#pragma once

#include <evq/platform.hpp>

#if EVQ_WINDOWS
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#endif

namespace evq::test {

// Wine's ntdll exports wine_get_version; Windows's does not.
inline bool running_under_wine() {
#if EVQ_WINDOWS
  static const bool wine = [] {
    HMODULE ntdll = ::GetModuleHandleA("ntdll.dll");
    return ntdll && ::GetProcAddress(ntdll, "wine_get_version") != nullptr;
  }();
  return wine;
#else
  return false;
#endif
}

}  // namespace evq::test
