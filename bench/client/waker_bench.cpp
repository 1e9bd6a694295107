// W5: evq cross-thread wake, public API only.
//   bench_waker [--rounds N] [--posts M]
// Round trip: thread A wakes B's Poll, B wakes A's Poll back; p50/p99 of N.
// --rounds 0 skips it.
// Coalesced posts: a producer calls wake() M times as fast as it can while
// the consumer polls; reports posts/s and how many wake events (batches) the
// consumer saw.
#include <evq/evq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;

evq::Poll make_poll() {
  auto p = evq::Poll::create();
  if (!p) std::fprintf(stderr, "poll: %s\n", p.error().message().c_str()), std::exit(1);
  return std::move(*p);
}
evq::Waker make_waker(evq::Poll& p) {
  auto w = evq::Waker::create(p.registry(), evq::Token{1});
  if (!w) std::fprintf(stderr, "waker: %s\n", w.error().message().c_str()), std::exit(1);
  return std::move(*w);
}
}  // namespace

int main(int argc, char** argv) {
  long rounds = 20000, posts = 2000000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--posts")) posts = std::atol(argv[i + 1]);
  }
  // --rounds 0 skips the round trip (the strace run counts eventfd writes of
  // the coalesced part alone).
  // Round trip.
  evq::Poll pa = make_poll(), pb = make_poll();
  evq::Waker wa = make_waker(pa), wb = make_waker(pb);
  std::thread echo([&] {
    evq::Events ev(8);
    for (long i = 0; i < rounds; ++i) {
      do pb.poll(ev, std::nullopt);
      while (ev.empty());
      wa.wake();
    }
  });
  std::vector<double> rtt;
  rtt.reserve(static_cast<std::size_t>(rounds));
  {
    evq::Events ev(8);
    for (long i = 0; i < rounds; ++i) {
      const auto t0 = Clock::now();
      wb.wake();
      do pa.poll(ev, std::nullopt);
      while (ev.empty());
      rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  echo.join();
  std::sort(rtt.begin(), rtt.end());
  const double p50 = rtt.empty() ? 0 : rtt[rtt.size() / 2];
  const double p99 = rtt.empty() ? 0 : rtt[rtt.size() * 99 / 100];

  // Coalesced posts.
  evq::Poll pc = make_poll();
  evq::Waker wc = make_waker(pc);
  std::atomic<bool> done{false};
  long batches = 0;
  std::thread consumer([&] {
    evq::Events ev(8);
    while (!done.load(std::memory_order_acquire)) {
      pc.poll(ev, std::chrono::milliseconds(10));
      batches += static_cast<long>(ev.size());
    }
    pc.poll(ev, std::chrono::milliseconds(0));  // the last batch
    batches += static_cast<long>(ev.size());
  });
  const auto t0 = Clock::now();
  for (long i = 0; i < posts; ++i) wc.wake();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  done.store(true, std::memory_order_release);
  consumer.join();
  std::printf("{\"rtt_p50_us\": %.2f, \"rtt_p99_us\": %.2f, \"posts_per_s\": %.0f, \"posts\": %ld, \"batches\": %ld}\n",
              p50, p99, static_cast<double>(posts) / secs, posts, batches);
  return 0;
}
