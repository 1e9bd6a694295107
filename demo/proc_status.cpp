#include "proc_status.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace demo {

std::optional<ProcStatus> read_proc_status(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return std::nullopt;
  ProcStatus s;
  char line[256];
  const auto field = [&](const char* name, long* out) {
    const std::size_t len = std::strlen(name);
    if (std::strncmp(line, name, len) == 0) *out = std::strtol(line + len, nullptr, 10);
  };
  while (std::fgets(line, sizeof line, f)) {
    field("VmRSS:", &s.rss_kb);
    field("VmHWM:", &s.peak_rss_kb);
    field("Threads:", &s.threads);
  }
  std::fclose(f);
  return s;
}

}  // namespace demo
