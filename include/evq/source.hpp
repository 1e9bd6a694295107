// evq/source.hpp: what a Registry can register.
#pragma once

#include <cstdint>
#include <system_error>
#include <utility>

#include "evq/event.hpp"
#include "evq/platform.hpp"

namespace evq {

class Registry;
namespace detail {
class Core;
}  // namespace detail

// Anything evq can register: every socket and pipe type, SourceFd (a raw
// descriptor, POSIX) and SourceSocket (a raw SOCKET, Windows).
//
// evq's own socket types own their descriptor and a link to their
// registration: moving the object moves the registration with it, and
// destroying a registered socket removes it from its Registry before closing.
// The link is also the hook that lets backends without a native edge trigger
// (poll(2), IOCP) emulate it: when one of the socket's reads or writes returns
// would-block, the socket re-arms its registration (see DESIGN.md).
class Source {
 public:
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  NativeHandle native_handle() const noexcept { return handle_; }

 protected:
  Source() noexcept = default;
  Source(NativeHandle handle, bool owning) noexcept : handle_(handle), owning_(owning) {}
  Source(Source&& other) noexcept
      : handle_(std::exchange(other.handle_, invalid_handle)),
        owning_(other.owning_),
        link_(std::exchange(other.link_, Link{})) {}
  Source& operator=(Source&& other) noexcept {
    if (this != &other) {
      close();
      handle_ = std::exchange(other.handle_, invalid_handle);
      owning_ = other.owning_;
      link_ = std::exchange(other.link_, Link{});
    }
    return *this;
  }
  ~Source() { close(); }

  // Owning sources: leave the Registry, then close the descriptor. Idempotent.
  void close() noexcept;

  // Called by socket operations that failed with would-block. Costs one
  // predictable branch unless the registration emulates edge triggering.
  void on_would_block(Interest direction) noexcept {
    if (link_.rearm) rearm(direction);
  }

  NativeHandle handle_ = invalid_handle;

 private:
  friend class Registry;
  friend class detail::Core;

  struct Link {
    detail::Core* core = nullptr;  // holds one reference on the core while set
    std::uint32_t slot = 0;
    std::uint16_t generation = 0;  // of the slot when linked: detach checks it
    bool rearm = false;  // backend emulates edge: re-arm on would-block
  };

  void rearm(Interest direction) noexcept;

  bool owning_ = false;
  Link link_;
};

#if EVQ_POSIX
// A raw descriptor the caller owns. It does not close the descriptor and keeps
// no link: remove() it before closing the descriptor. Edge triggering needs the
// OS's own edge trigger (epoll, kqueue, io_uring); on poll(2) add() with
// Trigger::edge returns errc::trigger_unsupported.
class SourceFd : public Source {
 public:
  explicit SourceFd(int fd) noexcept : Source(fd, /*owning=*/false) {}
  SourceFd(SourceFd&&) noexcept = default;
  SourceFd& operator=(SourceFd&&) noexcept = default;
  ~SourceFd() = default;
};
#else
// A raw SOCKET the caller owns; see SourceFd.
class SourceSocket : public Source {
 public:
  explicit SourceSocket(NativeHandle s) noexcept : Source(s, /*owning=*/false) {}
  SourceSocket(SourceSocket&&) noexcept = default;
  SourceSocket& operator=(SourceSocket&&) noexcept = default;
  ~SourceSocket() = default;
};
#endif

}  // namespace evq
