// What /proc/<pid>/status says about a process's memory and threads (Linux).
#pragma once

#include <sys/types.h>

#include <optional>

namespace demo {

struct ProcStatus {
  long rss_kb = 0;      // VmRSS: resident now
  long peak_rss_kb = 0; // VmHWM: the most resident since it started
  long threads = 0;
};

// nullopt when the file cannot be read (not Linux, or the process is gone).
std::optional<ProcStatus> read_proc_status(pid_t pid);

}  // namespace demo
