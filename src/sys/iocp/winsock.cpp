#include "sys/iocp/winsock.hpp"

#include "sys/iocp/win32.hpp"
#include "sys/iocp/windows_error.hpp"

namespace evq::detail {

std::error_code ensure_winsock() noexcept {
  // A function-local static: C++11 guarantees one initialisation even when
  // threads race to it. WSAStartup is reference-counted, so another library
  // calling it too does no harm.
  static const int result = [] {
    WSADATA data;
    return ::WSAStartup(MAKEWORD(2, 2), &data);  // returns the error itself
  }();
  return result == 0 ? std::error_code{} : windows_error(static_cast<unsigned long>(result));
}

}  // namespace evq::detail
