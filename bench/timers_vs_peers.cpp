// Public-API timer benchmark: evq against libev, libuv and standalone Asio at
// 1,000,000 timers, ns per timer start / cancel / fire, side by side.
//
// Build and run with bench/timers_vs_peers.sh (it builds libevq, compiles this
// file with g++ -O2 -DNDEBUG, pins to CPU 1 and prints a table).
//
// Each iteration does 1,000,000 operations; the "ns_per_op" counter is
// (CPU time of the iteration, user + system) / 1e6. CPU time, not wall time:
// on a shared machine wall time mostly measures the other processes; the
// system calls poll() makes are still counted. Setup and clean-up run with timing
// paused. Timers live in arrays allocated once, before the timed region, and
// every library gets one untimed warm-up round so its internal heap / slot
// vectors already hold 1M entries (no growth inside the timed region).
//   start:  arm 1M timers, deadlines uniform over the next 10 s
//   cancel: cancel those 1M armed timers (in arming order; the deadlines are
//           random, so the order in the timer structure is random)
//   fire:   1M timers armed with deadlines already passed; time the loop that
//           polls (zero timeout) until every one of them has fired
// Per library:
//   evq:   Registry::add_timer / cancel_timer, Poll::poll(events, 0ns)
//          with a 1024-event buffer
//   libev: ev_timer_set + ev_timer_start / ev_timer_stop, ev_run(EVRUN_NOWAIT);
//          fire uses a negative "after" (deadline in the past)
//   libuv: uv_timer_init once per handle (untimed), uv_timer_start /
//          uv_timer_stop, uv_run(UV_RUN_NOWAIT); libuv's timeout is an
//          unsigned ms count, so "past" is timeout 0 (due now)
//   asio:  steady_timer::expires_at + async_wait / cancel, io_context::poll().
//          async_wait allocates its wait operation (Asio's per-thread
//          recycling cache holds only a few), so Asio's start includes a
//          malloc per timer: the library does not allow otherwise. Cancel
//          only queues the aborted handlers; they are drained untimed.
#include <benchmark/benchmark.h>

#include <ev.h>
#include <uv.h>

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "evq/evq.hpp"

namespace {

constexpr std::size_t kTimers = 1'000'000;
constexpr std::int64_t kSpanNs = 10'000'000'000;  // 10 s
constexpr int kIterations = 3;

using Clock = std::chrono::steady_clock;

// Offsets in ns, uniform in [1 ms, 10 s]: far enough out that none fires
// while start/cancel run.
const std::vector<std::int64_t>& offsets() {
  static const std::vector<std::int64_t> v = [] {
    std::vector<std::int64_t> o(kTimers);
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int64_t> d(1'000'000, kSpanNs);
    for (auto& x : o) x = d(rng);
    return o;
  }();
  return v;
}

// (1e6 / 1e9) * iterations / seconds, inverted: seconds * 1e3 / iterations,
// which is ns per timer when an iteration handles 1e6 timers.
void per_op(benchmark::State& state) {
  state.counters["ns_per_op"] = benchmark::Counter(
      static_cast<double>(kTimers) / 1e9,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kTimers));
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "timers_vs_peers: %s\n", what);
  std::abort();
}

// ---------------------------------------------------------------- evq

struct Evq {
  evq::Poll poll;
  std::vector<evq::TimerId> ids = std::vector<evq::TimerId>(kTimers);
  evq::Events events{1024};

  static Evq make() {
    auto p = evq::Poll::create();
    if (!p) die("evq::Poll::create failed");
    return Evq{std::move(*p)};
  }
  void start_all(Clock::time_point base) {
    const auto& o = offsets();
    auto& reg = poll.registry();
    for (std::size_t i = 0; i < kTimers; ++i) {
      auto r = reg.add_timer(evq::Token{i}, base + std::chrono::nanoseconds(o[i]));
      if (!r) die("evq add_timer failed");
      ids[i] = *r;
    }
  }
  void start_all_past() {
    auto& reg = poll.registry();
    const auto past = Clock::now() - std::chrono::seconds(1);
    for (std::size_t i = 0; i < kTimers; ++i) {
      auto r = reg.add_timer(evq::Token{i}, past - std::chrono::nanoseconds(i));
      if (!r) die("evq add_timer (past) failed");
      ids[i] = *r;
    }
  }
  void cancel_all() {
    auto& reg = poll.registry();
    for (std::size_t i = 0; i < kTimers; ++i) benchmark::DoNotOptimize(reg.cancel_timer(ids[i]));
  }
  std::size_t fire_all() {
    std::size_t fired = 0;
    while (fired < kTimers) {
      if (poll.poll(events, std::chrono::nanoseconds(0))) die("evq poll failed");
      for (const evq::Event& e : events) fired += e.is_timer() ? 1 : 0;
    }
    return fired;
  }
  void warm_up() {
    start_all(Clock::now());
    cancel_all();
  }
};

void BM_evq_start(benchmark::State& state) {
  Evq q = Evq::make();
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    const auto base = Clock::now();
    state.ResumeTiming();
    q.start_all(base);
    state.PauseTiming();
    q.cancel_all();
    state.ResumeTiming();
  }
  per_op(state);
}

void BM_evq_cancel(benchmark::State& state) {
  Evq q = Evq::make();
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    q.start_all(Clock::now());
    state.ResumeTiming();
    q.cancel_all();
  }
  per_op(state);
}

void BM_evq_fire(benchmark::State& state) {
  Evq q = Evq::make();
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    q.start_all_past();
    state.ResumeTiming();
    benchmark::DoNotOptimize(q.fire_all());
  }
  per_op(state);
}

// ---------------------------------------------------------------- libev

std::size_t g_ev_fired = 0;
void on_ev_timer(struct ev_loop*, ev_timer*, int) { ++g_ev_fired; }

struct Libev {
  struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
  std::unique_ptr<ev_timer[]> t = std::make_unique<ev_timer[]>(kTimers);

  Libev() {
    if (!loop) die("ev_loop_new failed");
    for (std::size_t i = 0; i < kTimers; ++i) ev_timer_init(&t[i], on_ev_timer, 1.0, 0.);
  }
  ~Libev() {
    for (std::size_t i = 0; i < kTimers; ++i) ev_timer_stop(loop, &t[i]);
    ev_loop_destroy(loop);
  }
  void start_all() {
    const auto& o = offsets();
    for (std::size_t i = 0; i < kTimers; ++i) {
      ev_timer_set(&t[i], static_cast<double>(o[i]) * 1e-9, 0.);
      ev_timer_start(loop, &t[i]);
    }
  }
  void start_all_past() {
    for (std::size_t i = 0; i < kTimers; ++i) {
      ev_timer_set(&t[i], -1.0 - static_cast<double>(i) * 1e-9, 0.);
      ev_timer_start(loop, &t[i]);
    }
  }
  void cancel_all() {
    for (std::size_t i = 0; i < kTimers; ++i) ev_timer_stop(loop, &t[i]);
  }
  std::size_t fire_all() {
    g_ev_fired = 0;
    while (g_ev_fired < kTimers) ev_run(loop, EVRUN_NOWAIT);
    return g_ev_fired;
  }
  void warm_up() {
    ev_now_update(loop);
    start_all();
    cancel_all();
  }
};

void BM_libev_start(benchmark::State& state) {
  Libev q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    ev_now_update(q.loop);
    state.ResumeTiming();
    q.start_all();
    state.PauseTiming();
    q.cancel_all();
    state.ResumeTiming();
  }
  per_op(state);
}

void BM_libev_cancel(benchmark::State& state) {
  Libev q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    ev_now_update(q.loop);
    q.start_all();
    state.ResumeTiming();
    q.cancel_all();
  }
  per_op(state);
}

void BM_libev_fire(benchmark::State& state) {
  Libev q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    ev_now_update(q.loop);
    q.start_all_past();
    state.ResumeTiming();
    benchmark::DoNotOptimize(q.fire_all());
  }
  per_op(state);
}

// ---------------------------------------------------------------- libuv

std::size_t g_uv_fired = 0;
void on_uv_timer(uv_timer_t*) { ++g_uv_fired; }

struct Libuv {
  uv_loop_t loop;
  std::unique_ptr<uv_timer_t[]> t = std::make_unique<uv_timer_t[]>(kTimers);

  Libuv() {
    if (uv_loop_init(&loop) != 0) die("uv_loop_init failed");
    for (std::size_t i = 0; i < kTimers; ++i) uv_timer_init(&loop, &t[i]);
  }
  ~Libuv() {
    for (std::size_t i = 0; i < kTimers; ++i) uv_close(reinterpret_cast<uv_handle_t*>(&t[i]), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  void start_all() {
    const auto& o = offsets();
    for (std::size_t i = 0; i < kTimers; ++i)
      uv_timer_start(&t[i], on_uv_timer, static_cast<std::uint64_t>(o[i] / 1'000'000), 0);
  }
  void start_all_past() {
    for (std::size_t i = 0; i < kTimers; ++i) uv_timer_start(&t[i], on_uv_timer, 0, 0);
  }
  void cancel_all() {
    for (std::size_t i = 0; i < kTimers; ++i) uv_timer_stop(&t[i]);
  }
  std::size_t fire_all() {
    g_uv_fired = 0;
    while (g_uv_fired < kTimers) uv_run(&loop, UV_RUN_NOWAIT);
    return g_uv_fired;
  }
  void warm_up() {
    uv_update_time(&loop);
    start_all();
    cancel_all();
  }
};

void BM_libuv_start(benchmark::State& state) {
  Libuv q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    uv_update_time(&q.loop);
    state.ResumeTiming();
    q.start_all();
    state.PauseTiming();
    q.cancel_all();
    state.ResumeTiming();
  }
  per_op(state);
}

void BM_libuv_cancel(benchmark::State& state) {
  Libuv q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    uv_update_time(&q.loop);
    q.start_all();
    state.ResumeTiming();
    q.cancel_all();
  }
  per_op(state);
}

void BM_libuv_fire(benchmark::State& state) {
  Libuv q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    uv_update_time(&q.loop);
    q.start_all_past();
    state.ResumeTiming();
    benchmark::DoNotOptimize(q.fire_all());
  }
  per_op(state);
}

// ---------------------------------------------------------------- asio

struct Asio {
  asio::io_context ctx{1};
  std::vector<asio::steady_timer> t;
  std::size_t fired = 0;

  Asio() {
    t.reserve(kTimers);
    for (std::size_t i = 0; i < kTimers; ++i) t.emplace_back(ctx);
  }
  void start_all(Clock::time_point base) {
    const auto& o = offsets();
    for (std::size_t i = 0; i < kTimers; ++i) {
      t[i].expires_at(base + std::chrono::nanoseconds(o[i]));
      t[i].async_wait([this](const std::error_code& ec) { fired += ec ? 0 : 1; });
    }
  }
  void start_all_past() {
    const auto past = Clock::now() - std::chrono::seconds(1);
    for (std::size_t i = 0; i < kTimers; ++i) {
      t[i].expires_at(past - std::chrono::nanoseconds(i));
      t[i].async_wait([this](const std::error_code& ec) { fired += ec ? 0 : 1; });
    }
  }
  void cancel_all() {
    for (std::size_t i = 0; i < kTimers; ++i) benchmark::DoNotOptimize(t[i].cancel());
  }
  void drain() {  // runs the operation_aborted handlers that cancel queued
    ctx.restart();
    ctx.poll();
  }
  std::size_t fire_all() {
    fired = 0;
    while (fired < kTimers) {
      ctx.restart();
      ctx.poll();
    }
    return fired;
  }
  void warm_up() {
    start_all(Clock::now());
    cancel_all();
    drain();
  }
};

void BM_asio_start(benchmark::State& state) {
  Asio q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    const auto base = Clock::now();
    state.ResumeTiming();
    q.start_all(base);
    state.PauseTiming();
    q.cancel_all();
    q.drain();
    state.ResumeTiming();
  }
  per_op(state);
}

void BM_asio_cancel(benchmark::State& state) {
  Asio q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    q.start_all(Clock::now());
    state.ResumeTiming();
    q.cancel_all();
    state.PauseTiming();
    q.drain();
    state.ResumeTiming();
  }
  per_op(state);
}

void BM_asio_fire(benchmark::State& state) {
  Asio q;
  q.warm_up();
  for (auto _ : state) {
    state.PauseTiming();
    q.start_all_past();
    state.ResumeTiming();
    benchmark::DoNotOptimize(q.fire_all());
  }
  per_op(state);
}

#define EVQ_TPEER(fn) \
  BENCHMARK(fn)->Iterations(kIterations)->Unit(benchmark::kMillisecond)

EVQ_TPEER(BM_evq_start);
EVQ_TPEER(BM_evq_cancel);
EVQ_TPEER(BM_evq_fire);
EVQ_TPEER(BM_libev_start);
EVQ_TPEER(BM_libev_cancel);
EVQ_TPEER(BM_libev_fire);
EVQ_TPEER(BM_libuv_start);
EVQ_TPEER(BM_libuv_cancel);
EVQ_TPEER(BM_libuv_fire);
EVQ_TPEER(BM_asio_start);
EVQ_TPEER(BM_asio_cancel);
EVQ_TPEER(BM_asio_fire);

}  // namespace

BENCHMARK_MAIN();
