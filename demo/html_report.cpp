#include "html_report.hpp"

#include <cstdio>
#include <functional>

#include "format.hpp"
#include "svg_chart.hpp"

namespace demo {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// One fixed color per model, the same in every chart.
std::string color_of(ModelId m) {
  switch (m) {
    case ModelId::thread_per_connection: return "#d62728";
    case ModelId::thread_pool: return "#ff7f0e";
    case ModelId::busy_poll: return "#9467bd";
    case ModelId::evq_default: return "#2ca02c";
    case ModelId::evq_poll: return "#1f77b4";
    case ModelId::evq_ring: return "#17becf";
  }
  return "#000";
}

std::string td(const std::string& s, const char* cls = "n") { return std::string("<td class=\"") + cls + "\">" + escape(s) + "</td>"; }

std::string ratio_cell(double value, double base) {
  return td(base > 0 ? format_ratio(value / base) : "-", "r");
}

Chart make_chart(const RunSummary& run, std::string title, std::string unit, std::string label, bool log_y,
                 const std::function<double(const CellResult&)>& value) {
  Chart chart{std::move(title), std::move(unit), std::move(label), log_y, {}, {}, {}};
  for (int n : run.options.clients) chart.xs.push_back(n);
  for (ModelId m : run.options.models) {
    ChartSeries s{row_label(m, run.options), color_of(m), false, {}};
    for (int n : run.options.clients) {
      const CellResult* c = run.find(m, n);
      if (!c) continue;
      if (c->ran()) {
        s.points.emplace_back(n, value(*c));
      } else {
        chart.notes.push_back(model_label(m) + " @" + format_count(n) + ": not run");
      }
    }
    chart.series.push_back(std::move(s));
  }
  return chart;
}

std::string table_for(const RunSummary& run, int n) {
  const CellResult* base = run.baseline(n);
  std::string h;
  h += "<h3>N = " + format_count(n) + " clients &middot; offered " + format_count(run.offered_per_s(n)) +
       " req/s</h3>\n<table>\n<thead><tr><th>model</th><th>req/s</th><th>p50</th><th>p99</th><th>p99.9</th>"
       "<th>max</th><th>CPU user</th><th>CPU sys</th><th>idle CPU</th><th>peak RSS</th><th>RSS/conn</th>"
       "<th>threads</th><th>ctx sw (vol+invol)</th><th>no reply</th><th class=\"r\">req/s &times;</th>"
       "<th class=\"r\">p99 &times;</th><th class=\"r\">CPU &times;</th><th class=\"r\">RSS/conn &times;</th></tr></thead>\n<tbody>\n";
  for (ModelId m : run.options.models) {
    const CellResult* c = run.find(m, n);
    if (!c) continue;
    h += "<tr data-model=\"" + std::string(model_info(m).name) + "\"><td class=\"m\"><span class=\"dot\" style=\"background:" +
         color_of(m) + "\"></span>" + escape(row_label(m, run.options)) + "</td>";
    if (!c->ran()) {
      h += "<td class=\"fail\" colspan=\"17\">could not run: " + escape(c->failure) + "</td></tr>\n";
      continue;
    }
    h += td(format_count(c->requests_per_s)) + td(format_millis(c->p50_ms)) + td(format_millis(c->p99_ms)) +
         td(format_millis(c->p999_ms)) + td(format_millis(c->max_ms)) + td(format_seconds(c->cpu_user_s) + " s") +
         td(format_seconds(c->cpu_sys_s) + " s") + td(format_seconds(c->idle_cpu_s) + " s") +
         td(format_kib(static_cast<double>(c->peak_rss_kb))) + td(format_bytes(c->rss_per_connection_bytes())) +
         td(format_count(static_cast<double>(c->threads))) +
         td(format_count(static_cast<double>(c->voluntary_switches)) + " + " +
            format_count(static_cast<double>(c->involuntary_switches))) +
         td(format_count(static_cast<double>(c->unanswered)));
    if (base) {
      h += ratio_cell(c->requests_per_s, base->requests_per_s) + ratio_cell(c->p99_ms, base->p99_ms) +
           ratio_cell(c->cpu_s(), base->cpu_s()) +
           ratio_cell(c->rss_per_connection_bytes(), base->rss_per_connection_bytes());
    } else {
      h += td("-", "r") + td("-", "r") + td("-", "r") + td("-", "r");
    }
    h += "</tr>\n";
  }
  h += "</tbody></table>\n";
  std::string notes;
  for (ModelId m : run.options.models)
    if (const CellResult* c = run.find(m, n))
      for (const std::string& note : cell_notes(*c, run)) notes += "<li>" + escape(note) + "</li>";
  if (!notes.empty()) h += "<ul class=\"notes\">" + notes + "</ul>\n";
  return h;
}

}  // namespace

std::string render_html_report(const RunSummary& run) {
  const Options& o = run.options;
  std::string h;
  h += R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>evq demo: I/O models side by side</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{margin-top:1.6em}h3{margin:1.4em 0 .4em}
table{border-collapse:collapse;font-size:.9em}
th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td.m,th:first-child{text-align:left}
td.r,th.r{background:#f7fbf7}td.fail{text-align:left;color:#a33}
.dot{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:.45em}
.charts{display:flex;flex-wrap:wrap;gap:1em}.warn{background:#fff4e5;border-left:4px solid #e69500;padding:.5em .8em}.notes{color:#555;font-size:.9em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{color:#555}dd{margin:0}
</style></head><body>
<h1>evq demo: the same web-like load on each way of handling I/O</h1>
<p>Each of N clients sends a 64&nbsp;B request, reads a 64&nbsp;B reply and waits a think time before its next
request, like a browser on a web server. Clients are open-loop: each request has an intended send time (an evq
repeating timer), and its latency counts from that time, so a slow server cannot hide its delay by slowing the
clients down. Each model's server runs in its own process on one core; the clients, an evq program, run in another
process on another core. Before the load, an idle phase holds all N connections open with no traffic: the growth of
the server's resident memory over its baseline, divided by N, is the memory one idle connection costs in user space
(RSS leaves out kernel memory: socket buffers, and the 16 KB kernel stack each thread has on x86-64).</p>
)";
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<dl><dt>think time</dt><dd>%lld ms</dd><dt>load phase per cell</dt><dd>%.3g s</dd>"
                "<dt>thread pool</dt><dd>%d threads</dd><dt>whole run</dt><dd>%.1f s</dd>",
                static_cast<long long>(o.think.count()), o.duration.count(), o.pool_threads, run.run_seconds);
  h += buf;
  h += "<dt>machine</dt><dd>" + escape(run.machine) + "</dd><dt>started</dt><dd>" + escape(run.started_at) +
       "</dd></dl>\n";
  if (const std::string w = machine_warning(run); !w.empty()) h += "<p class=\"warn\"><b>Warning:</b> " + escape(w) + "</p>\n";
  h += "<p>Ratios (shaded columns) are to <b>" + escape(model_label(ModelId::evq_default)) +
       "</b> at the same N: above 1&times; means more requests per second, higher latency, more CPU or more "
       "memory per connection than evq.</p>\n";

  h += "<h2>Charts</h2>\n<div class=\"charts\">\n";
  Chart throughput = make_chart(run, "Throughput", "req/s", "requests per second", true, [](const CellResult& c) { return c.requests_per_s; });
  ChartSeries offered{"offered load", "#999", true, {}};
  for (int n : o.clients) offered.points.emplace_back(n, run.offered_per_s(n));
  throughput.series.push_back(offered);
  h += render_svg_chart(throughput);
  h += render_svg_chart(make_chart(run, "p99 latency (from intended send time)", "ms", "p99 latency", true,
                                   [](const CellResult& c) { return c.p99_ms; }));
  h += render_svg_chart(make_chart(run, "Server CPU in the load phase (user+sys)", "s", "CPU seconds", false,
                                   [](const CellResult& c) { return c.cpu_s(); }));
  h += render_svg_chart(make_chart(run, "Server peak memory (VmHWM)", "MB", "MB", true,
                                   [](const CellResult& c) { return static_cast<double>(c.peak_rss_kb) / 1024.0; }));
  h += render_svg_chart(make_chart(run, "Memory per idle connection (RSS growth / N)", "KB", "KB per connection", true,
                                   [](const CellResult& c) { return c.rss_per_connection_bytes() / 1024.0; }));
  h += "</div>\n<h2>Results</h2>\n";
  for (int n : o.clients) h += table_for(run, n);
  for (const ModelInfo& m : all_models())
    if (!m.built) h += "<p>" + escape(model_label(m.id)) + " (evq completion): not built yet.</p>\n";
  h += R"(<h2>How each figure is measured</h2><ul>
<li><b>req/s</b>: replies received for requests due in the load phase, divided by its length.</li>
<li><b>p50/p99/p99.9/max</b>: from each request's intended send time to its reply, log-linear histogram (1.6%
precision). Requests due but never answered count with the time they waited until the end (a lower bound).</li>
<li><b>CPU user/sys, ctx sw</b>: the server's getrusage(RUSAGE_SELF), all threads, taken by the server itself on
SIGUSR1 just before the load phase and just after it; the server's whole-life totals come from wait4().</li>
<li><b>idle CPU</b>: the same, over the idle phase (all N connected, none sending).</li>
<li><b>peak RSS</b>: VmHWM of /proc/&lt;pid&gt;/status after the load phase. <b>RSS/conn</b>: VmRSS in the idle phase
minus VmRSS before any connection, over N. <b>threads</b>: Threads of the same file.</li>
</ul>
<h2>Whole-life server figures (wait4) and the load generator</h2>
<table><thead><tr><th>model</th><th>N</th><th>connect</th><th>CPU user</th><th>CPU sys</th><th>ctx sw</th>
<th>client CPU</th><th>client timer lag p99</th><th>others on these CPUs</th></tr></thead><tbody>
)";
  for (int n : o.clients)
    for (ModelId m : o.models)
      if (const CellResult* c = run.find(m, n); c && c->ran())
        h += "<tr><td class=\"m\">" + escape(row_label(m, o)) + "</td>" + td(format_count(n)) +
             td(format_seconds(c->connect_seconds) + " s") + td(format_seconds(c->life_cpu_user_s) + " s") +
             td(format_seconds(c->life_cpu_sys_s) + " s") + td(format_count(static_cast<double>(c->life_switches))) +
             td(format_count(c->client_cpu_share * 100) + "%") + td(format_millis(c->client_lag_p99_ms)) +
             td(format_count(c->window_seconds > 0 ? 100 * c->other_cpu_s / c->window_seconds : 0) + "% of a core") +
             "</tr>\n";
  h += "</tbody></table>\n</body></html>\n";
  return h;
}

}  // namespace demo
