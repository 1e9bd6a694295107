#include "svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "format.hpp"

namespace demo {
namespace {

constexpr double width = 560, height = 330;
constexpr double left = 72, right = 170, top = 34, bottom = 46;  // margins
constexpr double plot_w = width - left - right, plot_h = height - top - bottom;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// Maps data values to pixels along one axis, linear or log10.
struct Scale {
  double lo, hi;
  bool log;
  double at(double v, double from, double to) const {
    const double a = log ? std::log10(lo) : lo, b = log ? std::log10(hi) : hi;
    const double x = log ? std::log10(std::max(v, lo)) : v;
    return b > a ? from + (x - a) / (b - a) * (to - from) : (from + to) / 2;
  }
};

// 1, 2, 5 x 10^k steps giving about five ticks from 0.
std::vector<double> linear_ticks(double hi) {
  if (hi <= 0) return {0, 1};
  const double raw = hi / 5, mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> t;
  for (double v = 0; v < hi + step * 0.999; v += step) t.push_back(v);
  return t;
}

std::string tick_label(double v, const std::string& unit) {
  if (unit == "ms") {
    char buf[32];
    if (v < 1) std::snprintf(buf, sizeof buf, "%gus", v * 1000);
    else if (v < 1000) std::snprintf(buf, sizeof buf, "%gms", v);
    else std::snprintf(buf, sizeof buf, "%gs", v / 1000);
    return buf;
  }
  if (unit == "KB" || unit == "MB") {
    char buf[32];
    std::snprintf(buf, sizeof buf, v >= 10 || v == 0 ? "%.0f" : v >= 1 ? "%.1f" : "%.2g", v);
    return buf;
  }
  // Ticks are round numbers: 1k, 2.5k, 1M, 0.25, not 1.0k or 1.00M.
  char buf[32];
  if (std::abs(v) >= 1e6) std::snprintf(buf, sizeof buf, "%gM", v / 1e6);
  else if (std::abs(v) >= 1e3) std::snprintf(buf, sizeof buf, "%gk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

std::string render_svg_chart(const Chart& chart) {
  // Data ranges.
  double y_min = std::numeric_limits<double>::infinity(), y_max = 0;
  for (const auto& s : chart.series)
    for (auto [x, y] : s.points) {
      if (!chart.log_y || y > 0) y_min = std::min(y_min, y);
      y_max = std::max(y_max, y);
    }
  const double x_lo = chart.xs.empty() ? 1 : *std::min_element(chart.xs.begin(), chart.xs.end());
  const double x_hi = chart.xs.empty() ? 1 : *std::max_element(chart.xs.begin(), chart.xs.end());
  const bool log_x = x_lo > 0 && x_hi / x_lo >= 10;
  // A little room either side of the outermost N.
  Scale xs{x_lo, x_hi, log_x};
  const double x_pad = 24;

  Scale ys{0, 1, chart.log_y};
  std::vector<double> y_ticks;
  if (chart.log_y) {
    if (!std::isfinite(y_min)) y_min = 1, y_max = 10;
    const double lo = std::pow(10, std::floor(std::log10(y_min)));
    double hi = std::pow(10, std::ceil(std::log10(y_max)));
    if (hi <= lo) hi = lo * 10;
    ys = Scale{lo, hi, true};
    const int decades = static_cast<int>(std::lround(std::log10(hi / lo)));
    for (double v = lo; v <= hi * 1.001; v *= 10) {
      y_ticks.push_back(v);
      if (decades <= 2 && v * 10 <= hi * 1.001) {
        y_ticks.push_back(2 * v);
        y_ticks.push_back(5 * v);
      }
    }
  } else {
    y_ticks = linear_ticks(y_max > 0 ? y_max : 1);
    ys = Scale{0, y_ticks.back(), false};
  }
  const auto px = [&](double x) { return xs.at(x, left + x_pad, left + plot_w - x_pad); };
  const auto py = [&](double y) { return ys.at(y, top + plot_h, top); };

  std::string svg;
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
         "\" viewBox=\"0 0 " + num(width) + " " + num(height) + "\" role=\"img\" aria-label=\"" +
         escape(chart.title) + "\" font-family=\"system-ui, sans-serif\" font-size=\"11\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
  svg += "<text x=\"" + num(left) + "\" y=\"18\" font-size=\"13\" font-weight=\"600\">" + escape(chart.title) +
         "</text>\n";
  // Grid and y ticks.
  for (double t : y_ticks) {
    const double y = py(t);
    svg += "<line x1=\"" + num(left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(left + plot_w) + "\" y2=\"" + num(y) +
           "\" stroke=\"#e3e3e3\"/>\n";
    svg += "<text x=\"" + num(left - 6) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\" fill=\"#555\">" +
           escape(tick_label(t, chart.y_unit)) + "</text>\n";
  }
  svg += "<text transform=\"translate(14," + num(top + plot_h / 2) + ") rotate(-90)\" text-anchor=\"middle\" fill=\"#555\">" +
         escape(chart.y_label + (chart.log_y ? " (log scale)" : "")) + "</text>\n";
  // Axes and x ticks at each N.
  svg += "<line x1=\"" + num(left) + "\" y1=\"" + num(top + plot_h) + "\" x2=\"" + num(left + plot_w) + "\" y2=\"" +
         num(top + plot_h) + "\" stroke=\"#444\"/>\n";
  svg += "<line x1=\"" + num(left) + "\" y1=\"" + num(top) + "\" x2=\"" + num(left) + "\" y2=\"" + num(top + plot_h) +
         "\" stroke=\"#444\"/>\n";
  for (double x : chart.xs) {
    svg += "<text x=\"" + num(px(x)) + "\" y=\"" + num(top + plot_h + 16) + "\" text-anchor=\"middle\" fill=\"#555\">" +
           format_count(x) + "</text>\n";
  }
  svg += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(height - 12) +
         "\" text-anchor=\"middle\" fill=\"#555\">N clients" + std::string(log_x ? " (log scale)" : "") + "</text>\n";
  // Series and legend.
  double legend_y = top + 4;
  for (const auto& s : chart.series) {
    std::vector<std::pair<double, double>> pts = s.points;
    std::sort(pts.begin(), pts.end());
    std::string path;
    for (auto [x, y] : pts) path += (path.empty() ? "" : " ") + num(px(x)) + "," + num(py(y));
    const std::string dash = s.dashed ? " stroke-dasharray=\"5 4\"" : "";
    if (pts.size() > 1)
      svg += "<polyline fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"2\"" + dash + " points=\"" + path +
             "\"/>\n";
    for (auto [x, y] : pts) {
      if (s.dashed) continue;
      svg += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"3.5\" fill=\"" + s.color + "\"><title>" +
             escape(s.label) + ", N=" + format_count(x) + ": " + escape(tick_label(y, chart.y_unit)) +
             (chart.y_unit == "ms" ? "" : " " + escape(chart.y_unit)) + "</title></circle>\n";
    }
    const double lx = left + plot_w + 14;
    svg += "<line x1=\"" + num(lx) + "\" y1=\"" + num(legend_y) + "\" x2=\"" + num(lx + 18) + "\" y2=\"" +
           num(legend_y) + "\" stroke=\"" + s.color + "\" stroke-width=\"2\"" + dash + "/>\n";
    svg += "<text x=\"" + num(lx + 24) + "\" y=\"" + num(legend_y + 4) + "\">" + escape(s.label) + "</text>\n";
    legend_y += 17;
  }
  for (const std::string& note : chart.notes) {
    svg += "<text x=\"" + num(left + plot_w + 14) + "\" y=\"" + num(legend_y + 8) +
           "\" fill=\"#a33\" font-size=\"10\">" + escape(note) + "</text>\n";
    legend_y += 14;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace demo
