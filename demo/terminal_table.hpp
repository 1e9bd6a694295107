// The table printed on the terminal: one block per N, one row per model, the
// measured figures and their ratios to evq on its default backend.
#pragma once

#include <string>

#include "run_summary.hpp"

namespace demo {

std::string render_terminal_table(const RunSummary& run);

}  // namespace demo
