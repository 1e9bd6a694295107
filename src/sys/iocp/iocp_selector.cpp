#include "sys/iocp/iocp_selector.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "sys/iocp/afd.hpp"
#include "sys/iocp/poll_group.hpp"
#include "sys/iocp/sock_state.hpp"
#include "sys/iocp/win32.hpp"
#include "sys/iocp/windows_error.hpp"
#include "sys/iocp/winsock.hpp"
#include "sys/selector.hpp"

namespace evq::detail {

static_assert(Selector<IocpSelector>);
static_assert(sizeof(NativeHandle) == sizeof(SOCKET) && sizeof(ULONG_PTR) == sizeof(std::uint64_t),
              "user data travels as a completion key; wakers use it as their handle");

// Everything behind the selector's pointer. Threads: the core calls add,
// modify, remove, add_waker and remove_waker under its own mutex, rearm and
// wake from any thread without it, and select from one polling thread; `mu`
// orders them all here.
struct IocpSelector::State {
  explicit State(HANDLE p) noexcept : port(p), groups(p) {}
  ~State();

  // (Re)issues the polls of every queued socket. Under mu.
  std::error_code flush_locked() noexcept;
  // A socket's armed set or interest changed: with a thread blocked in
  // select(), update its poll now, so the change counts for that wait;
  // otherwise leave it for the next select(), which batches the updates.
  std::error_code apply_locked(SockState* s) noexcept;
  void enqueue_locked(SockState* s) noexcept;
  void unlink_locked(SockState* s) noexcept;
  void free_locked(SockState* s) noexcept;
  // The slot of a socket in by_handle. Kernel handles are multiples of four
  // (NT keeps the two low bits for the application's tags and ignores them),
  // and small: a dense vector indexed by h / 4 beats a hash map.
  static std::size_t index_of(NativeHandle h) noexcept { return static_cast<std::size_t>(h >> 2); }
  SockState* find_locked(NativeHandle h) noexcept;

  HANDLE port;
  std::mutex mu;
  PollGroups groups;                 // guarded by mu
  std::vector<SockState*> by_handle; // socket -> state (index_of); guarded by mu
  SockState* queue_head = nullptr;   // sockets whose poll needs issuing; guarded by mu
  SockState* queue_tail = nullptr;
  int pollers = 0;                   // threads inside GetQueuedCompletionStatusEx; guarded by mu
  std::size_t deleted_in_flight = 0; // removed, freed when their poll completes; guarded by mu
  std::atomic<bool> wake_pending{false};
  std::vector<OVERLAPPED_ENTRY> entries;  // the polling thread's only
};

namespace {

// Poll entries and queue links are plain pointers into states allocated one
// by one: their addresses must not move while a poll is in flight.
SockState* new_state() noexcept { return new (std::nothrow) SockState; }

DWORD to_milliseconds(TimeoutNs timeout) noexcept {
  if (timeout < 0) return INFINITE;
  // Round up: a 0.3 ms wait must not become a 0 ms poll that returns at once.
  const TimeoutNs ms = (timeout + 999'999) / 1'000'000;
  // INFINITE is 0xFFFFFFFF; anything longer waits 49.7 days, and the core
  // then waits again for what remains.
  return ms >= static_cast<TimeoutNs>(INFINITE) ? INFINITE - 1 : static_cast<DWORD>(ms);
}

}  // namespace

// ---- State ------------------------------------------------------------------

SockState* IocpSelector::State::find_locked(NativeHandle h) noexcept {
  const std::size_t i = index_of(h);
  return i < by_handle.size() ? by_handle[i] : nullptr;
}

void IocpSelector::State::enqueue_locked(SockState* s) noexcept {
  if (s->queued) return;
  s->queued = true;
  s->prev = queue_tail;
  s->next = nullptr;
  (queue_tail ? queue_tail->next : queue_head) = s;
  queue_tail = s;
}

void IocpSelector::State::unlink_locked(SockState* s) noexcept {
  if (!s->queued) return;
  (s->prev ? s->prev->next : queue_head) = s->next;
  (s->next ? s->next->prev : queue_tail) = s->prev;
  s->prev = s->next = nullptr;
  s->queued = false;
}

void IocpSelector::State::free_locked(SockState* s) noexcept {
  unlink_locked(s);
  groups.release(s->group);
  delete s;
}

std::error_code IocpSelector::State::flush_locked() noexcept {
  std::error_code first;
  while (SockState* s = queue_head) {
    unlink_locked(s);
    if (auto ec = sock_update(*s, port); ec && !first) first = ec;
  }
  return first;
}

std::error_code IocpSelector::State::apply_locked(SockState* s) noexcept {
  if (pollers > 0) {
    unlink_locked(s);
    return sock_update(*s, port);
  }
  enqueue_locked(s);
  return {};
}

IocpSelector::State::~State() {
  // The polls in flight: the kernel writes their status block and output
  // when they complete, so no state may be freed before its completion is
  // seen. Cancel them all, then drain the port.
  std::size_t outstanding = deleted_in_flight;
  for (SockState* s : by_handle) {
    if (!s) continue;
    if (s->status == PollStatus::pending) {
      (void)afd::cancel(s->group->helper, s->iosb);
      s->status = PollStatus::cancelled;
    }
    if (s->status != PollStatus::idle) ++outstanding;
  }
  OVERLAPPED_ENTRY batch[64];
  int idle_seconds = 0;
  while (outstanding > 0) {
    ULONG got = 0;
    if (!::GetQueuedCompletionStatusEx(port, batch, 64, &got, 1000, FALSE)) {
      // A cancelled poll completes within microseconds. One that has not
      // after ten seconds never will (a driver that ignores cancellation):
      // leak its state rather than let the kernel write into freed memory.
      if (::GetLastError() == WAIT_TIMEOUT && ++idle_seconds < 10) continue;
      break;
    }
    idle_seconds = 0;
    for (ULONG i = 0; i < got; ++i) {
      if (!batch[i].lpOverlapped) continue;  // a waker's or wake()'s packet
      SockState* s = SockState::from_overlapped(batch[i].lpOverlapped);
      s->status = PollStatus::idle;
      --outstanding;
      if (s->delete_pending) free_locked(s);
    }
  }
  if (outstanding == 0) {
    for (SockState* s : by_handle)
      if (s) free_locked(s);
  }
  // The helper handles close with `groups`, after this; the port now.
  ::CloseHandle(port);
}

// ---- IocpSelector -------------------------------------------------------------

Result<IocpSelector> IocpSelector::open() {
  // The selector asks sockets for their base handle (WSAIoctl): Winsock must
  // be up even when the user made every socket elsewhere.
  if (auto ec = ensure_winsock()) return ec;
  // Concurrency 0 = one per CPU; only one thread waits on this port anyway.
  HANDLE port = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 0);
  if (!port) return last_windows_error();
  auto state = std::unique_ptr<State>(new (std::nothrow) State(port));
  if (!state) {
    ::CloseHandle(port);
    return std::make_error_code(std::errc::not_enough_memory);
  }
  return IocpSelector(std::move(state));
}

IocpSelector::IocpSelector(std::unique_ptr<State> state) noexcept : s_(std::move(state)) {}
IocpSelector::IocpSelector(IocpSelector&& other) noexcept : s_(std::move(other.s_)) {}
IocpSelector::~IocpSelector() = default;

std::error_code IocpSelector::add(NativeHandle socket, std::uint64_t data, Interest interest,
                                  Trigger trigger) {
  // Outside the lock: a system call that needs none of the selector's state.
  SOCKET base = INVALID_SOCKET;
  if (auto ec = afd::base_socket(static_cast<SOCKET>(socket), base)) return ec;

  State& st = *s_;
  std::lock_guard lock(st.mu);
  const std::size_t i = State::index_of(socket);
  if (i >= st.by_handle.size()) st.by_handle.resize(std::max<std::size_t>(i + 1, st.by_handle.size() * 2), nullptr);
  // The core refuses a second add of one handle; a state left here would be
  // a selector bug, and overwriting it would leak a poll in flight.
  if (st.by_handle[i]) return errc::already_registered;
  auto group = st.groups.acquire();
  if (!group) return group.error();
  SockState* s = new_state();
  if (!s) {
    st.groups.release(*group);
    return std::make_error_code(std::errc::not_enough_memory);
  }
  s->group = *group;
  s->base = base;
  sock_set(*s, data, interest, trigger);
  st.by_handle[i] = s;
  // The first poll is issued now, not batched into the next select() as
  // later updates are: nothing is pending to merge it with, and the driver's
  // answer tells add() whether the socket is open (epoll_ctl's EBADF), which
  // SIO_BASE_HANDLE does not check everywhere (Wine answers it for any value).
  std::error_code ec = sock_update(*s, st.port);
  if (!ec && s->closed) ec = windows_error(WSAENOTSOCK);  // compares equal to bad_file_descriptor
  if (ec) {
    st.by_handle[i] = nullptr;
    if (sock_delete(*s))
      st.free_locked(s);
    else
      ++st.deleted_in_flight;
    return ec;
  }
  return {};
}

std::error_code IocpSelector::modify(NativeHandle socket, std::uint64_t data, Interest interest,
                                     Trigger trigger) {
  State& st = *s_;
  std::lock_guard lock(st.mu);
  SockState* s = st.find_locked(socket);
  if (!s) return errc::not_registered;
  sock_set(*s, data, interest, trigger);
  return st.apply_locked(s);
}

std::error_code IocpSelector::remove(NativeHandle socket, std::uint64_t) {
  State& st = *s_;
  std::lock_guard lock(st.mu);
  SockState* s = st.find_locked(socket);
  if (!s) return errc::not_registered;
  st.by_handle[State::index_of(socket)] = nullptr;
  st.unlink_locked(s);
  if (sock_delete(*s))
    st.free_locked(s);
  else
    ++st.deleted_in_flight;  // sock_complete says when, select() frees it
  return {};
}

void IocpSelector::rearm(NativeHandle socket, std::uint64_t data, Interest interest) {
  State& st = *s_;
  std::lock_guard lock(st.mu);
  SockState* s = st.find_locked(socket);
  // Another registration of the handle (the socket's link is older than a
  // remove and re-add): not ours to re-arm.
  if (!s || s->data != data) return;
  // An error here resurfaces: the socket stays queued or errs on its next poll.
  if (sock_rearm(*s, interest)) (void)st.apply_locked(s);
}

std::error_code IocpSelector::select(Event* out, std::size_t capacity, const RegistrationTable& table,
                                     TimeoutNs timeout, std::size_t& n) {
  State& st = *s_;
  n = 0;
  const ULONG count = capacity > ULONG_MAX ? ULONG_MAX : static_cast<ULONG>(capacity);
  if (st.entries.size() < count) st.entries.resize(count);
  {
    std::lock_guard lock(st.mu);
    if (auto ec = st.flush_locked()) return ec;
    ++st.pollers;
  }
  ULONG got = 0;
  const BOOL ok = ::GetQueuedCompletionStatusEx(st.port, st.entries.data(), count, &got,
                                                to_milliseconds(timeout), FALSE);
  const DWORD wait_error = ok ? 0 : ::GetLastError();

  std::lock_guard lock(st.mu);
  --st.pollers;
  if (!ok) return wait_error == WAIT_TIMEOUT ? std::error_code{} : windows_error(wait_error);
  std::size_t m = 0;
  for (ULONG i = 0; i < got; ++i) {
    const OVERLAPPED_ENTRY& e = st.entries[i];
    if (!e.lpOverlapped) {
      // A posted packet: wake() or a user waker; the key is the user data.
      if (e.lpCompletionKey == internal_user_data) {
        st.wake_pending.store(false, std::memory_order_release);
        continue;
      }
      Registration* reg = table.resolve(e.lpCompletionKey);
      if (!reg) continue;  // the waker was removed since
      reg->waker_pending.store(false, std::memory_order_release);
      out[m++] = Event(Token{reg->token.load(std::memory_order_relaxed)}, Event::readable_flag);
      continue;
    }
    SockState* s = SockState::from_overlapped(e.lpOverlapped);
    const Completion c = sock_complete(*s);
    if (c.free) {
      st.free_locked(s);
      --st.deleted_in_flight;
      continue;
    }
    if (c.requeue) st.enqueue_locked(s);
    if (!c.flags) continue;
    // Removed from the core since (the generation moved first): drop.
    Registration* reg = table.resolve(s->data);
    if (!reg) continue;
    out[m++] = Event(Token{reg->token.load(std::memory_order_relaxed)}, c.flags);
  }
  n = m;
  return {};
}

std::error_code IocpSelector::wake() {
  State& st = *s_;
  // One packet in the port is enough to end a wait; select() clears the flag
  // when it takes the packet.
  if (st.wake_pending.exchange(true, std::memory_order_acq_rel)) return {};
  if (!::PostQueuedCompletionStatus(st.port, 0, internal_user_data, nullptr)) {
    st.wake_pending.store(false, std::memory_order_release);
    return last_windows_error();
  }
  return {};
}

Result<NativeHandle> IocpSelector::add_waker(std::uint64_t data) { return static_cast<NativeHandle>(data); }

std::error_code IocpSelector::notify_waker(NativeHandle waker) {
  // The core coalesces: at most one packet per waker is in the port.
  if (!::PostQueuedCompletionStatus(s_->port, 0, static_cast<ULONG_PTR>(waker), nullptr))
    return last_windows_error();
  return {};
}

void IocpSelector::remove_waker(NativeHandle, std::uint64_t) {
  // Nothing to close. A packet still in the port carries the old generation
  // and select() drops it.
}

}  // namespace evq::detail
