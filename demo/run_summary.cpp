#include "run_summary.hpp"

#include <algorithm>

#include "format.hpp"

namespace demo {

std::vector<std::string> cell_notes(const CellResult& c, const RunSummary& run) {
  std::vector<std::string> notes;
  if (!c.ran()) return notes;
  const std::string who = row_label(c.model, run.options);
  if (c.unanswered > 0) {
    std::string n = who + ": " + format_count(static_cast<double>(c.unanswered)) + " requests got no reply";
    if (c.starved > 0)
      n += "; " + format_count(c.starved) + " of " + format_count(c.clients) + " clients starved (not one reply)";
    n += ". They count with the time waited so far, so its latencies are lower bounds.";
    notes.push_back(n);
  }
  if (c.closed > 0)
    notes.push_back(who + ": the server dropped " + format_count(c.closed) + " connections during the load phase.");
  // The load generator has one core: near its limit, or with its timers
  // late, part of the latency is the client's, not the server's.
  if (c.client_cpu_share > 0.85)
    notes.push_back(who + ": the load generator used " + format_count(c.client_cpu_share * 100) +
                    "% of its core: the load it offered may be limited by the client as much as by the server.");
  else if (c.client_lag_p99_ms > static_cast<double>(run.options.think.count()) / 5)
    notes.push_back(who + ": the load generator's timers fired up to " + format_millis(c.client_lag_p99_ms) +
                    " late (p99): part of this latency is the client's.");
  return notes;
}

std::string machine_warning(const RunSummary& run) {
  int disturbed = 0, ran = 0;
  double worst = 0;
  for (const CellResult& c : run.cells) {
    if (!c.ran() || c.window_seconds <= 0) continue;
    ++ran;
    const double share = c.other_cpu_s / c.window_seconds;
    if (share > 0.2) ++disturbed;
    worst = std::max(worst, share);
  }
  if (disturbed == 0) return {};
  return "Other processes were busy on the demo's two CPUs during " + std::to_string(disturbed) + " of " +
         std::to_string(ran) + " cells (up to " + format_count(worst * 100) +
         "% of a core): those figures are disturbed. Run again on a quiet machine.";
}

std::string row_label(ModelId model, const Options& options) {
  if (model == ModelId::thread_pool) return model_label(model) + " (" + std::to_string(options.pool_threads) + ")";
  return model_label(model);
}

}  // namespace demo
