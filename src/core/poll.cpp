// The public face of the core: Poll, Registry and Waker forward to Core.
#include "evq/poll.hpp"

#include <cstdlib>
#include <utility>

#include "core/core.hpp"

namespace evq {

std::string_view to_string(Backend b) noexcept {
  switch (b) {
    case Backend::epoll: return "epoll";
    case Backend::kqueue: return "kqueue";
    case Backend::iocp: return "iocp";
    case Backend::io_uring: return "io_uring";
    case Backend::poll: return "poll";
  }
  return "unknown";
}

std::optional<Backend> backend_from_string(std::string_view name) noexcept {
  for (Backend b : {Backend::epoll, Backend::kqueue, Backend::iocp, Backend::io_uring, Backend::poll})
    if (to_string(b) == name) return b;
  return std::nullopt;
}

bool backend_available(Backend b) noexcept { return detail::Core::available(b); }

// ---- Registry -------------------------------------------------------------

std::error_code Registry::add(Source& source, Token token, Interest interest, Trigger trigger) {
  return core_->add(source, token, interest, trigger);
}

std::error_code Registry::modify(Source& source, Token token, Interest interest, Trigger trigger) {
  return core_->modify(source, token, interest, trigger);
}

std::error_code Registry::remove(Source& source) { return core_->remove(source); }

Result<TimerId> Registry::add_timer(Token token, std::chrono::steady_clock::time_point deadline,
                                    std::chrono::nanoseconds period) {
  return core_->add_timer(token, deadline, period);
}

std::error_code Registry::cancel_timer(TimerId id) { return core_->cancel_timer(id); }

std::error_code Registry::reset_timer(TimerId id, std::chrono::steady_clock::time_point deadline) {
  return core_->reset_timer(id, deadline);
}

// ---- Poll -----------------------------------------------------------------

Result<Poll> Poll::create() {
  // The platform's best readiness backend, unless EVQ_BACKEND names another:
  // that is how one test binary runs on every backend.
  if (const char* env = std::getenv("EVQ_BACKEND"); env && *env) {
    const auto b = backend_from_string(env);
    if (!b) return errc::invalid_argument;
    return create(*b);
  }
  for (Backend b : detail::preferred_backends)
    if (backend_available(b)) return create(b);
  return errc::backend_unavailable;
}

Result<Poll> Poll::create(Backend backend) {
  auto core = detail::Core::create(backend);
  if (!core) return core.error();
  Poll p;
  p.registry_.core_ = *core;
  return p;
}

Poll::Poll(Poll&& other) noexcept { registry_.core_ = std::exchange(other.registry_.core_, nullptr); }

Poll& Poll::operator=(Poll&& other) noexcept {
  if (this != &other) {
    if (registry_.core_) registry_.core_->close();
    registry_.core_ = std::exchange(other.registry_.core_, nullptr);
  }
  return *this;
}

Poll::~Poll() {
  if (registry_.core_) registry_.core_->close();
}

Backend Poll::backend() const noexcept { return registry_.core_->backend(); }

std::error_code Poll::poll(Events& events, std::optional<std::chrono::nanoseconds> timeout) {
  return registry_.core_->poll(events, timeout);
}

// ---- Waker ----------------------------------------------------------------

Result<Waker> Waker::create(Registry& registry, Token token) {
  auto slot = registry.core_->add_waker(token);
  if (!slot) return slot.error();
  Waker w;
  w.core_ = registry.core_;
  w.slot_ = *slot;
  return w;
}

Waker::Waker(Waker&& other) noexcept
    : core_(std::exchange(other.core_, nullptr)), slot_(other.slot_) {}

Waker& Waker::operator=(Waker&& other) noexcept {
  if (this != &other) {
    if (core_) core_->remove_waker(slot_);
    core_ = std::exchange(other.core_, nullptr);
    slot_ = other.slot_;
  }
  return *this;
}

Waker::~Waker() {
  if (core_) core_->remove_waker(slot_);
}

std::error_code Waker::wake() noexcept {
  if (!core_) return std::make_error_code(std::errc::bad_file_descriptor);
  return core_->wake(slot_);
}

}  // namespace evq
