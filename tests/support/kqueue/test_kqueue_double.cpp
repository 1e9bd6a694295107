// Unit tests of the kqueue test double against the FreeBSD kqueue(2) manual
// (Debian freebsd-manpages: `man 2freebsd kqueue`). Each test's comment
// paraphrases the statement it checks; "(code)" marks behaviour the manual
// leaves open and the BSD kernels define.
//
// Deterministic: no sleeps. Waits are bounded by generous deadlines that only
// act as upper bounds; Unix socketpairs and pipes are used where the data must
// be there when write() returns, TCP loopback tests wait for the event.

#include <sys/event.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Kevent = struct kevent;
using Clock = std::chrono::steady_clock;

constexpr timespec kPoll{0, 0};
constexpr auto kDeadline = 10s;  // upper bound on any wait; never a speed claim

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

Kevent ev(std::uintptr_t ident, short filter, unsigned short flags, unsigned fflags = 0,
          std::int64_t data = 0, void* udata = nullptr) {
  Kevent k;
  EV_SET(&k, ident, filter, flags, fflags, data, udata);
  return k;
}

void* tag(std::uintptr_t v) { return reinterpret_cast<void*>(v); }

Fd make_kq() {
  Fd kq(kqueue());
  EXPECT_GE(kq.get(), 0) << std::strerror(errno);
  return kq;
}

// Applies changes with no room for events; returns kevent()'s result.
int change(const Fd& kq, std::vector<Kevent> changes) {
  return kevent(kq.get(), changes.data(), static_cast<int>(changes.size()), nullptr, 0, nullptr);
}

// Collects pending events without waiting.
std::vector<Kevent> collect(const Fd& kq, int max = 16) {
  std::vector<Kevent> out(static_cast<std::size_t>(max));
  const int n = kevent(kq.get(), nullptr, 0, out.data(), max, &kPoll);
  EXPECT_GE(n, 0) << std::strerror(errno);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

timespec to_timespec(Clock::duration d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return timespec{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
}

// Waits (bounded) for an event satisfying pred; other events are skipped.
std::optional<Kevent> wait_event(const Fd& kq, const std::function<bool(const Kevent&)>& pred) {
  const auto until = Clock::now() + kDeadline;
  for (;;) {
    const auto now = Clock::now();
    if (now >= until) return std::nullopt;
    const timespec ts = to_timespec(until - now);
    Kevent out[16];
    const int n = kevent(kq.get(), nullptr, 0, out, 16, &ts);
    if (n < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "kevent: " << std::strerror(errno);
      return std::nullopt;
    }
    for (int i = 0; i < n; ++i) {
      if (pred(out[i])) return out[i];
    }
  }
}

// Spins (bounded, yielding) until f() holds.
bool eventually(const std::function<bool()>& f) {
  const auto until = Clock::now() + kDeadline;
  while (!f()) {
    if (Clock::now() >= until) return false;
    std::this_thread::yield();
  }
  return true;
}

// True when the thread is asleep (state S), i.e. blocked in a system call.
bool thread_sleeping(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string s;
  std::getline(f, s);
  const auto pos = s.rfind(')');
  return pos != std::string::npos && pos + 2 < s.size() && s[pos + 2] == 'S';
}

struct Pair {
  Fd a;
  Fd b;
};

Pair make_socketpair(int type = SOCK_STREAM) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  return Pair{Fd(fds[0]), Fd(fds[1])};
}

Pair make_pipe() {  // a: read end, b: write end
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  return Pair{Fd(fds[0]), Fd(fds[1])};
}

void write_bytes(const Fd& fd, std::size_t n) {
  const std::string s(n, 'x');
  ASSERT_EQ(::write(fd.get(), s.data(), n), static_cast<ssize_t>(n)) << std::strerror(errno);
}

Fd tcp_listener(sockaddr_in* addr) {
  Fd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_GE(l.get(), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(l.get(), 16), 0);
  socklen_t len = sizeof a;
  EXPECT_EQ(::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  *addr = a;
  return l;
}

Fd tcp_connect(const sockaddr_in& addr) {  // blocking connect, then non-blocking
  Fd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_GE(c.get(), 0);
  EXPECT_EQ(::connect(c.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
      << std::strerror(errno);
  ::fcntl(c.get(), F_SETFL, O_NONBLOCK);
  return c;
}

Pair make_tcp_pair() {  // a: client, b: accepted server side
  sockaddr_in addr{};
  Fd l = tcp_listener(&addr);
  Fd c = tcp_connect(addr);
  Fd s(::accept4(l.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  EXPECT_GE(s.get(), 0);
  return Pair{std::move(c), std::move(s)};
}

// Returns a descriptor numbered `num` for the file of `src`.
Fd move_to(Fd&& src, int num) {
  Fd from = std::move(src);
  if (from.get() == num) return from;
  EXPECT_EQ(::dup2(from.get(), num), num) << std::strerror(errno);
  return Fd(num);
}

std::size_t open_fd_count() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// ---------------------------------------------------------------- EVFILT_READ

// EVFILT_READ, sockets: "return when there is data to be read ... On return,
// data contains the number of bytes of protocol data available to read."
TEST(KqueueDouble, ReadReportsBytesAvailable) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD)}), 0);
  EXPECT_TRUE(collect(kq).empty()) << "nothing to read yet";
  write_bytes(p.b, 5);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, static_cast<std::uintptr_t>(p.a.get()));
  EXPECT_EQ(evs[0].filter, EVFILT_READ);
  EXPECT_EQ(evs[0].data, 5);
  EXPECT_EQ(evs[0].flags & (EV_EOF | EV_ERROR), 0);
}

// Same statement over TCP loopback (data arrives asynchronously: wait for it).
TEST(KqueueDouble, ReadReportsBytesAvailableTcp) {
  Fd kq = make_kq();
  Pair p = make_tcp_pair();
  ASSERT_EQ(change(kq, {ev(p.b.get(), EVFILT_READ, EV_ADD)}), 0);
  write_bytes(p.a, 5);
  auto got = wait_event(kq, [](const Kevent& k) { return k.data == 5; });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->ident, static_cast<std::uintptr_t>(p.b.get()));
}

// Level: without EV_CLEAR the filter is re-run at each retrieval and the event
// is returned again while the condition holds ("The filter is also run when
// the user attempts to retrieve the kevent ... If the condition no longer
// holds, the kevent is removed from the kqueue and is not returned.").
TEST(KqueueDouble, LevelReportsOnEveryCallWhileConditionHolds) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 3);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD)}), 0);
  for (int i = 0; i < 3; ++i) {
    auto evs = collect(kq);
    ASSERT_EQ(evs.size(), 1u) << "call " << i;
    EXPECT_EQ(evs[0].data, 3);
  }
  char buf[8];
  ASSERT_EQ(::read(p.a.get(), buf, sizeof buf), 3);
  EXPECT_TRUE(collect(kq).empty()) << "condition no longer holds";
  write_bytes(p.b, 1);
  EXPECT_EQ(collect(kq).size(), 1u) << "reported again once it holds again";
}

// EV_CLEAR: "After the event is retrieved by the user, its state is reset":
// reported again only after new activity, even though data is still unread.
TEST(KqueueDouble, ClearReportsAgainOnlyAfterNewData) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 1);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR)}), 0);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u) << "a condition present at EV_ADD is reported";
  EXPECT_EQ(evs[0].data, 1);
  EXPECT_TRUE(evs[0].flags & EV_CLEAR);
  EXPECT_TRUE(collect(kq).empty()) << "no new data: not reported again";
  EXPECT_TRUE(collect(kq).empty());
  write_bytes(p.b, 2);
  evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u) << "new data: reported again";
  EXPECT_EQ(evs[0].data, 3) << "data counts all unread bytes";
  EXPECT_TRUE(collect(kq).empty());
}

// EV_ONESHOT: "return only the first occurrence of the filter being
// triggered. After the user retrieves the event from the kqueue, it is
// deleted." (so EV_DELETE then finds nothing: ENOENT).
TEST(KqueueDouble, OneshotIsDeletedAfterRetrieval) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, tag(7))}), 0);
  write_bytes(p.b, 1);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_TRUE(evs[0].flags & EV_ONESHOT);
  EXPECT_EQ(evs[0].udata, tag(7));
  write_bytes(p.b, 1);
  EXPECT_TRUE(collect(kq).empty());
  EXPECT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_DELETE)}), -1);
  EXPECT_EQ(errno, ENOENT);
}

// EV_DISPATCH: "Disable the event source immediately after delivery";
// EV_ENABLE: "Permit kevent() to return the event if it is triggered." (code:
// enabling re-runs the filter, so a condition that still holds is reported.)
TEST(KqueueDouble, DispatchDisablesAndEnableRearms) {
  for (const unsigned short extra : {0, EV_CLEAR}) {
    SCOPED_TRACE(extra ? "EV_DISPATCH|EV_CLEAR" : "EV_DISPATCH");
    Fd kq = make_kq();
    Pair p = make_socketpair();
    write_bytes(p.b, 1);
    ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ,
                             static_cast<unsigned short>(EV_ADD | EV_DISPATCH | extra))}),
              0);
    ASSERT_EQ(collect(kq).size(), 1u);
    write_bytes(p.b, 1);
    EXPECT_TRUE(collect(kq).empty()) << "disabled after delivery, even with new data";
    ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ENABLE)}), 0);
    auto evs = collect(kq);
    ASSERT_EQ(evs.size(), 1u) << "re-armed";
    EXPECT_EQ(evs[0].data, 2);
    EXPECT_TRUE(collect(kq).empty()) << "disabled again";
  }
}

// EV_DISABLE: "Disable the event so kevent() will not return it. The filter
// itself is not disabled." EV_ENABLE returns it again.
TEST(KqueueDouble, DisableAndEnable) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 1);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD | EV_DISABLE)}), 0);
  EXPECT_TRUE(collect(kq).empty()) << "added disabled";
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ENABLE)}), 0);
  EXPECT_EQ(collect(kq).size(), 1u);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_DISABLE)}), 0);
  EXPECT_TRUE(collect(kq).empty());
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ENABLE)}), 0);
  EXPECT_EQ(collect(kq).size(), 1u);
}

// EV_ADD: "Re-adding an existing event will modify the parameters of the
// original event, and not result in a duplicate entry." (code: udata, fflags
// and data change; EV_CLEAR/EV_ONESHOT/EV_DISPATCH keep their creation values.)
TEST(KqueueDouble, AddOnExistingModifiesWithoutDuplicate) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 1);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD, 0, 0, tag(1))}), 0);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, tag(2))}), 0);
  for (int i = 0; i < 2; ++i) {
    auto evs = collect(kq);
    ASSERT_EQ(evs.size(), 1u) << "one entry, still level-triggered";
    EXPECT_EQ(evs[0].udata, tag(2));
    EXPECT_FALSE(evs[0].flags & EV_CLEAR);
  }
}

// EV_DELETE of an entry that does not exist: ENOENT, "The event could not be
// found to be modified or deleted." Without room in eventlist: -1 and errno;
// with room: an EV_ERROR entry with the error in data.
TEST(KqueueDouble, DeleteUnknownIsEnoent) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  EXPECT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_DELETE)}), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(change(kq, {ev(p.a.get(), EVFILT_WRITE, EV_ENABLE)}), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(change(kq, {ev(99, EVFILT_USER, EV_DELETE)}), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(change(kq, {ev(99, EVFILT_USER, 0, NOTE_TRIGGER)}), -1);
  EXPECT_EQ(errno, ENOENT);

  Kevent c = ev(p.a.get(), EVFILT_READ, EV_DELETE, 0, 0, tag(3));
  Kevent out[4];
  ASSERT_EQ(kevent(kq.get(), &c, 1, out, 4, &kPoll), 1);
  EXPECT_EQ(out[0].flags, EV_ERROR);
  EXPECT_EQ(out[0].data, ENOENT);
  EXPECT_EQ(out[0].ident, static_cast<std::uintptr_t>(p.a.get()));
  EXPECT_EQ(out[0].filter, EVFILT_READ);
  EXPECT_EQ(out[0].udata, tag(3));
}

// RETURN VALUES: "If an error occurs while processing an element of the
// changelist and there is enough room in the eventlist, then the event will be
// placed in the eventlist with EV_ERROR set" (code: processing continues and
// the call returns the error entries without collecting events); "Otherwise,
// -1 will be returned" (code: the remaining changes are not processed).
TEST(KqueueDouble, ChangeErrorsWithAndWithoutRoom) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 1);
  Kevent changes[2] = {ev(p.b.get(), EVFILT_READ, EV_DELETE), ev(p.a.get(), EVFILT_READ, EV_ADD)};
  Kevent out[4];
  ASSERT_EQ(kevent(kq.get(), changes, 2, out, 4, &kPoll), 1);
  EXPECT_EQ(out[0].flags, EV_ERROR);
  EXPECT_EQ(out[0].data, ENOENT);
  EXPECT_EQ(collect(kq).size(), 1u) << "the second change was applied";

  Fd kq2 = make_kq();
  EXPECT_EQ(kevent(kq2.get(), changes, 2, nullptr, 0, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(change(kq2, {ev(p.a.get(), EVFILT_READ, EV_DELETE)}), -1)
      << "the change after the failing one was not processed";
  EXPECT_EQ(errno, ENOENT);
}

// ERRORS: EBADF "The specified descriptor is invalid" (fd filter); EINVAL "The
// specified time limit or filter is invalid".
TEST(KqueueDouble, InvalidChangesAndTimeout) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  const int closed = ::dup(p.a.get());
  ::close(closed);
  Kevent out[4];
  Kevent bad_fd = ev(closed, EVFILT_READ, EV_ADD);
  ASSERT_EQ(kevent(kq.get(), &bad_fd, 1, out, 4, &kPoll), 1);
  EXPECT_EQ(out[0].flags, EV_ERROR);
  EXPECT_EQ(out[0].data, EBADF);

  Kevent bad_filter = ev(1, -7 /* FreeBSD's EVFILT_TIMER: not in the double */, EV_ADD);
  ASSERT_EQ(kevent(kq.get(), &bad_filter, 1, out, 4, &kPoll), 1);
  EXPECT_EQ(out[0].data, EINVAL);

  char path[] = "/tmp/kqueue_double_XXXXXX";
  Fd file(::mkstemp(path));
  ASSERT_GE(file.get(), 0);
  ::unlink(path);
  Kevent regular = ev(file.get(), EVFILT_READ, EV_ADD);
  ASSERT_EQ(kevent(kq.get(), &regular, 1, out, 4, &kPoll), 1);
  EXPECT_EQ(out[0].data, EINVAL) << "regular files are not supported by the double";

  const timespec bad_ts{0, 1000000000L};
  EXPECT_EQ(kevent(kq.get(), nullptr, 0, out, 4, &bad_ts), -1);
  EXPECT_EQ(errno, EINVAL);
}

// EV_RECEIPT: "useful for making bulk changes to a kqueue without draining
// any pending events. When passed as input, it forces EV_ERROR to always be
// returned. When a filter is successfully added the data field will be zero."
TEST(KqueueDouble, ReceiptReportsEachChangeAndDoesNotDrain) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 1);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD)}), 0);  // an event is pending

  Kevent changes[3] = {ev(5, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, tag(5)),
                       ev(p.b.get(), EVFILT_WRITE, EV_ADD | EV_RECEIPT),
                       ev(6, EVFILT_USER, EV_DELETE | EV_RECEIPT)};
  Kevent out[8];
  ASSERT_EQ(kevent(kq.get(), changes, 3, out, 8, &kPoll), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i].flags, EV_ERROR) << i;
  EXPECT_EQ(out[0].data, 0);
  EXPECT_EQ(out[0].ident, 5u);
  EXPECT_EQ(out[0].udata, tag(5));
  EXPECT_EQ(out[1].data, 0);
  EXPECT_EQ(out[2].data, ENOENT);

  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 2u) << "the pending read and the new write event remain";
  EXPECT_NE(evs[0].filter, evs[1].filter);
}

// EV_RECEIPT: "if this flag is encountered and there is no remaining space in
// eventlist to hold the EV_ERROR event, then subsequent changes will not get
// processed." (code: that change itself is applied; kevent() returns 0.)
TEST(KqueueDouble, ReceiptWithoutRoomStopsProcessing) {
  Fd kq = make_kq();
  Kevent changes[3] = {ev(1, EVFILT_USER, EV_ADD | EV_RECEIPT),
                       ev(2, EVFILT_USER, EV_ADD | EV_RECEIPT),
                       ev(3, EVFILT_USER, EV_ADD)};
  Kevent out[1];
  EXPECT_EQ(kevent(kq.get(), changes, 3, out, 1, &kPoll), 0);
  EXPECT_EQ(out[0].flags, EV_ERROR);
  EXPECT_EQ(out[0].ident, 1u);
  EXPECT_EQ(change(kq, {ev(2, EVFILT_USER, EV_DELETE)}), 0) << "applied";
  EXPECT_EQ(change(kq, {ev(3, EVFILT_USER, EV_DELETE)}), -1) << "not processed";
  EXPECT_EQ(errno, ENOENT);
}

// EVFILT_WRITE "returns whenever it is possible to write to the descriptor";
// with EV_CLEAR it is reported again only once space is freed.
TEST(KqueueDouble, WriteClearReportsAgainWhenSpaceIsFreed) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  const std::string chunk(4096, 'x');
  while (::write(p.a.get(), chunk.data(), chunk.size()) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR)}), 0);
  EXPECT_TRUE(collect(kq).empty()) << "send buffer full";
  char buf[4096];
  while (::read(p.b.get(), buf, sizeof buf) > 0) {
  }
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u) << "space freed by the reader";
  EXPECT_GT(evs[0].data, 0);
  EXPECT_TRUE(collect(kq).empty()) << "no new activity";
}

// "All changes contained in the changelist are applied before any pending
// events are read from the queue." and "The same array may be used for the
// changelist and eventlist."
TEST(KqueueDouble, ChangesAndEventsInOneCallSameArray) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 4);
  Kevent arr[3] = {ev(p.a.get(), EVFILT_READ, EV_ADD, 0, 0, tag(11)),
                   ev(21, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, tag(21)),
                   ev(p.a.get(), EVFILT_WRITE, EV_ADD, 0, 0, tag(12))};
  const timespec ts = to_timespec(kDeadline);
  ASSERT_EQ(kevent(kq.get(), arr, 3, arr, 3, &ts), 3);
  int seen = 0;
  for (const Kevent& k : arr) {
    if (k.filter == EVFILT_READ) {
      EXPECT_EQ(k.udata, tag(11));
      EXPECT_EQ(k.data, 4);
      seen |= 1;
    } else if (k.filter == EVFILT_USER) {
      EXPECT_EQ(k.udata, tag(21));
      EXPECT_EQ(k.ident, 21u);
      seen |= 2;
    } else if (k.filter == EVFILT_WRITE) {
      EXPECT_EQ(k.udata, tag(12));
      EXPECT_GT(k.data, 0);
      seen |= 4;
    }
  }
  EXPECT_EQ(seen, 7);
}

// udata: "Opaque user-defined value passed through the kernel unchanged."
// (code: every change to an existing knote but EV_DELETE stores the change's
// udata: EV_ENABLE and NOTE_TRIGGER must carry it again.)
TEST(KqueueDouble, UdataRoundTrip) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  void* const a = tag(0xdeadbeefcafe0001u);
  void* const b = tag(UINTPTR_MAX);
  write_bytes(p.b, 1);
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD | EV_DISPATCH, 0, 0, a),
                        ev(3, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, b)}),
            0);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 2u);
  for (const Kevent& k : evs) EXPECT_EQ(k.udata, k.filter == EVFILT_READ ? a : b);

  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ENABLE, 0, 0, tag(4)),
                        ev(3, EVFILT_USER, 0, NOTE_TRIGGER, 0, tag(5))}),
            0);
  evs = collect(kq);
  ASSERT_EQ(evs.size(), 2u);
  for (const Kevent& k : evs) EXPECT_EQ(k.udata, k.filter == EVFILT_READ ? tag(4) : tag(5));
}

// ------------------------------------------------------------------- EV_EOF

// Sockets: "If the read direction of the socket has shutdown, then the filter
// also sets EV_EOF in flags ... It is possible for EOF to be returned ... while
// there is still data pending in the socket buffer."
TEST(KqueueDouble, EofAfterPeerShutdownSocketpair) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR)}), 0);
  write_bytes(p.b, 3);
  ASSERT_EQ(::shutdown(p.b.get(), SHUT_WR), 0);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_TRUE(evs[0].flags & EV_EOF);
  EXPECT_EQ(evs[0].data, 3) << "data still pending with EOF";
  EXPECT_EQ(evs[0].fflags, 0u) << "no socket error";
}

TEST(KqueueDouble, EofAfterPeerShutdownTcp) {
  Fd kq = make_kq();
  Pair p = make_tcp_pair();
  ASSERT_EQ(change(kq, {ev(p.b.get(), EVFILT_READ, EV_ADD)}), 0);
  write_bytes(p.a, 3);
  ASSERT_EQ(::shutdown(p.a.get(), SHUT_WR), 0);
  auto got = wait_event(kq, [](const Kevent& k) { return (k.flags & EV_EOF) != 0; });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, 3);
  EXPECT_EQ(got->fflags, 0u);
  // The write direction is still open: EVFILT_WRITE is ready without EV_EOF.
  ASSERT_EQ(change(kq, {ev(p.b.get(), EVFILT_WRITE, EV_ADD | EV_ONESHOT)}), 0);
  auto w = wait_event(kq, [](const Kevent& k) { return k.filter == EVFILT_WRITE; });
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->flags & EV_EOF);
}

// EVFILT_WRITE: "returns whenever it is possible to write to the descriptor.
// For sockets ... data will contain the amount of space remaining in the write
// buffer." For sockets, "socket error handling is identical to the
// EVFILT_READ case": EV_EOF once the write direction is shut down.
TEST(KqueueDouble, WriteSpaceAndEofAfterLocalShutdownTcp) {
  Fd kq = make_kq();
  Pair p = make_tcp_pair();
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_WRITE, EV_ADD)}), 0);
  auto w = wait_event(kq, [](const Kevent&) { return true; });
  ASSERT_TRUE(w);
  EXPECT_GT(w->data, 0);
  EXPECT_FALSE(w->flags & EV_EOF);
  ASSERT_EQ(::shutdown(p.a.get(), SHUT_WR), 0);
  auto eof = wait_event(kq, [](const Kevent& k) { return (k.flags & EV_EOF) != 0; });
  ASSERT_TRUE(eof);
  EXPECT_EQ(eof->filter, EVFILT_WRITE);
}

TEST(KqueueDouble, WriteEofWhenPeerClosedSocketpair) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR)}), 0);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_GT(evs[0].data, 0);
  EXPECT_FALSE(evs[0].flags & EV_EOF);
  p.b.reset();
  evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_TRUE(evs[0].flags & EV_EOF);
}

// Fifos, Pipes: "data contains the number of bytes available. When the last
// writer disconnects, the filter will set EV_EOF". EVFILT_WRITE: "The filter
// will set EV_EOF when the reader disconnects".
TEST(KqueueDouble, PipeDataAndEof) {
  Fd kq = make_kq();
  Pair p = make_pipe();
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR),
                        ev(p.b.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR)}),
            0);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].filter, EVFILT_WRITE);
  EXPECT_GT(evs[0].data, 0);
  write_bytes(p.b, 4);
  auto got = wait_event(kq, [](const Kevent& k) { return k.filter == EVFILT_READ; });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, 4);
  EXPECT_FALSE(got->flags & EV_EOF);

  Pair q = make_pipe();
  ASSERT_EQ(change(kq, {ev(q.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR),
                        ev(q.b.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR)}),
            0);
  collect(kq);
  Fd read_end(q.a.release());
  ASSERT_EQ(change(kq, {ev(read_end.get(), EVFILT_READ, EV_DELETE)}), 0);
  read_end.reset();  // the reader disconnects
  got = wait_event(kq, [&](const Kevent& k) { return k.ident == static_cast<std::uintptr_t>(q.b.get()); });
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->flags & EV_EOF);

  p.b.reset();  // the last writer disconnects
  got = wait_event(kq, [&](const Kevent& k) { return k.ident == static_cast<std::uintptr_t>(p.a.get()); });
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->flags & EV_EOF);
  EXPECT_EQ(got->data, 4);
}

// EV_EOF with the socket error: "returns the socket error (if any) in fflags".
// The double reports a nonzero placeholder (see event.h) and leaves the error
// for the application's getsockopt(SO_ERROR).
TEST(KqueueDouble, ConnectRefusedGivesEofAndErrorFlags) {
  sockaddr_in addr{};
  {
    Fd l = tcp_listener(&addr);  // a port that is free once l closes
  }
  Fd c(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  ASSERT_GE(c.get(), 0);
  const int rc = ::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc == 0 || errno != EINPROGRESS) GTEST_SKIP() << "connect completed synchronously";
  Fd kq = make_kq();
  ASSERT_EQ(change(kq, {ev(c.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR)}), 0);
  auto got = wait_event(kq, [](const Kevent&) { return true; });
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->flags & EV_EOF);
  EXPECT_NE(got->fflags, 0u);
  int err = 0;
  socklen_t len = sizeof err;
  ASSERT_EQ(::getsockopt(c.get(), SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, ECONNREFUSED) << "the double must not consume SO_ERROR";
}

// Listening sockets: "return when there is an incoming connection pending.
// data contains the size of the listen backlog."
TEST(KqueueDouble, ListenerReportsPendingConnections) {
  Fd kq = make_kq();
  sockaddr_in addr{};
  Fd l = tcp_listener(&addr);
  ASSERT_EQ(change(kq, {ev(l.get(), EVFILT_READ, EV_ADD), ev(l.get(), EVFILT_WRITE, EV_ADD)}), 0);
  EXPECT_TRUE(collect(kq).empty()) << "no connection yet; a listener is never writable";
  Fd c1 = tcp_connect(addr);
  Fd c2 = tcp_connect(addr);
  auto got = wait_event(kq, [](const Kevent& k) { return k.data == 2; });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->filter, EVFILT_READ);
  Fd s(::accept(l.get(), nullptr, nullptr));
  ASSERT_GE(s.get(), 0);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 1);
}

// ----------------------------------------------------------------- EVFILT_USER

// EVFILT_USER: "Establishes a user event ... triggered by user level code";
// NOTE_TRIGGER "Cause the event to be triggered"; with EV_CLEAR the state
// resets after retrieval; without it the event stays triggered.
TEST(KqueueDouble, UserEventTriggerClearAndLevel) {
  Fd kq = make_kq();
  ASSERT_EQ(change(kq, {ev(1, EVFILT_USER, EV_ADD | EV_CLEAR), ev(2, EVFILT_USER, EV_ADD)}), 0);
  EXPECT_TRUE(collect(kq).empty()) << "not triggered yet";
  ASSERT_EQ(change(kq, {ev(1, EVFILT_USER, 0, NOTE_TRIGGER), ev(2, EVFILT_USER, 0, NOTE_TRIGGER)}), 0);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 2u);
  evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u) << "only the level user event stays triggered";
  EXPECT_EQ(evs[0].ident, 2u);
  ASSERT_EQ(change(kq, {ev(2, EVFILT_USER, EV_DELETE)}), 0);
  EXPECT_TRUE(collect(kq).empty());
}

// "The lower 24 bits of the fflags may be used for user defined flags and
// manipulated using": NOTE_FFNOP, NOTE_FFAND, NOTE_FFOR, NOTE_FFCOPY; "On
// return, fflags contains the users defined flags in the lower 24 bits."
TEST(KqueueDouble, UserFflagsOperations) {
  Fd kq = make_kq();
  ASSERT_EQ(change(kq, {ev(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0x11)}), 0);
  auto trigger = [&](unsigned ff) {
    EXPECT_EQ(change(kq, {ev(1, EVFILT_USER, 0, NOTE_TRIGGER | ff, 77)}), 0);
    auto evs = collect(kq);
    EXPECT_EQ(evs.size(), 1u);
    if (!evs.empty()) {
      EXPECT_EQ(evs[0].data, 77);
    }
    return evs.empty() ? ~0u : evs[0].fflags;
  };
  EXPECT_EQ(trigger(NOTE_FFNOP | 0xff), 0x11u);
  EXPECT_EQ(trigger(NOTE_FFOR | 0x100), 0x111u);
  EXPECT_EQ(trigger(NOTE_FFAND | 0x101), 0x101u);
  EXPECT_EQ(trigger(NOTE_FFCOPY | 0x2), 0x2u);
  EXPECT_EQ(trigger(NOTE_FFCOPY | NOTE_FFLAGSMASK), static_cast<unsigned>(NOTE_FFLAGSMASK));
}

// (code: FreeBSD filt_usertouch) EV_CLEAR in a change resets the trigger after
// NOTE_TRIGGER set it, so a trigger must not carry EV_CLEAR; EV_ADD with
// NOTE_TRIGGER triggers at once.
TEST(KqueueDouble, UserTriggerWithClearInTheChangeDoesNotTrigger) {
  Fd kq = make_kq();
  ASSERT_EQ(change(kq, {ev(1, EVFILT_USER, EV_ADD | EV_CLEAR)}), 0);
  ASSERT_EQ(change(kq, {ev(1, EVFILT_USER, EV_CLEAR, NOTE_TRIGGER)}), 0);
  EXPECT_TRUE(collect(kq).empty());
  ASSERT_EQ(change(kq, {ev(2, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER)}), 0);
  EXPECT_EQ(collect(kq).size(), 1u);
}

// A thread blocked in kevent() with a NULL timeout ("waits indefinitely") is
// woken by NOTE_TRIGGER from another thread.
TEST(KqueueDouble, UserTriggerFromAnotherThreadWakesBlockedKevent) {
  Fd kq = make_kq();
  ASSERT_EQ(change(kq, {ev(42, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, tag(42))}), 0);
  std::atomic<pid_t> tid{0};
  std::promise<std::pair<int, Kevent>> done;
  auto result = done.get_future();
  std::thread waiter([&] {
    tid = ::gettid();
    Kevent out[4];
    const int n = kevent(kq.get(), nullptr, 0, out, 4, nullptr);
    done.set_value({n, out[0]});
  });
  EXPECT_TRUE(eventually([&] { return tid != 0 && thread_sleeping(tid); }))
      << "could not see the waiter asleep; triggering anyway";
  EXPECT_EQ(result.wait_for(0s), std::future_status::timeout) << "returned with no event";
  ASSERT_EQ(change(kq, {ev(42, EVFILT_USER, 0, NOTE_TRIGGER, 0, tag(42))}), 0);
  if (result.wait_for(kDeadline) != std::future_status::ready) {
    ADD_FAILURE() << "blocked kevent() was not woken";
    waiter.detach();
    (void)kq.release();  // the detached thread still uses it
    return;
  }
  waiter.join();
  const auto [n, k] = result.get();
  ASSERT_EQ(n, 1);
  EXPECT_EQ(k.ident, 42u);
  EXPECT_EQ(k.filter, EVFILT_USER);
  EXPECT_EQ(k.udata, tag(42));
}

// "The filter is executed upon the initial registration of a kevent in order
// to detect whether a preexisting condition is present": EV_ADD of a ready
// descriptor by another thread wakes a blocked kevent().
TEST(KqueueDouble, AddingReadyFdFromAnotherThreadWakesBlockedKevent) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 2);
  std::atomic<pid_t> tid{0};
  std::promise<std::pair<int, Kevent>> done;
  auto result = done.get_future();
  std::thread waiter([&] {
    tid = ::gettid();
    Kevent out[4];
    const timespec ts = to_timespec(kDeadline);
    const int n = kevent(kq.get(), nullptr, 0, out, 4, &ts);
    done.set_value({n, out[0]});
  });
  EXPECT_TRUE(eventually([&] { return tid != 0 && thread_sleeping(tid); }));
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD)}), 0);
  waiter.join();
  const auto [n, k] = result.get();
  ASSERT_EQ(n, 1);
  EXPECT_EQ(k.ident, static_cast<std::uintptr_t>(p.a.get()));
  EXPECT_EQ(k.data, 2);
}

// ------------------------------------------------------------------- timeouts

// "To effect a poll, the timeout argument should be non-NULL, pointing to a
// zero-valued timespec structure." and "When nevents is zero, kevent() will
// return immediately even if there is a timeout specified".
TEST(KqueueDouble, ZeroTimeoutAndZeroNeventsReturnAtOnce) {
  Fd kq = make_kq();
  ASSERT_EQ(change(kq, {ev(1, EVFILT_USER, EV_ADD)}), 0);
  Kevent out[4];
  auto t0 = Clock::now();
  EXPECT_EQ(kevent(kq.get(), nullptr, 0, out, 4, &kPoll), 0);
  EXPECT_LT(Clock::now() - t0, kDeadline);
  const timespec forever_ish{1000, 0};
  t0 = Clock::now();
  EXPECT_EQ(kevent(kq.get(), nullptr, 0, nullptr, 0, &forever_ish), 0);
  EXPECT_LT(Clock::now() - t0, kDeadline);
}

// "If timeout is a non-NULL pointer, it specifies a maximum interval to wait
// ... If the time limit expires, then kevent() returns 0." The double never
// returns before the interval has passed.
TEST(KqueueDouble, TimeoutExpiresAndIsNeverEarly) {
  Fd kq = make_kq();
  const timespec ts{0, 30000000};  // 30 ms
  Kevent out[4];
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    EXPECT_EQ(kevent(kq.get(), nullptr, 0, out, 4, &ts), 0);
    EXPECT_GE(Clock::now() - t0, 30ms);
  }
}

// ERRORS: EINTR "A signal was delivered before the timeout expired and before
// any events were placed on the kqueue for return."
void on_sigusr1(int) {}

TEST(KqueueDouble, SignalInterruptsWaitWithEintr) {
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART (kevent is never restarted anyway)
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  Fd kq = make_kq();
  std::promise<std::pair<int, int>> done;
  auto result = done.get_future();
  std::thread waiter([&] {
    Kevent out[4];
    const timespec ts = to_timespec(kDeadline);
    const int n = kevent(kq.get(), nullptr, 0, out, 4, &ts);
    done.set_value({n, errno});
  });
  const auto until = Clock::now() + kDeadline;
  // Signal until the waiter returns: a signal that lands before it blocks is
  // simply followed by another.
  while (result.wait_for(5ms) != std::future_status::ready && Clock::now() < until) {
    ::pthread_kill(waiter.native_handle(), SIGUSR1);
  }
  waiter.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  const auto [n, err] = result.get();
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, EINTR);
}

// ------------------------------------------------------- descriptors, kqueues

// ERRORS: EBADF "The specified descriptor is invalid" (the kqueue itself).
TEST(KqueueDouble, BadKqueueDescriptorIsEbadf) {
  Kevent out[1];
  EXPECT_EQ(kevent(-1, nullptr, 0, out, 1, &kPoll), -1);
  EXPECT_EQ(errno, EBADF);
  Pair p = make_pipe();
  EXPECT_EQ(kevent(p.a.get(), nullptr, 0, out, 1, &kPoll), -1);
  EXPECT_EQ(errno, EBADF);
  int closed = kqueue();
  ASSERT_GE(closed, 0);
  ::close(closed);
  EXPECT_EQ(kevent(closed, nullptr, 0, out, 1, &kPoll), -1);
  EXPECT_EQ(errno, EBADF);
  // A closed kqueue whose number now names another file, with changes.
  int reused = kqueue();
  ASSERT_GE(reused, 0);
  ::close(reused);
  Pair q = make_socketpair();
  Fd other = move_to(std::move(q.a), reused);
  Kevent c = ev(7, EVFILT_USER, EV_ADD);
  EXPECT_EQ(kevent(reused, &c, 1, nullptr, 0, nullptr), -1);
  EXPECT_EQ(errno, EBADF);
}

// "Calling close() on a file descriptor will remove any kevents that
// reference the descriptor." The double drops them lazily but never reports
// them, even when the number is reused for another file.
TEST(KqueueDouble, CloseRemovesKnotes) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 1);
  const int num = p.a.get();
  ASSERT_EQ(change(kq, {ev(num, EVFILT_READ, EV_ADD, 0, 0, tag(1))}), 0);
  p.a.reset();
  EXPECT_TRUE(collect(kq).empty()) << "closed descriptor: its event is gone";
  ASSERT_EQ(change(kq, {ev(num, EVFILT_READ, EV_DELETE)}), -1);
  EXPECT_EQ(errno, EBADF) << "not open";

  // The same number now names another, readable, socket.
  Pair q = make_socketpair();
  Fd reused = move_to(std::move(q.a), num);
  ASSERT_EQ(change(kq, {ev(num, EVFILT_WRITE, EV_ADD | EV_ONESHOT, 0, 0, tag(2))}), 0);
  write_bytes(q.b, 1);
  auto evs = collect(kq);
  ASSERT_EQ(evs.size(), 1u) << "only the new write knote";
  EXPECT_EQ(evs[0].udata, tag(2));

  // Close with a knote, reuse the number, then name it: the old knote is gone.
  ASSERT_EQ(change(kq, {ev(num, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, tag(3))}), 0);
  EXPECT_EQ(collect(kq).size(), 1u);
  reused.reset();
  q.b.reset();
  Pair r = make_socketpair();
  reused = move_to(std::move(r.a), num);
  write_bytes(r.b, 1);
  EXPECT_EQ(change(kq, {ev(num, EVFILT_READ, EV_DELETE)}), -1);
  EXPECT_EQ(errno, ENOENT) << "the knote died with the old file";
  EXPECT_TRUE(collect(kq).empty());
}

// kqueue(): "creates a new kernel event queue and returns a descriptor" that
// close() releases; the double's helper descriptors do not leak.
TEST(KqueueDouble, ClosedKqueuesDoNotLeakDescriptors) {
  {
    Fd warm = make_kq();
  }
  const std::size_t before = open_fd_count();
  for (int i = 0; i < 200; ++i) {
    Fd kq = make_kq();
    ASSERT_EQ(change(kq, {ev(1, EVFILT_USER, EV_ADD)}), 0);
  }
  Fd last = make_kq();
  EXPECT_LE(open_fd_count(), before + 3);
}

// The kqueue descriptor can be polled: readable while events are pending
// (kqueue_poll in the BSD kernels; the double approximates, see event.h).
TEST(KqueueDouble, KqueueDescriptorIsPollable) {
  Fd kq = make_kq();
  Pair p = make_socketpair();
  ASSERT_EQ(change(kq, {ev(p.a.get(), EVFILT_READ, EV_ADD)}), 0);
  pollfd pfd{kq.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
  write_bytes(p.b, 1);
  EXPECT_EQ(::poll(&pfd, 1, 0), 1);
  ASSERT_EQ(collect(kq).size(), 1u);
  EXPECT_EQ(::poll(&pfd, 1, 0), 1) << "level event still pending";
  char c;
  ASSERT_EQ(::read(p.a.get(), &c, 1), 1);
  EXPECT_TRUE(collect(kq).empty());
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
  ASSERT_EQ(change(kq, {ev(7, EVFILT_USER, EV_ADD, NOTE_TRIGGER)}), 0);
  EXPECT_EQ(::poll(&pfd, 1, 0), 1) << "user event pending";
}

// Several threads on one kqueue: one waiting, others changing. Every trigger
// is received once (the waiter acknowledges each before the next), while a
// third thread keeps adding and deleting descriptor knotes.
TEST(KqueueDouble, ConcurrentWaitAndChanges) {
  constexpr int kTriggers = 200;
  Fd kq = make_kq();
  Pair p = make_socketpair();
  write_bytes(p.b, 1);
  ASSERT_EQ(change(kq, {ev(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, tag(1))}), 0);
  std::mutex mu;
  std::condition_variable cv;
  int received = 0;
  std::atomic<bool> stop{false};
  std::thread waiter([&] {
    while (!stop) {
      Kevent out[8];
      const timespec ts{0, 50000000};
      const int n = kevent(kq.get(), nullptr, 0, out, 8, &ts);
      ASSERT_GE(n, 0) << std::strerror(errno);
      for (int i = 0; i < n; ++i) {
        if (out[i].filter != EVFILT_USER) continue;
        EXPECT_EQ(out[i].udata, tag(1));
        std::lock_guard lock(mu);
        ++received;
        cv.notify_all();
      }
    }
  });
  std::thread churn([&] {
    while (!stop) {
      Kevent c[2] = {ev(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR),
                     ev(p.a.get(), EVFILT_WRITE, EV_ADD)};
      ASSERT_EQ(kevent(kq.get(), c, 2, nullptr, 0, nullptr), 0);
      c[0].flags = c[1].flags = EV_DELETE;
      ASSERT_EQ(kevent(kq.get(), c, 2, nullptr, 0, nullptr), 0);
    }
  });
  for (int i = 1; i <= kTriggers; ++i) {
    EXPECT_EQ(change(kq, {ev(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, tag(1))}), 0);
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, kDeadline, [&] { return received >= i; })) {
      ADD_FAILURE() << "trigger " << i << " not received";
      break;
    }
    EXPECT_EQ(received, i);
  }
  stop = true;
  waiter.join();
  churn.join();
  EXPECT_EQ(received, kTriggers);
}

}  // namespace
