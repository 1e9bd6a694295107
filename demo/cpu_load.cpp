#include "cpu_load.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

namespace demo {

std::optional<double> cpu_busy_seconds(const std::vector<int>& cpus) {
  std::ifstream stat("/proc/stat");
  if (!stat) return std::nullopt;
  const double ticks_per_s = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double busy_ticks = 0;
  int found = 0;
  for (std::string line; std::getline(stat, line);) {
    // "cpuN user nice system idle iowait irq softirq steal ..."
    if (!line.starts_with("cpu") || line.size() < 4 || line[3] < '0' || line[3] > '9') continue;
    std::istringstream in(line.substr(3));
    int cpu = -1;
    in >> cpu;
    if (std::find(cpus.begin(), cpus.end(), cpu) == cpus.end()) continue;
    double v[8] = {};
    for (double& x : v) in >> x;
    busy_ticks += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // not idle (3), iowait (4)
    ++found;
  }
  if (found != static_cast<int>(cpus.size())) return std::nullopt;
  return busy_ticks / ticks_per_s;
}

std::vector<int> usable_cpus() {
  std::vector<int> cpus;
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
#endif
  return cpus;
}

}  // namespace demo
