#include "client.hpp"

#include <evq/evq.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client_socket.hpp"
#include "histogram.hpp"

namespace demo {
namespace {

using Clock = std::chrono::steady_clock;

// Tokens: connection i is i, its timer i | timer_bit, the control pipe stdin_token.
constexpr std::uint64_t timer_bit = std::uint64_t{1} << 62;
constexpr evq::Token stdin_token{std::uint64_t{1} << 63};
// Connects in flight at once: enough to keep the accept queue busy, few enough
// that a slow acceptor does not overflow its backlog (4096) and make the
// kernel drop SYNs, which costs a one-second retransmission each.
constexpr int connect_window = 256;
// How long replies may trail the end of the load phase before the requests
// still unanswered count as such (with their latency so far as a lower bound).
constexpr auto grace = std::chrono::milliseconds(250);

void write_line(const std::string& line) {
  std::size_t done = 0;
  while (done < line.size()) {
    const auto n = ::write(STDOUT_FILENO, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

std::int64_t cpu_micros() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1'000'000LL + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

std::uint64_t nanos(Clock::duration d) {
  return static_cast<std::uint64_t>(std::max<Clock::rep>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

struct Client {
  std::optional<ClientSocket> socket;
  Clock::time_point t0;        // intended time of request 0
  evq::TimerId timer;
  std::uint32_t limit = 0;     // requests intended before the load phase ends
  std::uint32_t due = 0;       // requests whose intended time has come
  std::uint32_t sent = 0;      // requests written (or being written)
  std::uint32_t answered = 0;  // replies read in full
  std::uint16_t reply_bytes = 0;     // of the reply being read
  std::uint16_t request_unsent = 0;  // bytes of the current request still to write
  bool open = false;
};

class LoadGenerator {
 public:
  LoadGenerator(const ClientConfig& config, evq::Poll& poll)
      : cfg_(config), poll_(poll), reg_(poll.registry()), clients_(static_cast<std::size_t>(config.connections)) {}

  int run() {
    if (!connect_all()) return 1;
    evq::SourceFd control(STDIN_FILENO);
    if (auto ec = reg_.add(control, stdin_token, evq::Interest::readable, evq::Trigger::level))
      return fail("Registry::add(stdin)", ec);
    if (!wait_for_go()) return 0;  // the orchestrator gave up
    load_phase();
    report();
    wait_for_end_of_input();
    // Reset rather than close politely: no TIME_WAIT left to eat the next
    // cell's ephemeral ports.
    for (Client& c : clients_)
      if (c.socket) {
        if (c.open) reg_.remove(c.socket->source());
        c.socket->set_reset_on_close();
      }
    reg_.remove(control);
    return 0;
  }

 private:
  int fail(std::string_view what, std::error_code ec) {
    write_line("error " + std::string(what) + ": " + ec.message() + "\n");
    return 1;
  }

  // Connection i comes from 127.0.0.(1 + i % sources); with one source the
  // kernel picks it (127.0.0.1).
  std::optional<ClientSocket::Ipv4> source_of(int i) const {
    if (cfg_.sources <= 1) return std::nullopt;
    return ClientSocket::Ipv4{127, 0, 0, static_cast<std::uint8_t>(1 + i % cfg_.sources)};
  }

  bool connect_all() {
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::seconds(60);
    const int n = cfg_.connections;
    int next = 0, pending = 0, ok = 0, failed = 0;
    std::string first_error;
    while (ok + failed < n && Clock::now() < deadline) {
      for (; pending < connect_window && next < n; ++next) {
        auto s = ClientSocket::connect({127, 0, 0, 1}, static_cast<std::uint16_t>(cfg_.port), source_of(next));
        std::error_code ec = s ? std::error_code{} : s.error();
        if (!ec) {
          auto& socket = clients_[static_cast<std::size_t>(next)].socket.emplace(std::move(*s));
          ec = reg_.add(socket.source(), evq::Token{static_cast<std::uint64_t>(next)},
                        evq::Interest::writable, evq::Trigger::oneshot);
        }
        if (ec) {
          if (first_error.empty()) first_error = "connect: " + ec.message();
          clients_[static_cast<std::size_t>(next)].socket.reset();
          ++failed;
          continue;
        }
        ++pending;
      }
      if (auto ec = poll_.poll(events_, std::chrono::milliseconds(100))) return fail("Poll::poll", ec), false;
      for (const evq::Event& ev : events_) {
        Client& c = clients_[static_cast<std::size_t>(ev.token())];
        --pending;
        std::error_code ec = c.socket->take_error();
        if (!ec) ec = reg_.modify(c.socket->source(), ev.token(), evq::Interest::readable, evq::Trigger::level);
        if (ec) {
          if (first_error.empty()) first_error = "connect: " + ec.message();
          reg_.remove(c.socket->source());
          c.socket.reset();
          ++failed;
          continue;
        }
        c.socket->set_nodelay();
        c.open = true;
        ++ok;
      }
    }
    if (ok + failed < n) {
      failed = n - ok;
      if (first_error.empty()) first_error = "connect: timed out after 60 s";
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    write_line("connected " + std::to_string(ok) + " " + std::to_string(failed) + " " + std::to_string(ms) +
               (first_error.empty() ? "" : " " + first_error) + "\n");
    return true;
  }

  // Reads the control pipe: true on "go", false at end of input.
  std::optional<bool> read_control() {
    char buf[64];
    const auto n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EINTR ? std::nullopt : std::optional<bool>(false);
    control_.append(buf, static_cast<std::size_t>(n));
    if (control_.find("go\n") != std::string::npos) return true;
    return std::nullopt;
  }

  bool wait_for_go() {
    for (;;) {
      if (poll_.poll(events_, std::nullopt)) return false;
      for (const evq::Event& ev : events_) {
        if (ev.token() == stdin_token) {
          if (auto go = read_control()) return *go;
        } else if (!is_timer(ev)) {
          on_readable(client_of(ev));  // a server that closes early
        }
      }
    }
  }

  void wait_for_end_of_input() {
    for (;;) {
      if (poll_.poll(events_, std::nullopt)) return;
      for (const evq::Event& ev : events_) {
        if (ev.token() == stdin_token) {
          if (read_control() == std::optional<bool>(false)) return;
        } else if (!is_timer(ev)) {
          // The server is gone (the orchestrator ends it first): stop watching,
          // or level-triggered end-of-stream would be reported on every poll.
          close(client_of(ev));
        }
      }
    }
  }

  static bool is_timer(const evq::Event& ev) { return (static_cast<std::uint64_t>(ev.token()) & timer_bit) != 0; }
  Client& client_of(const evq::Event& ev) {
    return clients_[static_cast<std::size_t>(static_cast<std::uint64_t>(ev.token()) & ~timer_bit)];
  }
  Clock::time_point intended(const Client& c, std::uint32_t k) const { return c.t0 + k * cfg_.think; }

  void load_phase() {
    const auto cpu_before = cpu_micros();
    // A little lead so that arming N timers does not eat into the first period.
    start_ = Clock::now() + std::chrono::milliseconds(10);
    end_ = start_ + std::chrono::duration_cast<Clock::duration>(cfg_.duration);
    const auto n = static_cast<std::int64_t>(clients_.size());
    for (std::int64_t i = 0; i < n; ++i) {
      Client& c = clients_[static_cast<std::size_t>(i)];
      c.t0 = start_ + std::chrono::duration_cast<Clock::duration>(cfg_.think) * i / n;
      c.limit = static_cast<std::uint32_t>((end_ - c.t0 + cfg_.think - Clock::duration(1)) / cfg_.think);
      if (!c.open || c.limit == 0) continue;
      auto timer = reg_.add_timer(evq::Token{static_cast<std::uint64_t>(i) | timer_bit}, c.t0, cfg_.think);
      if (timer) c.timer = *timer;
    }
    auto now = Clock::now();
    bool stopping = false, aborted = false;
    Clock::time_point grace_end{};
    for (;;) {
      if (!stopping && now >= end_) {
        stopping = true;
        grace_end = now + grace;
      }
      if (aborted || (stopping && (outstanding_ == 0 || now >= grace_end))) break;
      if (poll_.poll(events_, (stopping ? grace_end : end_) - now)) break;
      now = Clock::now();
      for (const evq::Event& ev : events_) {
        if (ev.token() == stdin_token) {
          if (read_control() == std::optional<bool>(false)) aborted = true;
          continue;
        }
        Client& c = client_of(ev);
        if (is_timer(ev)) {
          on_timer(c, ev.timer_count(), now);
        } else {
          if (ev.is_writable()) finish_request(c);
          if (ev.is_readable() || ev.is_error() || ev.is_read_closed()) on_readable(c, now);
        }
      }
    }
    stopped_ = now;
    cpu_us_ = cpu_micros() - cpu_before;
  }

  void on_timer(Client& c, std::uint32_t count, Clock::time_point now) {
    if (c.due >= c.limit) return;
    c.due = std::min(c.limit, c.due + std::max<std::uint32_t>(1, count));
    lag_.record(nanos(now - intended(c, c.due - 1)));
    if (c.due == c.limit) reg_.cancel_timer(c.timer);  // its last intended send
    send_due(c);
  }

  // Sends the next request if its time has come and none is in flight.
  void send_due(Client& c) {
    if (!c.open || c.sent > c.answered || c.sent >= c.due) return;
    static constexpr std::array<std::byte, message_size> request{};
    auto w = c.socket->write(request);
    if (!w && w.error() != std::errc::operation_would_block) return close(c);
    ++c.sent;
    ++outstanding_;
    const std::size_t written = w ? *w : 0;
    if (written < request.size()) {  // the send buffer is full: finish on writable
      c.request_unsent = static_cast<std::uint16_t>(request.size() - written);
      reg_.modify(c.socket->source(), evq::Token{index_of(c)}, evq::Interest::readable | evq::Interest::writable,
                  evq::Trigger::level);
    }
  }

  void finish_request(Client& c) {
    if (!c.open || c.request_unsent == 0) return;
    static constexpr std::array<std::byte, message_size> request{};
    auto w = c.socket->write(std::span(request).last(c.request_unsent));
    if (!w) {
      if (w.error() != std::errc::operation_would_block) close(c);
      return;
    }
    c.request_unsent = static_cast<std::uint16_t>(c.request_unsent - *w);
    if (c.request_unsent == 0)
      reg_.modify(c.socket->source(), evq::Token{index_of(c)}, evq::Interest::readable, evq::Trigger::level);
  }

  void on_readable(Client& c, Clock::time_point now = Clock::now()) {
    if (!c.open) return;
    // Level-triggered: one read per event; anything left is reported again.
    std::array<std::byte, 4096> buf;
    auto r = c.socket->read(buf);
    if (!r) {
      if (r.error() != std::errc::operation_would_block) close(c);
      return;
    }
    if (*r == 0) return close(c);
    c.reply_bytes = static_cast<std::uint16_t>(c.reply_bytes + *r);
    while (c.reply_bytes >= message_size && c.answered < c.sent) {
      c.reply_bytes = static_cast<std::uint16_t>(c.reply_bytes - message_size);
      latency_.record(nanos(now - intended(c, c.answered)));
      ++c.answered;
      --outstanding_;
    }
    send_due(c);
  }

  void close(Client& c) {
    if (!c.open) return;
    c.open = false;
    ++closed_;
    outstanding_ -= c.sent - c.answered;
    reg_.remove(c.socket->source());
    if (c.due < c.limit) reg_.cancel_timer(c.timer);
  }

  std::uint64_t index_of(const Client& c) const { return static_cast<std::uint64_t>(&c - clients_.data()); }

  void report() {
    // Requests whose time came but got no reply count with the time they have
    // waited so far: a lower bound, and never left out.
    std::uint64_t answered = 0, unanswered = 0;
    int starved = 0;
    for (const Client& c : clients_) {
      answered += c.answered;
      for (std::uint32_t k = c.answered; k < c.due; ++k) {
        latency_.record(nanos(stopped_ - intended(c, k)));
        ++unanswered;
      }
      if (c.due > 0 && c.answered == 0) ++starved;
    }
    const auto wall_us = std::chrono::duration_cast<std::chrono::microseconds>(stopped_ - start_).count();
    std::string line = "result";
    const auto add = [&](const char* key, auto value) {
      line += ' ';
      line += key;
      line += '=';
      line += std::to_string(value);
    };
    add("answered", answered);
    add("unanswered", unanswered);
    add("starved", starved);
    add("closed", closed_);
    add("p50", latency_.quantile(0.50));
    add("p99", latency_.quantile(0.99));
    add("p999", latency_.quantile(0.999));
    add("max", latency_.max());
    add("lag_p99", lag_.quantile(0.99));
    add("cpu_us", cpu_us_);
    add("wall_us", wall_us);
    write_line(line + "\n");
  }

  const ClientConfig& cfg_;
  evq::Poll& poll_;
  evq::Registry& reg_;
  std::vector<Client> clients_;
  evq::Events events_{4096};
  std::string control_;
  Clock::time_point start_, end_, stopped_;
  std::int64_t outstanding_ = 0;  // requests sent and not yet answered, on open connections
  int closed_ = 0;
  std::int64_t cpu_us_ = 0;
  Histogram latency_;  // from each request's intended send time to its reply
  Histogram lag_;      // how late timers fired: the client's own delay
};

}  // namespace

int run_client(const ClientConfig& config) {
  auto poll = evq::Poll::create();
  if (!poll) {
    write_line("error Poll::create: " + poll.error().message() + "\n");
    return 1;
  }
  LoadGenerator generator(config, *poll);
  return generator.run();
}

}  // namespace demo
