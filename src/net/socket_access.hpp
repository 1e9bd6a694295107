// src/net/socket_access.hpp: lets evq's own code wrap a descriptor it got
// from the OS in a public socket type, whose descriptor constructors are
// private. Native Ring engines need it: io_uring's accept and IOCP's AcceptEx
// hand back a new socket, and connect starts from one the engine created.
#pragma once

#include "evq/tcp.hpp"

namespace evq::detail {

struct SocketAccess {
  // Takes ownership. The caller made `h` what TcpStream promises: a stream
  // socket, non-blocking and close-on-exec (POSIX), or the Windows equivalent.
  static TcpStream adopt_tcp_stream(NativeHandle h) noexcept { return TcpStream(h); }
};

}  // namespace evq::detail
