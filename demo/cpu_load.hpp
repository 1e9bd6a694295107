// How busy the demo's CPUs were, from /proc/stat (Linux): the demo pins its
// server and its load generator to two CPUs, and anything else running there
// during a cell disturbs that cell's figures. The report says so.
#pragma once

#include <optional>
#include <vector>

namespace demo {

// Busy time (everything but idle and iowait) of each listed CPU, summed, in
// seconds. nullopt when /proc/stat cannot be read.
std::optional<double> cpu_busy_seconds(const std::vector<int>& cpus);

// The CPUs this process may run on (sched_getaffinity), in order: the demo
// puts its server on the first and its load generator on the second.
std::vector<int> usable_cpus();

}  // namespace demo
