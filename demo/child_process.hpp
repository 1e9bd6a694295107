// A child process running this same binary in one of its internal modes
// (--internal-server, --internal-client), pinned to one CPU, with its stdin
// and stdout on pipes to us. Waiting for its lines goes through evq.
#pragma once

#include <evq/evq.hpp>
#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace demo {

class ChildProcess {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts `this binary args...` pinned to `cpu` (-1: not pinned). On
  // failure: nullopt and *error says why.
  static std::optional<ChildProcess> spawn(const std::vector<std::string>& args, int cpu, std::string* error);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess();  // kills and reaps a child still running

  pid_t pid() const noexcept { return pid_; }

  // The next line of its stdout, without the newline. nullopt at the deadline
  // or at end of output (then at_end() is true).
  std::optional<std::string> read_line(Clock::time_point deadline);
  bool at_end() const noexcept { return at_end_; }

  bool write(std::string_view text);  // to its stdin
  void close_stdin();
  void signal(int sig);

  struct Exit {
    int status = 0;  // as wait4 gives it
    rusage usage{};  // of the whole process, every thread, its whole life
  };
  // Waits for it to exit (after a signal or end of its stdin).
  Exit wait();
  // "exit code 3", "killed by signal 9", ...
  static std::string describe(int status);
  // Non-blocking: its Exit if it has already ended.
  std::optional<Exit> exited();

 private:
  ChildProcess(pid_t pid, evq::Poll poll, evq::PipeSender in, evq::PipeReceiver out)
      : pid_(pid), poll_(std::move(poll)), stdin_(std::move(in)), stdout_(std::move(out)) {}

  pid_t pid_ = -1;
  evq::Poll poll_;
  std::optional<evq::PipeSender> stdin_;
  evq::PipeReceiver stdout_;
  evq::Events events_{4};
  std::string buffer_;
  bool at_end_ = false;
};

}  // namespace demo
