#include "options.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

namespace demo {
namespace {

std::vector<std::string_view> split_commas(std::string_view list) {
  std::vector<std::string_view> parts;
  while (true) {
    const auto comma = list.find(',');
    parts.push_back(list.substr(0, comma));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return parts;
}

// A whole decimal integer, nothing else ("1,000" is two list items, so no separators).
std::optional<long> parse_integer(std::string_view text) {
  long value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || text.empty()) return std::nullopt;
  return value;
}

// A positive decimal number such as 3, 0.5 or 2.5.
std::optional<double> parse_number(std::string_view text) {
  const std::string copy(text);
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

ParsedOptions bad(std::string message) {
  ParsedOptions p;
  p.command = Command::bad_usage;
  p.error = std::move(message);
  return p;
}

}  // namespace

ParsedOptions parse_options(int argc, char** argv) {
  ParsedOptions parsed;
  Options& o = parsed.options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      parsed.command = Command::help;
      return parsed;
    }
    // Both "--opt value" and "--opt=value".
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const bool known = name == "--models" || name == "--clients" || name == "--duration" ||
                       name == "--think" || name == "--report" || name == "--pool";
    if (!known) return bad("unknown option '" + std::string(arg) + "'");
    if (!value) {
      if (i + 1 >= argc) return bad("option " + std::string(name) + " needs a value");
      value = argv[++i];
    }
    const std::string v(*value);

    if (name == "--models") {
      o.models.clear();
      for (std::string_view item : split_commas(*value)) {
        if (item == "all") {
          for (ModelId m : default_models())
            if (std::find(o.models.begin(), o.models.end(), m) == o.models.end()) o.models.push_back(m);
          continue;
        }
        const auto m = model_from_name(item);
        if (!m) return bad("--models: unknown model '" + std::string(item) + "' (known: " + model_names() + ")");
        if (std::find(o.models.begin(), o.models.end(), *m) == o.models.end()) o.models.push_back(*m);
      }
    } else if (name == "--clients") {
      o.clients.clear();
      for (std::string_view item : split_commas(*value)) {
        const auto n = parse_integer(item);
        if (!n || *n < 1 || *n > 1'000'000)
          return bad("--clients: '" + std::string(item) + "' is not a number of clients from 1 to 1000000");
        if (std::find(o.clients.begin(), o.clients.end(), *n) == o.clients.end())
          o.clients.push_back(static_cast<int>(*n));
      }
    } else if (name == "--duration") {
      const auto d = parse_number(*value);
      if (!d || *d <= 0 || *d > 3600) return bad("--duration: '" + v + "' is not a number of seconds in (0, 3600]");
      o.duration = std::chrono::duration<double>(*d);
    } else if (name == "--think") {
      const auto t = parse_integer(*value);
      if (!t || *t < 1 || *t > 60'000) return bad("--think: '" + v + "' is not a number of milliseconds from 1 to 60000");
      o.think = std::chrono::milliseconds(*t);
    } else if (name == "--pool") {
      const auto t = parse_integer(*value);
      if (!t || *t < 1 || *t > 10'000) return bad("--pool: '" + v + "' is not a number of threads from 1 to 10000");
      o.pool_threads = static_cast<int>(*t);
    } else if (name == "--report") {
      if (v.empty()) return bad("--report: needs a file path");
      o.report_path = v;
    }
  }
  if (o.models.empty()) return bad("--models: no model chosen");
  return parsed;
}

std::string usage_text(std::string_view program) {
  std::string u;
  u += "usage: ";
  u += program;
  u += R"( [options]

Runs the same web-server-like workload against each way of handling I/O and
measures what each costs: N clients, each sending a small request (64 B),
reading a 64 B reply, and waiting a think time before the next, open-loop
(latency counted from each request's intended send time). Each (model, N) cell
runs its server in its own process pinned to one core, and the evq client load
generator in another process on another core.

options:
  --models LIST    comma list of models (default: all built ones):
)";
  for (const ModelInfo& m : all_models()) {
    u += "                     ";
    u += m.name;
    u += std::string(18 - std::min<std::size_t>(17, m.name.size()), ' ');
    u += m.description;
    u += '\n';
  }
  u += R"(  --clients LIST   comma list of client counts N (default: 100,1000,10000)
  --duration SEC   load phase of each cell, in seconds (default: 3)
  --think MS       think time between a client's requests, in ms (default: 50)
  --pool K         threads of the thread-pool model (default: 128)
  --report PATH    HTML report with SVG charts (default: ./evq-demo-report.html)
  --help           this text

Output: a progress line on stderr, a table on stdout with ratios to evq (epoll),
and the HTML report, whose path is printed at the end. Bad options exit with 2.
)";
  return u;
}

}  // namespace demo
