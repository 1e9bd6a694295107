#include "evq/pipe.hpp"

#include <unistd.h>

#include "net/posix/os_compat.hpp"
#include "net/posix/sockaddr.hpp"

namespace evq {

Result<std::pair<PipeSender, PipeReceiver>> pipe() {
  int fds[2];
  if (auto ec = posix::sys_check([&] { return posix::open_pipe(fds); })) return ec;
  return std::pair<PipeSender, PipeReceiver>(PipeSender(fds[1]), PipeReceiver(fds[0]));
}

// A pipe has no MSG_NOSIGNAL: a write with no reader left raises SIGPIPE
// unless the process ignores it, and then fails with EPIPE (see pipe.hpp).
Result<std::size_t> PipeSender::write(std::span<const std::byte> buf) {
  auto r = posix::sys_call([&] { return ::write(handle_, buf.data(), buf.size()); });
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::writable);
  return r;
}

Result<std::size_t> PipeReceiver::read(std::span<std::byte> buf) {
  auto r = posix::sys_call([&] { return ::read(handle_, buf.data(), buf.size()); });
  if (!r && posix::is_would_block(r.error())) on_would_block(Interest::readable);
  return r;
}

}  // namespace evq
