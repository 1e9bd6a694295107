// Timers live in the queue: a one-shot, a repeating timer and a cancelled one.
#include <evq/evq.hpp>

#include <chrono>
#include <cstdio>

int main() {
  using namespace std::chrono_literals;
  using clock = std::chrono::steady_clock;
  auto poll = evq::Poll::create();
  if (!poll) return std::fprintf(stderr, "poll: %s\n", poll.error().message().c_str()), 1;
  auto& reg = poll->registry();

  const auto start = clock::now();
  reg.add_timer(evq::Token{1}, start + 50ms);                       // once, after 50 ms
  auto tick = reg.add_timer(evq::Token{2}, start + 10ms, 10ms);      // every 10 ms
  auto never = reg.add_timer(evq::Token{3}, start + 20ms);
  reg.cancel_timer(*never);                                         // never delivered

  evq::Events events(16);
  for (bool done = false; !done;) {
    poll->poll(events, std::nullopt);
    for (const evq::Event& ev : events) {
      const auto ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
      if (ev.token() == evq::Token{2}) std::printf("%6.2f ms  tick (x%u)\n", ms, ev.timer_count());
      if (ev.token() == evq::Token{1}) {
        std::printf("%6.2f ms  one-shot fired; cancelling the tick\n", ms);
        reg.cancel_timer(*tick);
        done = true;
      }
    }
  }
  return 0;
}
