// W4: libev's classic event-loop benchmark (after libevent's test/bench.c, which
// libev's author used to compare the two), one process, one thread.
//   bench_w4 --lib evq|libev [--pipes N] [--active A] [--writes W]
//            [--iterations I] [--timeouts]
// N socket pairs, each read end watched (level-triggered). Each iteration:
// register every watcher and run one non-blocking loop pass (timed: "setup";
// libev defers its epoll_ctl calls to that pass), write one byte into A of the pairs
// spread evenly, then run the loop until W more bytes have been passed on
// (timed: "run"): each callback reads its byte and writes one into the next
// pair, so A pairs stay active at any time among N. --timeouts: every watcher
// also has a timeout (10 s plus a per-watcher jitter, never reached) that its
// callback pushes back on every event, as a server does with idle timeouts:
// libev with ev_timer_again, evq with Registry::reset_timer. Then every
// watcher is removed (not timed).
// The reads and writes are raw read(2)/write(2) calls in both, so the
// difference is the loop's own work. Prints one JSON line: median setup and
// run time per iteration, and run time per event (A + W events per run).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <evq/evq.hpp>
#ifdef BENCH_HAVE_LIBEV
#include <ev.h>
#endif

namespace {
using Clock = std::chrono::steady_clock;

struct Config {
  int pipes = 1000, active = 100, writes = 20000, iterations = 10;
  bool timeouts = false;
};

// The shared part: the socket pairs and the pass-the-byte rule.
struct Ring {
  explicit Ring(const Config& c) : cfg(c), fds(2 * static_cast<std::size_t>(c.pipes)) {
    for (int i = 0; i < c.pipes; ++i)
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, &fds[2 * static_cast<std::size_t>(i)]) < 0)
        std::perror("socketpair"), std::exit(1);
  }
  int read_fd(int i) const { return fds[2 * static_cast<std::size_t>(i)]; }
  int write_fd(int i) const { return fds[2 * static_cast<std::size_t>(i) + 1]; }
  // The callback body of bench.c's read_cb.
  void on_readable(int idx) {
    char ch;
    count += static_cast<int>(::read(read_fd(idx), &ch, 1));
    if (writes_left > 0) {
      int widx = idx + 1;
      if (widx >= cfg.pipes) widx -= cfg.pipes;
      if (::write(write_fd(widx), "e", 1) != 1) std::perror("write"), std::exit(1);
      --writes_left;
      ++fired;
    }
  }
  void prime() {
    count = fired = 0;
    writes_left = cfg.writes;
    const int space = std::max(1, cfg.pipes / cfg.active);
    for (int i = 0; i < cfg.active; ++i, ++fired)
      if (::write(write_fd((i * space) % cfg.pipes), "e", 1) != 1) std::perror("write"), std::exit(1);
  }
  bool done() const { return count == fired; }
  std::chrono::nanoseconds timeout_of(int i) const {  // 10 s + up to ~1 s jitter
    return std::chrono::seconds(10) + std::chrono::microseconds((i * 7919) % 1000000);
  }

  Config cfg;
  std::vector<int> fds;
  int count = 0, fired = 0, writes_left = 0;
};

struct Times {
  std::vector<double> setup_us, run_us;
};

void run_evq(Ring& r, Times& t) {
  auto poll = evq::Poll::create(evq::Backend::epoll);
  if (!poll) std::fprintf(stderr, "poll: %s\n", poll.error().message().c_str()), std::exit(1);
  evq::Registry& reg = poll->registry();
  const std::size_t n = static_cast<std::size_t>(r.cfg.pipes);
  std::vector<evq::SourceFd> sources;
  sources.reserve(n);
  for (std::size_t i = 0; i < n; ++i) sources.emplace_back(r.read_fd(static_cast<int>(i)));
  std::vector<evq::TimerId> timers(n);
  constexpr std::uint64_t kTimerBit = std::uint64_t{1} << 63;
  evq::Events events(1024);
  for (int it = 0; it < r.cfg.iterations; ++it) {
    auto t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      if (reg.add(sources[i], evq::Token{i}, evq::Interest::readable, evq::Trigger::level))
        std::fprintf(stderr, "add failed\n"), std::exit(1);
      if (r.cfg.timeouts) {
        auto id = reg.add_timer(evq::Token{kTimerBit | i}, t0 + r.timeout_of(static_cast<int>(i)));
        if (!id) std::fprintf(stderr, "add_timer failed\n"), std::exit(1);
        timers[i] = *id;
      }
    }
    poll->poll(events, std::chrono::nanoseconds(0));  // bench.c's first EVLOOP_NONBLOCK pass
    auto t1 = Clock::now();
    r.prime();
    auto t2 = Clock::now();
    while (!r.done()) {
      poll->poll(events, std::nullopt);
      const auto now = r.cfg.timeouts ? Clock::now() : Clock::time_point{};  // once per batch, like ev_now
      for (const evq::Event& ev : events) {
        if (ev.is_timer()) continue;  // never due within a run
        const auto i = static_cast<std::size_t>(ev.token());
        r.on_readable(static_cast<int>(i));
        if (r.cfg.timeouts) {
          if (reg.reset_timer(timers[i], now + r.timeout_of(static_cast<int>(i))))
            std::fprintf(stderr, "reset_timer failed\n"), std::exit(1);
        }
      }
    }
    auto t3 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      reg.remove(sources[i]);
      if (r.cfg.timeouts) reg.cancel_timer(timers[i]);
    }
    t.setup_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    t.run_us.push_back(std::chrono::duration<double, std::micro>(t3 - t2).count());
  }
}

#ifdef BENCH_HAVE_LIBEV
struct LibevWatcher {
  ev_io io;
  ev_timer timer;
  Ring* ring;
  int index;
};

void libev_read_cb(struct ev_loop* loop, ev_io* w, int) {
  auto* self = reinterpret_cast<LibevWatcher*>(w);  // io is the first member
  self->ring->on_readable(self->index);
  if (self->ring->cfg.timeouts) ev_timer_again(loop, &self->timer);
}
void libev_timer_cb(struct ev_loop*, ev_timer*, int) {}

void run_libev(Ring& r, Times& t) {
  struct ev_loop* loop = ev_loop_new(EVBACKEND_EPOLL);
  if (!loop) std::fprintf(stderr, "ev_loop_new failed\n"), std::exit(1);
  std::vector<LibevWatcher> ws(static_cast<std::size_t>(r.cfg.pipes));
  for (int i = 0; i < r.cfg.pipes; ++i) {
    LibevWatcher& w = ws[static_cast<std::size_t>(i)];
    w.ring = &r;
    w.index = i;
    ev_io_init(&w.io, libev_read_cb, r.read_fd(i), EV_READ);
    const double secs = std::chrono::duration<double>(r.timeout_of(i)).count();
    ev_timer_init(&w.timer, libev_timer_cb, secs, secs);
  }
  for (int it = 0; it < r.cfg.iterations; ++it) {
    ev_now_update(loop);
    auto t0 = Clock::now();
    for (auto& w : ws) {
      ev_io_start(loop, &w.io);
      if (r.cfg.timeouts) ev_timer_again(loop, &w.timer);
    }
    ev_run(loop, EVRUN_NOWAIT);  // libev applies fd changes (epoll_ctl) here, so it counts as setup
    auto t1 = Clock::now();
    r.prime();
    auto t2 = Clock::now();
    while (!r.done()) ev_run(loop, EVRUN_ONCE);
    auto t3 = Clock::now();
    for (auto& w : ws) {
      ev_io_stop(loop, &w.io);
      ev_timer_stop(loop, &w.timer);
    }
    t.setup_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    t.run_us.push_back(std::chrono::duration<double, std::micro>(t3 - t2).count());
  }
  ev_loop_destroy(loop);
}
#endif

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  Config c;
  const char* lib = "evq";
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) std::fprintf(stderr, "missing value for %s\n", argv[i]), std::exit(2);
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--lib")) lib = next();
    else if (!std::strcmp(argv[i], "--pipes")) c.pipes = std::atoi(next());
    else if (!std::strcmp(argv[i], "--active")) c.active = std::atoi(next());
    else if (!std::strcmp(argv[i], "--writes")) c.writes = std::atoi(next());
    else if (!std::strcmp(argv[i], "--iterations")) c.iterations = std::atoi(next());
    else if (!std::strcmp(argv[i], "--timeouts")) c.timeouts = true;
    else std::fprintf(stderr, "unknown option %s\n", argv[i]), std::exit(2);
  }
  if (c.pipes <= 0 || c.active <= 0 || c.active > c.pipes || c.iterations <= 0)
    std::fprintf(stderr, "need 0 < active <= pipes, iterations > 0\n"), std::exit(2);
  Ring r(c);
  Times t;
  if (!std::strcmp(lib, "evq")) {
    run_evq(r, t);
#ifdef BENCH_HAVE_LIBEV
  } else if (!std::strcmp(lib, "libev")) {
    run_libev(r, t);
#endif
  } else {
    std::fprintf(stderr, "unknown or not built: --lib %s\n", lib);
    return 2;
  }
  const double run = median(t.run_us);
  std::printf("{\"lib\": \"%s\", \"pipes\": %d, \"active\": %d, \"writes\": %d, \"timeouts\": %s, "
              "\"setup_us\": %.1f, \"run_us\": %.1f, \"ns_per_event\": %.1f}\n",
              lib, c.pipes, c.active, c.writes, c.timeouts ? "true" : "false", median(t.setup_us), run,
              run * 1000.0 / (c.active + c.writes));
  return 0;
}
