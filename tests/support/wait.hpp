// tests/support/wait.hpp: wait for an expected event with a deadline,
// tolerating spurious events (API.md: spurious events may happen).
#pragma once

#include <evq/evq.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <vector>

namespace evq::test {

// Generous: tests run on a loaded 2-core machine. A deadline is an upper bound
// on waiting, never an assertion about speed.
inline constexpr std::chrono::seconds kDeadline{10};

// Polls until an event with `token` satisfying `pred` arrives or `deadline`
// passes. Returns that event; other events (spurious or for other tokens) are
// appended to `others` when given.
inline std::optional<Event> wait_for(Poll& poll, Token token,
                                     const std::function<bool(const Event&)>& pred,
                                     std::chrono::nanoseconds deadline = kDeadline,
                                     std::vector<Event>* others = nullptr) {
  Events events(64);
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return std::nullopt;
    const std::error_code ec = poll.poll(events, until - now);
    if (ec) {
      ADD_FAILURE() << "poll: " << ec.message();
      return std::nullopt;
    }
    for (const Event& e : events) {
      if (e.token() == token && pred(e)) return e;
      if (others) others->push_back(e);
    }
  }
}

inline std::optional<Event> wait_readable(Poll& poll, Token token,
                                          std::chrono::nanoseconds deadline = kDeadline) {
  return wait_for(poll, token, [](const Event& e) { return e.is_readable(); }, deadline);
}

inline std::optional<Event> wait_writable(Poll& poll, Token token,
                                          std::chrono::nanoseconds deadline = kDeadline) {
  return wait_for(poll, token, [](const Event& e) { return e.is_writable(); }, deadline);
}

// Polls once with `timeout` and returns whether any event for `token` came.
inline bool got_event(Poll& poll, Token token, std::chrono::nanoseconds timeout) {
  Events events(64);
  if (poll.poll(events, timeout)) return false;
  for (const Event& e : events)
    if (e.token() == token) return true;
  return false;
}

// The backend the suite runs on (EVQ_BACKEND, set by ctest per backend).
inline Poll make_poll() {
  auto p = Poll::create();
  if (!p) {
    ADD_FAILURE() << "Poll::create: " << p.error().message();
    std::abort();
  }
  return std::move(*p);
}

inline std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

}  // namespace evq::test
