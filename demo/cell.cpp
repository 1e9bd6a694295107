#include "cell.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "child_process.hpp"
#include "cpu_load.hpp"
#include "proc_status.hpp"

namespace demo {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The server gets the first usable CPU and the load generator the second
// (DESIGN.md: pin them to different cores), so every model has exactly one
// core to serve with. With a single CPU nothing is pinned (-1).
struct Placement {
  int server_cpu = -1, client_cpu = -1;
};
Placement placement() {
  const std::vector<int> cpus = usable_cpus();
  if (cpus.size() < 2) return {};
  return {cpus[0], cpus[1]};
}
// Descriptors a process needs besides its N sockets.
constexpr int spare_descriptors = 32;
// Phases around the load phase.
constexpr auto settle_time = 200ms;  // after the last accept, before measuring
constexpr auto idle_time = 500ms;

// A getrusage(RUSAGE_SELF) the server took on SIGUSR1.
struct Snapshot {
  std::int64_t user_us = 0, sys_us = 0, vcsw = 0, ivcsw = 0;
  std::uint64_t accepted = 0;
  Clock::time_point at;
};

// Thrown inside run_cell only, to turn any failure into "could not run: why".
struct CouldNotRun {
  std::string why;
};

long open_file_limit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur == RLIM_INFINITY ? 1L << 30 : static_cast<long>(rl.rlim_cur);
}

class Cell {
 public:
  Cell(ModelId model, int clients, const Options& options, const ProgressFn& progress)
      : model_(model), n_(clients), opt_(options), progress_(progress) {
    r_.model = model;
    r_.clients = clients;
    r_.load_seconds = options.duration.count();
  }

  CellResult run() {
    try {
      check_limits();
      start_server();
      connect_clients();
      idle_phase();
      load_phase();
      finish();
    } catch (const CouldNotRun& e) {
      r_.failure = e.why;
      // A server error line explains more than what we saw from outside.
      if (server_) {
        if (auto why = server_error(); !why.empty()) r_.failure = why;
      }
    }
    return r_;
  }

 private:
  void check_limits() {
    if (!model_info(model_).built) throw CouldNotRun{"not built yet"};
    const long limit = open_file_limit();
    if (n_ + spare_descriptors > limit)
      throw CouldNotRun{std::to_string(n_) + " connections need " + std::to_string(n_ + spare_descriptors) +
                        " descriptors in one server process; the open-files limit is " + std::to_string(limit)};
  }

  void start_server() {
    progress_("starting");
    std::string error;
    const std::vector<std::string> args = {"--internal-server", std::string(model_info(model_).name),
                                           std::to_string(opt_.pool_threads)};
    auto server = ChildProcess::spawn(args, cpus_.server_cpu, &error);
    if (server) server_.emplace(std::move(*server));
    if (!server_) throw CouldNotRun{"starting the server: " + error};
    const auto line = server_->read_line(Clock::now() + 30s);
    if (line && line->starts_with("error ")) throw CouldNotRun{line->substr(6)};
    if (!line || !line->starts_with("ready ")) throw CouldNotRun{"the server did not start"};
    std::istringstream in(line->substr(6));
    in >> port_;
    if (const auto s = read_proc_status(server_->pid())) r_.base_rss_kb = s->rss_kb;
  }

  void connect_clients() {
    progress_("connecting");
    std::string error;
    const auto duration_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(opt_.duration).count();
    const std::vector<std::string> args = {"--internal-client", std::to_string(port_), std::to_string(n_),
                                           std::to_string(sources_for(n_)), std::to_string(opt_.think.count()),
                                           std::to_string(duration_ns)};
    auto client = ChildProcess::spawn(args, cpus_.client_cpu, &error);
    if (client) client_.emplace(std::move(*client));
    if (!client_) throw CouldNotRun{"starting the client: " + error};
    const auto started = Clock::now();
    const auto line = client_->read_line(started + 120s);
    if (!line) throw CouldNotRun{client_gone("did not connect in time")};
    if (line->starts_with("error ")) throw CouldNotRun{"load generator: " + line->substr(6)};
    std::istringstream in(line->substr(line->find(' ') + 1));
    int ok = 0, failed = 0;
    long ms = 0;
    in >> ok >> failed >> ms;
    std::string first_error;
    std::getline(in >> std::ws, first_error);
    r_.connect_seconds = static_cast<double>(ms) / 1000.0;
    if (failed > 0)
      throw CouldNotRun{"only " + std::to_string(ok) + " of " + std::to_string(n_) + " clients connected (" +
                        first_error + ")"};
    // The client is connected once the handshake is done; the server may
    // still be accepting (or spawning a thread per connection).
    const auto deadline = Clock::now() + 60s;
    for (;;) {
      const Snapshot s = snapshot();
      if (s.accepted >= static_cast<std::uint64_t>(n_)) break;
      if (Clock::now() > deadline)
        throw CouldNotRun{"the server accepted only " + std::to_string(s.accepted) + " of " + std::to_string(n_) +
                          " connections in 60 s"};
      std::this_thread::sleep_for(20ms);
    }
  }

  void idle_phase() {
    progress_("idle");
    std::this_thread::sleep_for(settle_time);
    const Snapshot before = snapshot();
    std::this_thread::sleep_for(idle_time);
    const Snapshot after = snapshot();
    r_.idle_seconds = std::chrono::duration<double>(after.at - before.at).count();
    r_.idle_cpu_s = static_cast<double>(after.user_us + after.sys_us - before.user_us - before.sys_us) / 1e6;
    const auto s = read_proc_status(server_->pid());
    if (!s) throw CouldNotRun{"cannot read /proc/<pid>/status of the server"};
    r_.idle_rss_kb = s->rss_kb;
    r_.threads = s->threads;
  }

  void load_phase() {
    progress_("load");
    const auto busy_before = cpu_busy_seconds({cpus_.server_cpu, cpus_.client_cpu});
    const Snapshot before = snapshot();
    if (!client_->write("go\n")) throw CouldNotRun{"the load generator went away"};
    const auto wait = std::chrono::duration_cast<Clock::duration>(opt_.duration) + 60s;
    const auto line = client_->read_line(Clock::now() + wait);
    if (!line || !line->starts_with("result ")) {
      throw CouldNotRun{line && line->starts_with("error ") ? "load generator: " + line->substr(6)
                                                           : client_gone("gave no result")};
    }
    const Snapshot after = snapshot();
    const auto busy_after = cpu_busy_seconds({cpus_.server_cpu, cpus_.client_cpu});
    if (const auto s = read_proc_status(server_->pid())) {
      r_.peak_rss_kb = s->peak_rss_kb;
      r_.threads = std::max(r_.threads, s->threads);
    }
    r_.window_seconds = std::chrono::duration<double>(after.at - before.at).count();
    r_.cpu_user_s = static_cast<double>(after.user_us - before.user_us) / 1e6;
    r_.cpu_sys_s = static_cast<double>(after.sys_us - before.sys_us) / 1e6;
    r_.voluntary_switches = after.vcsw - before.vcsw;
    r_.involuntary_switches = after.ivcsw - before.ivcsw;
    parse_result(*line);
    if (busy_before && busy_after && cpus_.client_cpu >= 0)
      r_.other_cpu_s = std::max(0.0, *busy_after - *busy_before - r_.cpu_s() - r_.client_cpu_s);
  }

  void parse_result(const std::string& line) {
    std::istringstream in(line.substr(7));
    std::string kv;
    double cpu_us = 0, wall_us = 1;
    while (in >> kv) {
      const auto eq = kv.find('=');
      const std::string key = kv.substr(0, eq);
      const double v = std::strtod(kv.c_str() + eq + 1, nullptr);
      if (key == "answered") r_.answered = static_cast<std::uint64_t>(v);
      if (key == "unanswered") r_.unanswered = static_cast<std::uint64_t>(v);
      if (key == "starved") r_.starved = static_cast<int>(v);
      if (key == "closed") r_.closed = static_cast<int>(v);
      if (key == "p50") r_.p50_ms = v / 1e6;
      if (key == "p99") r_.p99_ms = v / 1e6;
      if (key == "p999") r_.p999_ms = v / 1e6;
      if (key == "max") r_.max_ms = v / 1e6;
      if (key == "lag_p99") r_.client_lag_p99_ms = v / 1e6;
      if (key == "cpu_us") cpu_us = v;
      if (key == "wall_us") wall_us = std::max(1.0, v);
    }
    r_.requests_per_s = static_cast<double>(r_.answered) / opt_.duration.count();
    r_.client_cpu_share = cpu_us / wall_us;
    r_.client_cpu_s = cpu_us / 1e6;
  }

  void finish() {
    server_->signal(SIGKILL);
    const auto exit = server_->wait();
    r_.life_cpu_user_s = static_cast<double>(exit.usage.ru_utime.tv_sec) + exit.usage.ru_utime.tv_usec / 1e6;
    r_.life_cpu_sys_s = static_cast<double>(exit.usage.ru_stime.tv_sec) + exit.usage.ru_stime.tv_usec / 1e6;
    r_.life_switches = exit.usage.ru_nvcsw + exit.usage.ru_nivcsw;
    client_->close_stdin();  // the client resets its connections and exits
    const auto client_exit = client_->wait();
    // Figures from a load generator that then crashed (or that a sanitizer
    // stopped) are not to be trusted.
    if (!WIFEXITED(client_exit.status) || WEXITSTATUS(client_exit.status) != 0)
      throw CouldNotRun{"the load generator ended with " + ChildProcess::describe(client_exit.status)};
  }

  // Asks the server for a getrusage snapshot. A server that died or wrote an
  // error instead cannot run this cell.
  Snapshot snapshot() {
    server_->signal(SIGUSR1);
    const auto line = server_->read_line(Clock::now() + 30s);
    if (!line || !line->starts_with("snap ")) {
      if (line && line->starts_with("error ")) throw CouldNotRun{line->substr(6)};
      throw CouldNotRun{server_->at_end() ? "the server exited" : "the server did not answer in 30 s"};
    }
    Snapshot s;
    s.at = Clock::now();
    std::istringstream in(line->substr(5));
    in >> s.user_us >> s.sys_us >> s.vcsw >> s.ivcsw >> s.accepted;
    return s;
  }

  // "the load generator <what>", or how it ended if it did.
  std::string client_gone(const std::string& what) {
    if (client_->at_end()) {
      const auto exit = client_->wait();
      return "the load generator ended with " + ChildProcess::describe(exit.status);
    }
    return "the load generator " + what;
  }

  // The server's own explanation, if it gave one, else how it ended.
  std::string server_error() {
    const auto exit = server_->exited();  // nullopt while it still runs
    while (auto line = server_->read_line(Clock::now() + 200ms)) {
      if (line->starts_with("error ")) return line->substr(6);
    }
    if (exit) return "the server ended: " + ChildProcess::describe(exit->status);
    return {};
  }

  ModelId model_;
  int n_;
  const Options& opt_;
  const ProgressFn& progress_;
  CellResult r_;
  std::optional<ChildProcess> server_, client_;
  int port_ = 0;
  const Placement cpus_ = placement();
};

}  // namespace

int sources_for(int clients) { return std::max(1, (clients + 4999) / 5000); }

CellResult run_cell(ModelId model, int clients, const Options& options, const ProgressFn& progress) {
  return Cell(model, clients, options, progress).run();
}

}  // namespace demo
