// The HTML report: the run's settings, one table per N (as on the terminal,
// with a few more columns), and SVG charts of throughput, p99 latency, CPU and
// memory against N. One self-contained file: no script, no external resource.
#pragma once

#include <string>

#include "run_summary.hpp"

namespace demo {

std::string render_html_report(const RunSummary& run);

}  // namespace demo
