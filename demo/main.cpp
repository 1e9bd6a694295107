// evq_demo: the I/O models side by side (the README's first command).
//
//   evq_demo [options]          the comparison: see --help
//   evq_demo --internal-server MODEL POOL
//   evq_demo --internal-client PORT N SOURCES THINK_MS DURATION_NS
// The two internal modes are how the orchestrator starts its children (fork
// and exec of this same binary); they are not meant to be typed.
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>

#include "cell.hpp"
#include "client.hpp"
#include "format.hpp"
#include "html_report.hpp"
#include "options.hpp"
#include "run_summary.hpp"
#include "servers.hpp"
#include "terminal_table.hpp"

namespace {

using namespace demo;

// The soft open-files limit up to the hard one: a cell holds N sockets in the
// server and N in the client process, and children inherit the limit.
void raise_open_file_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::string describe_machine() {
  std::string cpu = "unknown CPU";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    if (line.starts_with("model name")) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  ::uname(&u);
  return cpu + ", " + std::to_string(std::thread::hardware_concurrency()) + " CPUs, " + u.sysname + " " + u.release;
}

std::string local_time_now() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
  return buf;
}

std::string absolute_path(const std::string& path) {
  if (path.starts_with("/")) return path;
  char cwd[4096];
  return ::getcwd(cwd, sizeof cwd) ? std::string(cwd) + "/" + path : path;
}

int internal_server(int argc, char** argv) {
  if (argc != 4) return 2;
  const auto model = model_from_name(argv[2]);
  if (!model) return 2;
  return run_server(*model, std::atoi(argv[3]));
}

int internal_client(int argc, char** argv) {
  if (argc != 7) return 2;
  ClientConfig c;
  c.port = std::atoi(argv[2]);
  c.connections = std::atoi(argv[3]);
  c.sources = std::max(1, std::atoi(argv[4]));
  c.think = std::chrono::milliseconds(std::atoll(argv[5]));
  c.duration = std::chrono::nanoseconds(std::atoll(argv[6]));
  return run_client(c);
}

// One progress line on stderr, rewritten in place on a terminal.
class Progress {
 public:
  explicit Progress(int cells) : cells_(cells), tty_(::isatty(STDERR_FILENO) != 0) {}
  void show(int cell, const std::string& what, std::string_view phase) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    char line[256];
    std::snprintf(line, sizeof line, "[%2d/%d %4.0fs] %s: %.*s", cell, cells_, elapsed, what.c_str(),
                  static_cast<int>(phase.size()), phase.data());
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", line);
    } else if (phase == "starting") {
      std::fprintf(stderr, "%s\n", line);
    }
    std::fflush(stderr);
  }
  void done() {
    if (tty_) std::fprintf(stderr, "\r\033[K");
  }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  int cells_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// A report path that cannot be written is a bad option: say so before a
// two-minute run, not after. Leaves no file behind that was not there.
std::string check_report_path(const std::string& path) {
  const bool existed = ::access(path.c_str(), F_OK) == 0;
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) return "--report: cannot write '" + path + "': " + std::strerror(errno);
  std::fclose(f);
  if (!existed) std::remove(path.c_str());
  return {};
}

int run_comparison(const Options& options) {
  raise_open_file_limit();
  RunSummary run;
  run.options = options;
  run.machine = describe_machine();
  run.started_at = local_time_now();
  Progress progress(static_cast<int>(options.clients.size() * options.models.size()));
  int cell = 0;
  for (int n : options.clients) {
    for (ModelId m : options.models) {
      ++cell;
      const std::string what = "N=" + format_count(n) + " " + row_label(m, options);
      run.cells.push_back(run_cell(m, n, options, [&](std::string_view phase) { progress.show(cell, what, phase); }));
    }
  }
  progress.done();
  run.run_seconds = progress.elapsed();

  std::fputs(render_terminal_table(run).c_str(), stdout);
  std::ofstream report(options.report_path, std::ios::binary | std::ios::trunc);
  report << render_html_report(run);
  report.close();
  if (!report) {
    std::fprintf(stderr, "evq_demo: cannot write the report to %s\n", options.report_path.c_str());
    return 1;
  }
  std::printf("\nRun time %.1f s. Report with charts: %s\n", run.run_seconds, absolute_path(options.report_path).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--internal-server") return internal_server(argc, argv);
  if (argc > 1 && std::string_view(argv[1]) == "--internal-client") return internal_client(argc, argv);

  const ParsedOptions parsed = parse_options(argc, argv);
  switch (parsed.command) {
    case Command::help:
      std::fputs(usage_text("evq_demo").c_str(), stdout);
      return 0;
    case Command::bad_usage:
      std::fprintf(stderr, "evq_demo: %s\nTry 'evq_demo --help' for the options.\n", parsed.error.c_str());
      return 2;
    case Command::run:
      break;
  }
  if (const std::string error = check_report_path(parsed.options.report_path); !error.empty()) {
    std::fprintf(stderr, "evq_demo: %s\n", error.c_str());
    return 2;
  }
  return run_comparison(parsed.options);
}
