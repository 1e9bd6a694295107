// Everything a finished run hands to the terminal table and the HTML report.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "options.hpp"
#include "results.hpp"

namespace demo {

struct RunSummary {
  Options options;
  std::vector<CellResult> cells;  // in run order: for each N, each model
  double run_seconds = 0;
  std::string machine;            // CPU, cores, kernel
  std::string started_at;         // local time, human-readable

  // The cell of `model` at `clients`, if it was part of the run.
  const CellResult* find(ModelId model, int clients) const {
    for (const CellResult& c : cells)
      if (c.model == model && c.clients == clients) return &c;
    return nullptr;
  }
  // The baseline of the ratios: evq on its default backend, when it ran.
  const CellResult* baseline(int clients) const {
    const CellResult* c = find(ModelId::evq_default, clients);
    return c && c->ran() ? c : nullptr;
  }
  double offered_per_s(int clients) const {
    return clients * 1000.0 / static_cast<double>(options.think.count());
  }
};

// Remarks a reader needs next to a cell's figures (starvation, a saturated
// load generator, dropped connections). Shared by the table and the report.
std::vector<std::string> cell_notes(const CellResult& cell, const RunSummary& run);

// Empty on a quiet run; else one warning that other processes used the CPUs
// the demo pins its server and client to (measured per cell, /proc/stat).
std::string machine_warning(const RunSummary& run);

// The row label: model_label plus the pool size for the thread pool.
std::string row_label(ModelId model, const Options& options);

}  // namespace demo
