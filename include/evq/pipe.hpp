// evq/pipe.hpp: a non-blocking pipe (POSIX only).
//
// Writing to a pipe whose reader is closed raises SIGPIPE unless the process
// ignores it (sockets use MSG_NOSIGNAL and never raise it). Servers usually
// `signal(SIGPIPE, SIG_IGN)`; then write returns errc broken_pipe.
#pragma once

#include "evq/platform.hpp"
#if EVQ_POSIX

#include <cstddef>
#include <span>
#include <utility>

#include "evq/result.hpp"
#include "evq/source.hpp"

namespace evq {

class PipeSender;
class PipeReceiver;
// Both ends non-blocking and close-on-exec (pipe2).
Result<std::pair<PipeSender, PipeReceiver>> pipe();

class PipeSender : public Source {
 public:
  Result<std::size_t> write(std::span<const std::byte> buf);
  PipeSender(PipeSender&&) noexcept = default;
  PipeSender& operator=(PipeSender&&) noexcept = default;
  ~PipeSender() = default;

 private:
  friend Result<std::pair<PipeSender, PipeReceiver>> pipe();
  explicit PipeSender(NativeHandle h) noexcept : Source(h, true) {}
};

class PipeReceiver : public Source {
 public:
  // 0 = every sender closed.
  Result<std::size_t> read(std::span<std::byte> buf);
  PipeReceiver(PipeReceiver&&) noexcept = default;
  PipeReceiver& operator=(PipeReceiver&&) noexcept = default;
  ~PipeReceiver() = default;

 private:
  friend Result<std::pair<PipeSender, PipeReceiver>> pipe();
  explicit PipeReceiver(NativeHandle h) noexcept : Source(h, true) {}
};

}  // namespace evq

#endif  // EVQ_POSIX
