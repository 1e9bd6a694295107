#include "child_process.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <cerrno>
#include <cstring>
#include <utility>

namespace demo {
namespace {

constexpr evq::Token output_token{1};

// Between fork and exec only async-signal-safe calls.
[[noreturn]] void exec_child(int in_fd, int out_fd, int cpu, char* const* argv) {
  ::dup2(in_fd, STDIN_FILENO);  // dup2 clears close-on-exec on the copy
  ::dup2(out_fd, STDOUT_FILENO);
  // evq's pipes are non-blocking; the child reads and writes them blocking.
  ::fcntl(STDIN_FILENO, F_SETFL, ::fcntl(STDIN_FILENO, F_GETFL) & ~O_NONBLOCK);
  ::fcntl(STDOUT_FILENO, F_SETFL, ::fcntl(STDOUT_FILENO, F_GETFL) & ~O_NONBLOCK);
#if defined(__linux__)
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the orchestrator
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ::sched_setaffinity(0, sizeof set, &set);
  }
#else
  (void)cpu;
#endif
  ::execv("/proc/self/exe", argv);
  ::_exit(127);
}

}  // namespace

std::optional<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& args, int cpu, std::string* error) {
  auto poll = evq::Poll::create();
  auto to_child = evq::pipe();
  auto from_child = evq::pipe();
  if (!poll || !to_child || !from_child) {
    *error = "cannot create a pipe or a Poll";
    return std::nullopt;
  }
  if (auto ec = poll->registry().add(from_child->second, output_token, evq::Interest::readable)) {
    *error = "Registry::add: " + ec.message();
    return std::nullopt;
  }
  // argv before fork: the child must not allocate.
  std::vector<std::string> all = {"evq_demo"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    return std::nullopt;
  }
  if (pid == 0) exec_child(to_child->second.native_handle(), from_child->first.native_handle(), cpu, argv.data());
  // Our copies of the child's ends close here; the child holds its own.
  return ChildProcess(pid, std::move(*poll), std::move(to_child->first), std::move(from_child->second));
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      poll_(std::move(other.poll_)),
      stdin_(std::move(other.stdin_)),
      stdout_(std::move(other.stdout_)),
      buffer_(std::move(other.buffer_)),
      at_end_(other.at_end_) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::optional<std::string> ChildProcess::read_line(Clock::time_point deadline) {
  for (;;) {
    if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (at_end_) return std::nullopt;
    // Edge-triggered: read until would-block before waiting again.
    for (;;) {
      std::byte chunk[4096];
      auto n = stdout_.read(chunk);
      if (!n) {
        if (n.error() != std::errc::operation_would_block) at_end_ = true;
        break;
      }
      if (*n == 0) {
        at_end_ = true;
        break;
      }
      buffer_.append(reinterpret_cast<const char*>(chunk), *n);
    }
    if (buffer_.find('\n') != std::string::npos || at_end_) continue;
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    poll_.poll(events_, deadline - now);
  }
}

bool ChildProcess::write(std::string_view text) {
  if (!stdin_) return false;
  // A few bytes into an empty pipe: one write takes them all.
  auto n = stdin_->write(std::as_bytes(std::span(text.data(), text.size())));
  return n && *n == text.size();
}

void ChildProcess::close_stdin() { stdin_.reset(); }

void ChildProcess::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

ChildProcess::Exit ChildProcess::wait() {
  Exit e;
  if (pid_ <= 0) return e;
  while (::wait4(pid_, &e.status, 0, &e.usage) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return e;
}

std::optional<ChildProcess::Exit> ChildProcess::exited() {
  Exit e;
  if (pid_ <= 0) return e;
  if (::wait4(pid_, &e.status, WNOHANG, &e.usage) != pid_) return std::nullopt;
  pid_ = -1;
  return e;
}

std::string ChildProcess::describe(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::strsignal(WTERMSIG(status));
    return "killed by signal " + std::to_string(WTERMSIG(status)) + (name ? std::string(" (") + name + ")" : "");
  }
  return "status " + std::to_string(status);
}

}  // namespace demo
