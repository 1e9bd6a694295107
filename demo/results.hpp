// What one (model, N) cell measured, or why it could not run.
#pragma once

#include <cstdint>
#include <string>

#include "models.hpp"

namespace demo {

struct CellResult {
  ModelId model{};
  int clients = 0;
  std::string failure;  // empty when the cell ran: "could not run: <failure>"

  // Load phase, from the client (open-loop, from intended send times).
  double load_seconds = 0;       // configured duration
  double requests_per_s = 0;     // replies received / load_seconds
  std::uint64_t answered = 0;
  std::uint64_t unanswered = 0;  // due in the load phase, no reply by its end (+ grace)
  int starved = 0;               // clients that got no reply at all
  int closed = 0;                // connections the server dropped
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  double client_lag_p99_ms = 0;  // how late the client's own timers fired
  double client_cpu_share = 0;   // client CPU / wall time in the load phase
  double client_cpu_s = 0;
  // CPU time others used on the two CPUs the demo runs on, during the load
  // phase (/proc/stat busy time minus the server's and the client's): noise.
  double other_cpu_s = 0;

  // Server, load phase (getrusage snapshots before "go" and after the result).
  double window_seconds = 0;     // wall time between the two snapshots
  double cpu_user_s = 0, cpu_sys_s = 0;
  std::int64_t voluntary_switches = 0, involuntary_switches = 0;
  // Server, idle phase: all N connected, none sending.
  double idle_seconds = 0;
  double idle_cpu_s = 0;
  long base_rss_kb = 0;   // listening, no connection yet
  long idle_rss_kb = 0;   // all N connected
  long peak_rss_kb = 0;   // VmHWM at the end of the load phase
  long threads = 0;
  double connect_seconds = 0;
  // Server, whole life (wait4).
  double life_cpu_user_s = 0, life_cpu_sys_s = 0;
  std::int64_t life_switches = 0;

  bool ran() const { return failure.empty(); }
  double cpu_s() const { return cpu_user_s + cpu_sys_s; }
  std::int64_t switches() const { return voluntary_switches + involuntary_switches; }
  double rss_per_connection_bytes() const {
    return clients > 0 ? static_cast<double>(idle_rss_kb - base_rss_kb) * 1024.0 / clients : 0;
  }
};

}  // namespace demo
