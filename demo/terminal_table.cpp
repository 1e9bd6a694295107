#include "terminal_table.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "format.hpp"

namespace demo {
namespace {

// Rows of cells padded to column widths; the first column left-aligned, the
// rest right-aligned. A row with one cell after the label spans the rest.
class TextTable {
 public:
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string render() const {
    std::vector<std::size_t> width;
    for (const auto& row : rows_) {
      if (row.size() <= 2) continue;  // spanning rows do not widen columns
      width.resize(std::max(width.size(), row.size()));
      for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (std::size_t i = 0; i < row.size(); ++i) {
        const std::size_t w = i < width.size() ? width[i] : 0;
        const std::string pad(w > row[i].size() ? w - row[i].size() : 0, ' ');
        if (i == 0) {
          line += row[i] + pad;  // labels align left
        } else if (row.size() == 2) {
          line += "  " + row[i];  // spans the rest
        } else {
          line += (row[i] == "|" ? " " : "  ") + pad + row[i];
        }
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string ratio(double value, double base) { return base > 0 ? format_ratio(value / base) : "-"; }

}  // namespace

std::string render_terminal_table(const RunSummary& run) {
  const Options& o = run.options;
  const std::string base_label = model_label(ModelId::evq_default);
  std::string out;
  char line[1024];
  std::snprintf(line, sizeof line,
                "evq demo: the same web-like load on each I/O model. Each client sends %d B, reads %d B, thinks %lld ms;\n"
                "latency from each request's intended send time (open loop); server on one core, clients on another.\n"
                "Load %.3g s per cell; CPU, context switches: server, load phase; RSS/conn: idle phase (all connected, none sending).\n",
                64, 64, static_cast<long long>(o.think.count()), o.duration.count());
  out += line;
  for (int n : o.clients) {
    TextTable t;
    t.add({"model", "req/s", "p50", "p99", "p99.9", "CPU usr+sys", "idle CPU", "peak RSS", "RSS/conn", "threads",
           "ctx sw", "|", "req/s", "p99", "CPU", "RSS/conn"});
    const CellResult* base = run.baseline(n);
    std::vector<std::string> notes;
    for (ModelId m : o.models) {
      const CellResult* c = run.find(m, n);
      if (!c) continue;
      const std::string label = row_label(m, o);
      if (!c->ran()) {
        t.add({label, "could not run: " + c->failure});
        continue;
      }
      const bool has_base = base != nullptr;
      t.add({label, format_count(c->requests_per_s), format_millis(c->p50_ms), format_millis(c->p99_ms),
             format_millis(c->p999_ms), format_seconds(c->cpu_user_s) + "+" + format_seconds(c->cpu_sys_s) + " s",
             format_seconds(c->idle_cpu_s) + " s", format_kib(static_cast<double>(c->peak_rss_kb)),
             format_bytes(c->rss_per_connection_bytes()), format_count(static_cast<double>(c->threads)),
             format_si(static_cast<double>(c->switches())), "|",
             has_base ? ratio(c->requests_per_s, base->requests_per_s) : "-",
             has_base ? ratio(c->p99_ms, base->p99_ms) : "-", has_base ? ratio(c->cpu_s(), base->cpu_s()) : "-",
             has_base ? ratio(c->rss_per_connection_bytes(), base->rss_per_connection_bytes()) : "-"});
      for (auto& note : cell_notes(*c, run)) notes.push_back(std::move(note));
    }
    out += "\nN = " + format_count(n) + " clients, offered " + format_count(run.offered_per_s(n)) + " req/s" +
           (base ? "   (right of |: ratio to " + base_label + ")" : "   (no ratios: " + base_label + " did not run)") +
           "\n";
    out += t.render();
    for (const std::string& note : notes) out += "  * " + note + "\n";
  }
  for (const ModelInfo& m : all_models())
    if (!m.built) out += "\n" + model_label(m.id) + " (evq completion): not built yet.\n";
  if (const std::string w = machine_warning(run); !w.empty()) out += "\nWarning: " + w + "\n";
  return out;
}

}  // namespace demo
