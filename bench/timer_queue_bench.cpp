// Microbenchmark of the core's timer structures at 1,000,000 timers: the 4-ary
// heap (TimerQueue, the one the core uses) against the hierarchical timing
// wheel (TimerWheel) behind the same interface. Internal: it includes
// src/core headers directly; the public-API timer benchmark against libev,
// libuv and Asio belongs with the rest of bench/.
//
// Build and run (Release flags matter):
//   g++ -std=c++20 -O2 -DNDEBUG -Iinclude -Isrc bench/timer_queue_bench.cpp
//       src/core/timer_queue.cpp src/core/timer_wheel.cpp src/core/error_category.cpp
//       -lbenchmark -lpthread -o timer_queue_bench
//   taskset -c 1 ./timer_queue_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
//
// Each benchmark iteration does one million operations on a structure that
// already held a million timers once, so vectors are at full size (steady
// state: no allocation); the ns_per_op column is the figure to read.
//   add:    arm 1M timers into an empty queue
//   cancel: cancel 1M armed timers, in random order
//   fire:   drain 1M timers the way a poll loop does, the clock advancing 1 ms
//           a step, next_deadline() and expire(now, 1024 events) per step
//   rearm:  1M timers stay armed; cancel one at random and arm a new one 10 s
//           out (an idle timeout reset on every request): ns per cancel+add
// Deadline spreads: uniform random over 10 s, or increasing (each timer a
// fixed timeout after the previous, as idle timeouts armed in sequence are).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "core/timer_queue.hpp"
#include "core/timer_wheel.hpp"

namespace {

using evq::Event;
using evq::Token;
using evq::detail::TimerHandle;

constexpr std::size_t kTimers = 1'000'000;
constexpr std::int64_t kSpan = 10'000'000'000;  // 10 s
constexpr std::int64_t kStep = 1'000'000;       // 1 ms

enum Spread : int { uniform = 0, increasing = 1 };

// A realistic clock origin (steady_clock counts from boot on Linux), so the
// wheel sees tick numbers of the size it would in a real process.
std::int64_t origin() {
  static const std::int64_t t =
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count();
  return t;
}

std::vector<std::int64_t> deadlines(Spread spread, std::int64_t from) {
  std::vector<std::int64_t> d(kTimers);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::int64_t> dist(1, kSpan);
  for (std::size_t i = 0; i < kTimers; ++i) {
    d[i] = from + (spread == uniform ? dist(rng)
                                     : static_cast<std::int64_t>(i) * (kSpan / kTimers) + 1);
  }
  return d;
}

void per_op(benchmark::State& state, std::size_t ops_per_iteration) {
  state.counters["per_op"] = benchmark::Counter(
      static_cast<double>(ops_per_iteration),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(static_cast<std::int64_t>(ops_per_iteration * state.iterations()));
}

// Grows every internal vector to a million timers once, then empties the
// queue, and sets its notion of now (the wheel files relative to it).
template <class Queue>
void warm_up(Queue& q, std::int64_t now) {
  std::vector<TimerHandle> h;
  h.reserve(kTimers);
  for (std::size_t i = 0; i < kTimers; ++i) h.push_back(*q.add(Token{i}, now + 1, 0));
  for (const TimerHandle& x : h) (void)q.cancel(x);
  Event e;
  (void)q.expire(now, &e, 1);
}

template <class Queue>
void BM_Add(benchmark::State& state) {
  const std::int64_t now = origin();
  const auto d = deadlines(static_cast<Spread>(state.range(0)), now);
  Queue q;
  warm_up(q, now);
  std::vector<TimerHandle> h(kTimers);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kTimers; ++i) h[i] = *q.add(Token{i}, d[i], 0);
    state.PauseTiming();
    // Cancelled rather than expired: expiring would move the wheel's now
    // past the next iteration's deadlines.
    for (const TimerHandle& x : h) (void)q.cancel(x);
    state.ResumeTiming();
  }
  per_op(state, kTimers);
}

template <class Queue>
void BM_Cancel(benchmark::State& state) {
  const std::int64_t now = origin();
  const auto d = deadlines(static_cast<Spread>(state.range(0)), now);
  Queue q;
  warm_up(q, now);
  std::vector<TimerHandle> h(kTimers);
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    state.PauseTiming();
    for (std::size_t i = 0; i < kTimers; ++i) h[i] = *q.add(Token{i}, d[i], 0);
    std::shuffle(h.begin(), h.end(), rng);
    state.ResumeTiming();
    for (const TimerHandle& x : h) benchmark::DoNotOptimize(q.cancel(x));
  }
  per_op(state, kTimers);
}

template <class Queue>
void BM_Fire(benchmark::State& state) {
  const std::int64_t now = origin();
  const auto d = deadlines(static_cast<Spread>(state.range(0)), now);
  Queue q;
  warm_up(q, now);
  std::vector<Event> buf(1024);
  // Each iteration starts where the last one's clock stopped: the wheel's
  // now only moves forward.
  std::int64_t base = now;
  for (auto _ : state) {
    state.PauseTiming();
    for (std::size_t i = 0; i < kTimers; ++i) (void)q.add(Token{i}, d[i] - now + base, 0);
    state.ResumeTiming();
    std::size_t fired = 0;
    std::int64_t t = base;
    for (; fired < kTimers; t += kStep) {
      benchmark::DoNotOptimize(q.next_deadline());
      std::size_t n;
      while ((n = q.expire(t, buf.data(), buf.size())) > 0) fired += n;
    }
    benchmark::DoNotOptimize(fired);
    base = t;
  }
  per_op(state, kTimers);
}

template <class Queue>
void BM_Rearm(benchmark::State& state) {
  std::int64_t now = origin();
  const auto d = deadlines(uniform, now);
  Queue q;
  warm_up(q, now);
  std::vector<TimerHandle> h(kTimers);
  // Pushed 10 s out so none fires while the clock creeps through the run.
  for (std::size_t i = 0; i < kTimers; ++i) h[i] = *q.add(Token{i}, d[i] + kSpan, 0);
  std::mt19937_64 rng(9);
  std::vector<std::uint32_t> victims(kTimers);
  for (auto& v : victims) v = static_cast<std::uint32_t>(rng() % kTimers);
  std::uniform_int_distribution<std::int64_t> jitter(0, kStep);
  std::vector<std::int64_t> offsets(kTimers);
  for (auto& o : offsets) o = kSpan + jitter(rng);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kTimers; ++i) {
      // The clock creeps forward as in a server, 1 us per request.
      now += 1000;
      const std::uint32_t v = victims[i];
      (void)q.cancel(h[v]);
      h[v] = *q.add(Token{v}, now + offsets[i], 0);
    }
    // Let the structure see the clock move, as poll would; should a long run
    // reach the first deadlines, they fire here, untimed.
    state.PauseTiming();
    Event e[256];
    while (q.expire(now, e, 256) > 0) {
    }
    state.ResumeTiming();
  }
  per_op(state, kTimers);
}

void spreads(benchmark::internal::Benchmark* b) {
  b->ArgName("increasing")->Arg(uniform)->Arg(increasing)->Unit(benchmark::kMillisecond);
}

BENCHMARK_TEMPLATE(BM_Add, evq::detail::TimerQueue)->Apply(spreads);
BENCHMARK_TEMPLATE(BM_Add, evq::detail::TimerWheel)->Apply(spreads);
BENCHMARK_TEMPLATE(BM_Cancel, evq::detail::TimerQueue)->Apply(spreads);
BENCHMARK_TEMPLATE(BM_Cancel, evq::detail::TimerWheel)->Apply(spreads);
BENCHMARK_TEMPLATE(BM_Fire, evq::detail::TimerQueue)->Apply(spreads);
BENCHMARK_TEMPLATE(BM_Fire, evq::detail::TimerWheel)->Apply(spreads);
BENCHMARK_TEMPLATE(BM_Rearm, evq::detail::TimerQueue)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Rearm, evq::detail::TimerWheel)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
