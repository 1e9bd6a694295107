// A line chart as hand-written inline SVG: one line per model against N.
#pragma once

#include <string>
#include <vector>

namespace demo {

struct ChartSeries {
  std::string label;
  std::string color;  // CSS color
  bool dashed = false;
  std::vector<std::pair<double, double>> points;  // (N, value); only cells that ran
};

struct Chart {
  std::string title;
  std::string y_unit;   // how ticks are written: "ms" (as 52us, 1.2ms, 3s), "KB", "MB", or plain
  std::string y_label;  // the y axis title
  bool log_y = false;
  std::vector<double> xs;  // every N of the run, even where no series has a point
  std::vector<ChartSeries> series;
  std::vector<std::string> notes;  // printed under the plot: cells that could not run
};

std::string render_svg_chart(const Chart& chart);

}  // namespace demo
