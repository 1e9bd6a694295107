// kqueue_double.cpp: kqueue()/kevent() for Linux, over epoll, for evq's tests.
//
// The behaviours reproduced and the ones that are not are listed at the top of
// include/sys/event.h. This comment says how the double works.
//
// Model. The double keeps the BSD kernel's model in user space: per kqueue a
// table of knotes keyed by (ident, filter), each with the status bits ACTIVE,
// QUEUED and DISABLED, and an active queue (FIFO). A filter function ("f_event")
// decides whether a knote's condition holds and computes data/fflags/EV_EOF;
// for fd filters it looks at the descriptor with fstat(), poll() and a few
// ioctls/getsockopts, for EVFILT_USER it reads the trigger bit. The kernel
// runs f_event (1) when a knote is added, modified or enabled, (2) when the
// object reports activity, (3) at retrieval, except for EV_ONESHOT. The double
// does the same, with epoll standing in for (2):
//   - each descriptor with knotes has ONE epoll registration, EPOLLET, with
//     EPOLLIN|EPOLLRDHUP if it has a read knote and EPOLLOUT if it has a write
//     knote. An epoll edge is "activity": the knotes it concerns are
//     evaluated and, if true, activated (queued unless disabled).
//   - at retrieval (the scan) each queued knote is taken in order: EV_ONESHOT
//     ones are returned and deleted; the others are re-evaluated, dropped if
//     false, returned if true, then requeued (level) or left inactive
//     (EV_CLEAR, EV_DISPATCH which also disables). A marker bounds the scan so
//     requeued level knotes are not returned twice in one call.
// Because level knotes stay queued while true and EV_CLEAR knotes need a new
// epoll edge to be queued again, both trigger modes come out of the same
// EPOLLET registration.
//
// Waiting and waking. The kqueue descriptor handed to the user is the epoll
// descriptor itself (closeable, pollable), and it is the only descriptor a
// kqueue has, so close() releases all of it as on the BSDs. Each epoll also
// holds one process-wide eventfd that is always readable (created before
// main(), never closed); its level-triggered interest is switched between
// EPOLLIN and nothing with EPOLL_CTL_MOD, which affects that one epoll only,
// so that the kqueue descriptor is readable exactly while the active queue is
// non-empty. So a thread blocked in epoll_pwait2() wakes both on new epoll
// edges and when another thread's change queued a knote (EV_ADD of a ready
// descriptor, NOTE_TRIGGER, EV_ENABLE), and poll() on the kqueue descriptor
// reports it readable while events are pending. kevent() never holds the
// kqueue's mutex while blocked; epoll events it collects are matched to the
// descriptor record through a generation number, so records deleted or
// replaced meanwhile are ignored.
//
// Descriptor identity. Linux drops an fd's epoll registration when the file
// is closed, but the double's knotes for that ident remain. Each descriptor
// record keeps the file's (st_dev, st_ino); every evaluation and every change
// re-checks it with fstat(), and a closed or replaced descriptor's knotes are
// purged without being reported (see event.h for the limits of this).
//
// Process-wide table. kqueue() registers the new kqueue under its descriptor
// number in a table guarded by a mutex. A kqueue closed with close() cannot be
// noticed at once (its descriptor is gone at once: only the double's memory
// lingers); kqueue() sweeps the table: an entry whose descriptor no longer
// holds the shared eventfd (EPOLL_CTL_MOD on it fails) is dropped. kevent()
// makes the same check before applying changes, and after an EBADF. The
// table is never destroyed (threads may still call kevent() during exit).

#include <sys/event.h>

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>

namespace {

using Kevent = struct kevent;

// epoll_event.data of the wake eventfd; descriptor records use (gen << 32 | fd)
// with gen >= 1, which never equals this.
constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};

// fflags reported with EV_EOF when a socket has a pending error: see event.h.
constexpr unsigned kSocketErrorPlaceholder = EIO;

// Flags a change cannot leave in the stored knote flags.
constexpr unsigned short kActionFlags = EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE;

constexpr int kEpollBatch = 64;

enum class Kind : std::uint8_t { tcp, socket, pipe, other };

struct Knote {
  std::uintptr_t ident = 0;
  short filter = 0;
  unsigned short flags = 0;  // creation flags minus kActionFlags; EV_EOF by filter
  unsigned sfflags = 0;      // fflags given by the user (EVFILT_USER: low 24 bits)
  std::int64_t sdata = 0;    // data given by the user
  void* udata = nullptr;
  unsigned fflags = 0;    // filter output
  std::int64_t data = 0;  // filter output
  bool active = false;
  bool queued = false;
  bool disabled = false;
  bool triggered = false;  // EVFILT_USER
  Knote* prev = nullptr;   // active queue links
  Knote* next = nullptr;
};

struct FdRec {
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint32_t gen = 0;
  Kind kind = Kind::other;
  Knote* rd = nullptr;
  Knote* wr = nullptr;
  std::uint32_t ep_events = 0;  // 0: not registered with epoll
};

// What a look at a descriptor found, for the filters asked for.
struct Probe {
  bool stale = false;  // closed, or the ident now names another file
  bool rd_ready = false;
  bool rd_eof = false;
  std::int64_t rd_data = 0;
  bool wr_ready = false;
  bool wr_eof = false;
  std::int64_t wr_data = 0;
  bool error = false;  // POLLERR on a socket
};

enum class Eval { no, yes, stale };

int fail(int err) {
  errno = err;
  return -1;
}

int retry_poll(pollfd* p) {
  int n;
  do {
    n = ::poll(p, 1, 0);
  } while (n < 0 && errno == EINTR);
  return n;
}

std::int64_t ioctl_int(int fd, unsigned long req) {
  int v = 0;
  if (::ioctl(fd, req, &v) != 0 || v < 0) return 0;
  return v;
}

int sockopt_int(int fd, int level, int name, int fallback) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, level, name, &v, &len) != 0) return fallback;
  return v;
}

Kind detect_kind(int fd, const struct stat& st) {
  if (S_ISFIFO(st.st_mode)) return Kind::pipe;
  if (!S_ISSOCK(st.st_mode)) return Kind::other;
  const int type = sockopt_int(fd, SOL_SOCKET, SO_TYPE, -1);
  const int proto = sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL, -1);
  if (type == SOCK_STREAM && proto == IPPROTO_TCP) return Kind::tcp;
  return Kind::socket;
}

Probe probe_fd(int fd, const FdRec& rec, bool want_rd, bool want_wr) {
  Probe p;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_dev != rec.dev || st.st_ino != rec.ino) {
    p.stale = true;
    return p;
  }
  if (!want_rd && !want_wr) return p;
  pollfd pfd{fd, static_cast<short>(POLLIN | POLLOUT | POLLRDHUP), 0};
  if (retry_poll(&pfd) < 0 || (pfd.revents & POLLNVAL) != 0) {
    p.stale = true;
    return p;
  }
  const short rev = pfd.revents;
  const bool in = (rev & POLLIN) != 0;
  const bool out = (rev & POLLOUT) != 0;
  const bool err = (rev & POLLERR) != 0;
  const bool hup = (rev & POLLHUP) != 0;
  const bool rdhup = (rev & POLLRDHUP) != 0;

  auto send_space = [fd] {
    const std::int64_t space = sockopt_int(fd, SOL_SOCKET, SO_SNDBUF, 0) - ioctl_int(fd, SIOCOUTQ);
    return space > 0 ? space : 0;
  };

  switch (rec.kind) {
    case Kind::tcp: {
      tcp_info ti{};
      socklen_t len = sizeof ti;
      const int state =
          ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? ti.tcpi_state : -1;
      p.error = err;
      if (state == TCP_LISTEN) {
        // Listening socket: ready while a connection waits; data = the number
        // waiting (Linux reports the accept queue length in tcpi_unacked).
        p.rd_ready = in;
        if (in) p.rd_data = ti.tcpi_unacked > 0 ? ti.tcpi_unacked : 1;
        return p;  // never writable, as on FreeBSD
      }
      // RDHUP: the read side is shut down (FIN received, SHUT_RD, reset).
      p.rd_eof = rdhup;
      p.rd_ready = in || rdhup || err;
      if (want_rd) p.rd_data = ioctl_int(fd, FIONREAD);
      // Write side closed: we sent FIN (states after SHUT_WR), or the
      // connection is gone (CLOSE with its read side shut or an error). A
      // never-connected socket is CLOSE without either, and is not writable
      // (FreeBSD: not connected, PR_CONNREQUIRED).
      const bool fin_sent = state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 ||
                            state == TCP_CLOSING || state == TCP_LAST_ACK ||
                            state == TCP_TIME_WAIT;
      p.wr_eof = fin_sent || (state == TCP_CLOSE && (rdhup || err));
      p.wr_ready = p.wr_eof || err || (out && state != TCP_CLOSE);
      if (want_wr) p.wr_data = send_space();
      return p;
    }
    case Kind::socket: {
      p.error = err;
      if (sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN, 0) != 0) {
        p.rd_ready = in;
        p.rd_data = in ? 1 : 0;  // Linux does not expose the count here
        return p;
      }
      p.rd_eof = rdhup;
      p.rd_ready = in || rdhup || err;
      if (want_rd) p.rd_data = ioctl_int(fd, FIONREAD);
      // Linux has no poll bit for "send side shut down" alone; both shut down
      // (HUP with RDHUP) or an error with HUP means the peer is gone.
      p.wr_eof = hup && (rdhup || err);
      p.wr_ready = out || p.wr_eof || err;
      if (want_wr) p.wr_data = send_space();
      return p;
    }
    case Kind::pipe: {
      // Read end: HUP once no writer is left. Write end: ERR once no reader.
      p.rd_eof = hup;
      p.rd_ready = in || hup;
      if (want_rd) p.rd_data = ioctl_int(fd, FIONREAD);
      p.wr_eof = err;
      p.wr_ready = out || err;
      if (want_wr && p.wr_ready) {
        const int cap = ::fcntl(fd, F_GETPIPE_SZ);
        const std::int64_t space = (cap > 0 ? cap : 0) - ioctl_int(fd, FIONREAD);
        p.wr_data = space > 0 ? space : 0;
      }
      return p;
    }
    case Kind::other:
      p.rd_eof = hup;
      p.rd_ready = in || hup || err;
      if (want_rd) p.rd_data = ioctl_int(fd, FIONREAD);
      p.wr_eof = hup;
      p.wr_ready = out || hup || err;
      return p;
  }
  return p;
}

class Kq {
 public:
  Kq(int epfd, int efd) : epfd_(epfd), efd_(efd) { head_.prev = head_.next = &head_; }
  Kq(const Kq&) = delete;
  Kq& operator=(const Kq&) = delete;
  // The epoll descriptor belongs to the user (they close it); the eventfd is
  // shared by all kqueues and never closed.
  ~Kq() = default;

  int epfd() const { return epfd_; }

  // Is this kqueue still open under its number? See the definition.
  bool alive();

  int call(const Kevent* changelist, int nchanges, Kevent* eventlist, int nevents,
           const struct timespec* timeout);

 private:
  // --- active queue
  void enqueue(Knote* kn) {
    kn->prev = head_.prev;
    kn->next = &head_;
    head_.prev->next = kn;
    head_.prev = kn;
    kn->queued = true;
    ++queued_;
  }
  void dequeue(Knote* kn) {
    kn->prev->next = kn->next;
    kn->next->prev = kn->prev;
    kn->prev = kn->next = nullptr;
    kn->queued = false;
    --queued_;
  }
  void activate(Knote* kn) {
    kn->active = true;
    if (!kn->queued && !kn->disabled) enqueue(kn);
  }

  // --- knotes and descriptor records
  Knote* find(std::uintptr_t ident, short filter) {
    auto it = knotes_.find({ident, filter});
    return it == knotes_.end() ? nullptr : it->second.get();
  }
  int register_change(const Kevent& kev);
  int attach_fd(Knote* kn, int fd, const struct stat& st);
  int update_interest(int fd, FdRec& rec);
  void drop(Knote* kn);
  void purge_fd(int fd);

  // --- filters
  Eval filter_event(Knote* kn);
  static void apply(Knote* kn, bool eof, std::int64_t data, bool error);
  void user_touch(Knote* kn, const Kevent& kev);
  Kevent deliver(Knote* kn);

  // --- collecting
  void process(const epoll_event* evs, int n);
  bool harvest();  // false: the epoll descriptor is gone
  int scan(Kevent* out, int max);
  void sync_wake();

  const int epfd_;
  const int efd_;
  std::mutex mu_;
  std::map<std::pair<std::uintptr_t, short>, std::unique_ptr<Knote>> knotes_;
  std::unordered_map<int, FdRec> fds_;
  std::uint32_t next_gen_ = 0;
  Knote head_;  // sentinel of the active queue
  std::size_t queued_ = 0;
  bool wake_set_ = false;  // the eventfd's interest is EPOLLIN (epfd readable)
};

void Kq::apply(Knote* kn, bool eof, std::int64_t data, bool error) {
  kn->data = data;
  if (eof) {
    kn->flags |= EV_EOF;
    kn->fflags = error ? kSocketErrorPlaceholder : 0;
  } else {
    kn->flags &= static_cast<unsigned short>(~EV_EOF);
    kn->fflags = 0;
  }
}

Eval Kq::filter_event(Knote* kn) {
  if (kn->filter == EVFILT_USER) return kn->triggered ? Eval::yes : Eval::no;
  const int fd = static_cast<int>(kn->ident);
  auto it = fds_.find(fd);
  if (it == fds_.end()) return Eval::stale;
  const bool rd = kn->filter == EVFILT_READ;
  const Probe p = probe_fd(fd, it->second, rd, !rd);
  if (p.stale) return Eval::stale;
  if (rd) {
    apply(kn, p.rd_eof, p.rd_data, p.error);
    return p.rd_ready ? Eval::yes : Eval::no;
  }
  apply(kn, p.wr_eof, p.wr_data, p.error);
  return p.wr_ready ? Eval::yes : Eval::no;
}

void Kq::user_touch(Knote* kn, const Kevent& kev) {
  // FreeBSD filt_usertouch(EVENT_REGISTER): trigger, then the fflags
  // operation, then the data; EV_CLEAR in the change resets the trigger.
  if ((kev.fflags & NOTE_TRIGGER) != 0) kn->triggered = true;
  const unsigned ff = kev.fflags & NOTE_FFLAGSMASK;
  switch (kev.fflags & NOTE_FFCTRLMASK) {
    case NOTE_FFAND:
      kn->sfflags &= ff;
      break;
    case NOTE_FFOR:
      kn->sfflags |= ff;
      break;
    case NOTE_FFCOPY:
      kn->sfflags = ff;
      break;
    default:  // NOTE_FFNOP
      break;
  }
  kn->sdata = kev.data;
  if ((kev.flags & EV_CLEAR) != 0) kn->triggered = false;
}

Kevent Kq::deliver(Knote* kn) {
  Kevent ev{};
  ev.ident = kn->ident;
  ev.filter = kn->filter;
  ev.flags = kn->flags;
  ev.udata = kn->udata;
  if (kn->filter == EVFILT_USER) {
    // filt_usertouch(EVENT_PROCESS)
    ev.fflags = kn->sfflags & NOTE_FFLAGSMASK;
    ev.data = kn->sdata;
    if ((kn->flags & EV_CLEAR) != 0) kn->triggered = false;
  } else {
    ev.fflags = kn->fflags;
    ev.data = kn->data;
  }
  return ev;
}

int Kq::update_interest(int fd, FdRec& rec) {
  std::uint32_t want = 0;
  if (rec.rd != nullptr) want |= EPOLLIN | EPOLLRDHUP;
  if (rec.wr != nullptr) want |= EPOLLOUT;
  if (want == 0) {
    // The ident may already be closed or name another file: errors are moot.
    if (rec.ep_events != 0) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    rec.ep_events = 0;
    return 0;
  }
  want |= EPOLLET;
  if (want == rec.ep_events) return 0;
  epoll_event e{};
  e.events = want;
  e.data.u64 = (static_cast<std::uint64_t>(rec.gen) << 32) | static_cast<std::uint32_t>(fd);
  int op = rec.ep_events != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  int rc = ::epoll_ctl(epfd_, op, fd, &e);
  if (rc != 0 && op == EPOLL_CTL_MOD && errno == ENOENT) rc = ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &e);
  if (rc != 0 && op == EPOLL_CTL_ADD && errno == EEXIST) rc = ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &e);
  if (rc != 0) {
    switch (errno) {
      case EPERM:  // regular file, directory: no poll support
        return EINVAL;
      case ENOSPC:
        return ENOMEM;
      default:
        return errno;
    }
  }
  rec.ep_events = want;
  return 0;
}

int Kq::attach_fd(Knote* kn, int fd, const struct stat& st) {
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return EINVAL;
  auto [it, inserted] = fds_.try_emplace(fd);
  FdRec& rec = it->second;
  if (inserted) {
    rec.dev = st.st_dev;
    rec.ino = st.st_ino;
    rec.gen = ++next_gen_;
    if (rec.gen == 0 || rec.gen == UINT32_MAX) rec.gen = next_gen_ = 1;
    rec.kind = detect_kind(fd, st);
  }
  Knote*& slot = kn->filter == EVFILT_READ ? rec.rd : rec.wr;
  slot = kn;
  if (const int err = update_interest(fd, rec); err != 0) {
    slot = nullptr;
    if (rec.rd == nullptr && rec.wr == nullptr) fds_.erase(it);
    return err;
  }
  return 0;
}

void Kq::drop(Knote* kn) {
  if (kn->queued) dequeue(kn);
  if (kn->filter != EVFILT_USER) {
    const int fd = static_cast<int>(kn->ident);
    if (auto it = fds_.find(fd); it != fds_.end()) {
      FdRec& rec = it->second;
      if (rec.rd == kn) rec.rd = nullptr;
      if (rec.wr == kn) rec.wr = nullptr;
      update_interest(fd, rec);  // a failing MOD leaves extra interest: harmless
      if (rec.rd == nullptr && rec.wr == nullptr) fds_.erase(it);
    }
  }
  knotes_.erase({kn->ident, kn->filter});
}

void Kq::purge_fd(int fd) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return;
  FdRec& rec = it->second;
  for (Knote* kn : {rec.rd, rec.wr}) {
    if (kn == nullptr) continue;
    if (kn->queued) dequeue(kn);
    knotes_.erase({kn->ident, kn->filter});
  }
  // The number is closed or names another (unregistered) file: nothing of
  // ours can be deleted through it, but try in case the file is the same.
  if (rec.ep_events != 0) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  fds_.erase(it);
}

int Kq::register_change(const Kevent& kev) {
  const short filter = kev.filter;
  if (filter != EVFILT_READ && filter != EVFILT_WRITE && filter != EVFILT_USER) return EINVAL;
  const bool isfd = filter != EVFILT_USER;
  int fd = -1;
  struct stat st {};
  if (isfd) {
    if (kev.ident > static_cast<std::uintptr_t>(INT_MAX)) return EBADF;
    fd = static_cast<int>(kev.ident);
    if (::fstat(fd, &st) != 0) {
      purge_fd(fd);  // closed since it was registered
      return EBADF;
    }
    if (auto it = fds_.find(fd);
        it != fds_.end() && (it->second.dev != st.st_dev || it->second.ino != st.st_ino)) {
      purge_fd(fd);  // the ident now names another file: its knotes died with the old one
    }
    if (fd == epfd_ || fd == efd_) return EINVAL;  // a kqueue cannot watch itself
    // NOTE_LOWAT and other fflags are not implemented: refuse, don't ignore.
    if (kev.fflags != 0 && (kev.flags & EV_DELETE) == 0) return EINVAL;
  }

  Knote* kn = find(kev.ident, filter);
  if (kn == nullptr) {
    if ((kev.flags & EV_ADD) == 0) return ENOENT;
    auto owned = std::make_unique<Knote>();
    kn = owned.get();
    kn->ident = kev.ident;
    kn->filter = filter;
    kn->flags = static_cast<unsigned short>(kev.flags & ~kActionFlags);
    kn->udata = kev.udata;
    kn->sdata = kev.data;
    kn->disabled = (kev.flags & EV_DISABLE) != 0;
    if (isfd) {
      kn->sfflags = kev.fflags;
      knotes_.emplace(std::make_pair(kev.ident, filter), std::move(owned));
      if (const int err = attach_fd(kn, fd, st); err != 0) {
        knotes_.erase({kev.ident, filter});
        return err;
      }
    } else {
      kn->sfflags = kev.fflags & NOTE_FFLAGSMASK;
      kn->triggered = (kev.fflags & NOTE_TRIGGER) != 0;
      knotes_.emplace(std::make_pair(kev.ident, filter), std::move(owned));
    }
  } else {
    if ((kev.flags & EV_DELETE) != 0) {
      drop(kn);
      return 0;
    }
    if ((kev.flags & EV_ENABLE) != 0) {
      kn->disabled = false;
    } else if ((kev.flags & EV_DISABLE) != 0) {
      kn->disabled = true;
      if (kn->queued) dequeue(kn);  // stays ACTIVE: EV_ENABLE requeues it
    }
    // Modification: udata and the filter's inputs; never the trigger mode.
    kn->udata = kev.udata;
    if (isfd) {
      kn->sfflags = kev.fflags;
      kn->sdata = kev.data;
    } else {
      user_touch(kn, kev);
    }
  }

  // FreeBSD's done_ev_add: run the filter unless disabled; queue if active.
  if (!kn->disabled) {
    switch (filter_event(kn)) {
      case Eval::yes:
        kn->active = true;
        break;
      case Eval::no:
        break;
      case Eval::stale:
        purge_fd(fd);
        return EBADF;
    }
  }
  if (kn->active && !kn->disabled && !kn->queued) enqueue(kn);
  return 0;
}

void Kq::process(const epoll_event* evs, int n) {
  for (int i = 0; i < n; ++i) {
    const std::uint64_t tag = evs[i].data.u64;
    if (tag == kWakeTag) continue;  // only says the queue is non-empty
    const int fd = static_cast<int>(static_cast<std::uint32_t>(tag));
    auto it = fds_.find(fd);
    if (it == fds_.end() || it->second.gen != static_cast<std::uint32_t>(tag >> 32)) continue;
    FdRec& rec = it->second;
    const std::uint32_t ev = evs[i].events;
    const bool rd = rec.rd != nullptr && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    const bool wr = rec.wr != nullptr && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
    if (!rd && !wr) continue;
    const Probe p = probe_fd(fd, rec, rd, wr);
    if (p.stale) {
      purge_fd(fd);
      continue;
    }
    // knote(): the filter decides; a true condition activates the knote.
    if (rd) {
      apply(rec.rd, p.rd_eof, p.rd_data, p.error);
      if (p.rd_ready) activate(rec.rd);
    }
    if (wr) {
      apply(rec.wr, p.wr_eof, p.wr_data, p.error);
      if (p.wr_ready) activate(rec.wr);
    }
  }
}

bool Kq::harvest() {
  epoll_event evs[kEpollBatch];
  for (;;) {
    const int n = ::epoll_wait(epfd_, evs, kEpollBatch, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    process(evs, n);
    if (n < kEpollBatch) return true;
  }
}

int Kq::scan(Kevent* out, int max) {
  if (max <= 0 || queued_ == 0) return 0;
  Knote marker;  // bounds this pass: level knotes requeue behind it
  marker.prev = head_.prev;
  marker.next = &head_;
  head_.prev->next = &marker;
  head_.prev = &marker;

  int n = 0;
  while (n < max) {
    Knote* kn = head_.next;
    if (kn == &marker) break;
    dequeue(kn);
    if (kn->disabled) continue;
    if ((kn->flags & EV_ONESHOT) != 0) {
      // Returned as activated, without re-running the filter, then deleted.
      // A descriptor closed meanwhile has no knotes any more on a real kqueue.
      if (kn->filter != EVFILT_USER) {
        const int fd = static_cast<int>(kn->ident);
        auto it = fds_.find(fd);
        if (it == fds_.end() || probe_fd(fd, it->second, false, false).stale) {
          purge_fd(fd);
          continue;
        }
      }
      out[n++] = deliver(kn);
      drop(kn);
      continue;
    }
    switch (filter_event(kn)) {
      case Eval::stale:
        purge_fd(static_cast<int>(kn->ident));
        continue;
      case Eval::no:
        kn->active = false;
        continue;
      case Eval::yes:
        break;
    }
    out[n++] = deliver(kn);
    if ((kn->flags & (EV_CLEAR | EV_DISPATCH)) != 0) {
      if ((kn->flags & EV_DISPATCH) != 0) kn->disabled = true;
      kn->active = false;
    } else {
      enqueue(kn);  // level: behind the marker, seen again next call
    }
  }
  marker.prev->next = marker.next;
  marker.next->prev = marker.prev;
  return n;
}

// The eventfd is always readable: with EPOLLIN it is ready in this epoll (and
// wakes its waiters), with no interest it is not. EPOLL_CTL_MOD re-checks
// readiness for this epoll only, so other kqueues are not disturbed.
int set_wake_interest(int epfd, int efd, bool readable) {
  epoll_event e{};
  e.events = readable ? static_cast<std::uint32_t>(EPOLLIN) : 0u;
  e.data.u64 = kWakeTag;
  return ::epoll_ctl(epfd, EPOLL_CTL_MOD, efd, &e);
}

void Kq::sync_wake() {
  const bool want = queued_ > 0;
  if (want == wake_set_) return;
  // Fails only if the user closed the kqueue under us: the next kevent()
  // finds out by itself.
  if (set_wake_interest(epfd_, efd_, want) == 0) wake_set_ = want;
}

// Remaining time to `deadline` (CLOCK_MONOTONIC), or false if it has passed.
bool remaining(const timespec& deadline, timespec* left) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec > deadline.tv_sec ||
      (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
    return false;
  }
  left->tv_sec = deadline.tv_sec - now.tv_sec;
  left->tv_nsec = deadline.tv_nsec - now.tv_nsec;
  if (left->tv_nsec < 0) {
    left->tv_nsec += 1000000000L;
    --left->tv_sec;
  }
  return true;
}

// Blocks until the epoll descriptor has events or `rel` (nullptr: forever)
// passes. The kernel never ends the sleep before `rel`.
int wait_epoll(int epfd, epoll_event* evs, int max, const timespec* rel) {
  const int n = ::epoll_pwait2(epfd, evs, max, rel, nullptr);
  if (n >= 0 || errno != ENOSYS) return n;
  // Kernel before 5.11: ppoll() has nanosecond timeouts too.
  pollfd p{epfd, POLLIN, 0};
  const int r = ::ppoll(&p, 1, rel, nullptr);
  if (r <= 0) return r;
  return ::epoll_wait(epfd, evs, max, 0);
}

int Kq::call(const Kevent* changelist, int nchanges, Kevent* eventlist, int nevents,
             const struct timespec* timeout) {
  std::unique_lock lock(mu_);

  // Changes first, all of them (FreeBSD kern_kevent_fp).
  int room = nevents;
  int nerrors = 0;
  for (int i = 0; i < nchanges; ++i) {
    Kevent kev = changelist[i];  // a copy: eventlist may alias changelist
    if (kev.filter == 0) continue;
    kev.flags &= static_cast<unsigned short>(~EV_SYSFLAGS);
    const int err = register_change(kev);
    if (err != 0 || (kev.flags & EV_RECEIPT) != 0) {
      if (room == 0) {
        sync_wake();
        return err != 0 ? fail(err) : 0;
      }
      kev.flags = EV_ERROR;
      kev.data = err;
      eventlist[nerrors++] = kev;
      --room;
    }
  }
  if (nerrors > 0 || nevents == 0) {
    sync_wake();
    return nerrors;
  }

  // Then events (FreeBSD kqueue_scan).
  timespec deadline{};
  const bool forever = timeout == nullptr;
  bool poll_only = false;
  if (!forever) {
    if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L) {
      sync_wake();
      return fail(EINVAL);
    }
    poll_only = timeout->tv_sec == 0 && timeout->tv_nsec == 0;
    ::clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout->tv_sec;
    deadline.tv_nsec += timeout->tv_nsec;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_nsec -= 1000000000L;
      ++deadline.tv_sec;
    }
  }

  epoll_event evs[kEpollBatch];
  bool need_harvest = true;
  for (;;) {
    if (need_harvest && !harvest()) {
      sync_wake();
      return fail(EBADF);  // the kqueue descriptor was closed under us
    }
    const int n = scan(eventlist, nevents);
    if (n > 0 || poll_only) {
      sync_wake();
      return n;
    }
    timespec left{};
    if (!forever && !remaining(deadline, &left)) {
      sync_wake();
      return 0;
    }
    sync_wake();  // the queue is empty now: the descriptor is not readable
    lock.unlock();
    const int got = wait_epoll(epfd_, evs, kEpollBatch, forever ? nullptr : &left);
    const int err = errno;
    lock.lock();
    if (got < 0) {
      sync_wake();
      if (err == EINTR) return fail(EINTR);
      return fail(err == EINVAL ? EBADF : err);
    }
    process(evs, got);
    need_harvest = got == kEpollBatch;
  }
}

// --- process-wide table

struct Table {
  std::mutex mu;
  std::unordered_map<int, std::shared_ptr<Kq>> kqs;
};

Table& table() {
  static Table* t = new Table;  // never destroyed: kevent() may run during exit
  return *t;
}

std::shared_ptr<Kq> lookup(int fd) {
  Table& t = table();
  std::lock_guard lock(t.mu);
  auto it = t.kqs.find(fd);
  return it == t.kqs.end() ? nullptr : it->second;
}

void forget(int fd, const std::shared_ptr<Kq>& kq) {
  Table& t = table();
  std::lock_guard lock(t.mu);
  if (auto it = t.kqs.find(fd); it != t.kqs.end() && it->second == kq) t.kqs.erase(it);
}

// Is this kqueue still open under its number? The shared eventfd is in the
// epolls of the double's kqueues only, and a number reused by a newer kqueue
// replaced this one in the table when it was made: the MOD fails (EBADF,
// EINVAL, ENOENT) once the user closed the kqueue, whatever the number names
// now. It sets the interest the kqueue already has, under its lock, so it
// changes nothing.
bool Kq::alive() {
  std::lock_guard lock(mu_);
  return set_wake_interest(epfd_, efd_, wake_set_) == 0;
}

// The eventfd every kqueue's epoll holds (see the top of this file): made
// once, always readable, never closed. Made before main() by the initializer
// below, so that it is there before a test counts its open descriptors.
int shared_wake_fd() {
  static const int fd = ::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  return fd;
}
[[maybe_unused]] const int kSharedWakeFdAtStartup = shared_wake_fd();

int kqueue_impl() {
  const int efd = shared_wake_fd();
  if (efd < 0) return fail(EMFILE);
  const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return -1;
  epoll_event e{};
  e.events = 0;  // the queue is empty: not readable
  e.data.u64 = kWakeTag;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &e) != 0) {
    const int err = errno;
    ::close(epfd);
    return fail(err);
  }
  std::shared_ptr<Kq> kq;
  try {
    kq = std::make_shared<Kq>(epfd, efd);
  } catch (...) {
    ::close(epfd);
    throw;
  }
  Table& t = table();
  std::lock_guard lock(t.mu);
  // Forget kqueues closed since the last call. An entry under the new number
  // was necessarily closed (the number was free).
  for (auto it = t.kqs.begin(); it != t.kqs.end();) {
    if (it->first == epfd || !it->second->alive()) {
      it = t.kqs.erase(it);
    } else {
      ++it;
    }
  }
  t.kqs.emplace(epfd, std::move(kq));
  return epfd;
}

}  // namespace

extern "C" int kqueue(void) {
  try {
    return kqueue_impl();
  } catch (const std::bad_alloc&) {
    return fail(ENOMEM);
  } catch (...) {
    return fail(EINVAL);
  }
}

extern "C" int kevent(int kq, const struct kevent* changelist, int nchanges,
                      struct kevent* eventlist, int nevents, const struct timespec* timeout) {
  try {
    std::shared_ptr<Kq> q = lookup(kq);
    if (!q) return fail(EBADF);
    if (nchanges < 0 || nevents < 0) return fail(EINVAL);
    if ((nchanges > 0 && changelist == nullptr) || (nevents > 0 && eventlist == nullptr)) {
      return fail(EFAULT);
    }
    // Changes go through epoll_ctl() on the kqueue's number: make sure it is
    // still ours. Without changes, collecting events finds out by itself.
    if (nchanges > 0 && !q->alive()) {
      forget(kq, q);
      return fail(EBADF);
    }
    const int rc = q->call(changelist, nchanges, eventlist, nevents, timeout);
    if (rc < 0 && errno == EBADF && !q->alive()) {
      forget(kq, q);
      errno = EBADF;
    }
    return rc;
  } catch (const std::bad_alloc&) {
    return fail(ENOMEM);
  } catch (...) {
    return fail(EINVAL);
  }
}
