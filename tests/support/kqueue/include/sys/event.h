/*
 * <sys/event.h> of evq's kqueue test double (Linux only, tests only).
 *
 * A FreeBSD-compatible subset of the kqueue API, implemented over epoll in
 * ../kqueue_double.cpp, so that evq's kqueue backend (written against
 * <sys/event.h> and POSIX only) builds and runs on Linux. The reference is the
 * FreeBSD kqueue(2) manual (Debian: freebsd-manpages, `man 2freebsd kqueue`);
 * where the manual is silent, the double follows what the BSD kernels do.
 *
 * Definitions
 *   - Constant values are FreeBSD's (12 and later). macOS shares them all except
 *     EVFILT_USER (-10 on macOS, -11 on FreeBSD): code must use the names.
 *   - struct kevent has FreeBSD's field types (data is int64_t, udata void *)
 *     but deliberately NO ext[4] member: FreeBSD 12+ has it, macOS does not, so
 *     a backend that compiles against this header uses only fields both have.
 *     Initialize with EV_SET() or value-initialization, never field by field
 *     (on FreeBSD ext[] would then be left uninitialized).
 *   - Only the filters and flags the double implements are defined, so using
 *     anything else fails at compile time rather than at run time.
 *
 * Reproduced (FreeBSD semantics)
 *   - kqueue() returns a descriptor that close() releases and poll()/epoll
 *     report readable while events are pending (approximately, see below).
 *   - kevent(): all changes are applied before events are collected; changes
 *     with filter 0 are skipped; EV_SYSFLAGS bits in a change are ignored.
 *     nevents == 0 returns at once whatever the timeout. timeout NULL waits
 *     forever, {0,0} polls, otherwise waits at most that long and never
 *     returns early (0 on expiry). An invalid timespec -> EINVAL (with the
 *     changes applied). A signal while waiting -> -1/EINTR, changes applied.
 *     Several threads may call kevent() on one kqueue at once; a change made by
 *     one thread that makes an event pending wakes a thread blocked in kevent().
 *   - Change errors: with room left in eventlist, an entry with flags ==
 *     EV_ERROR and data = errno (the rest of the change copied) and processing
 *     continues; without room, kevent() returns -1/errno and the remaining
 *     changes are not processed. If any such entry was written, kevent()
 *     returns their number and does not collect events.
 *   - EV_RECEIPT: every change so flagged yields an EV_ERROR entry (data 0 on
 *     success) and the call does not drain pending events. As on FreeBSD, when
 *     a receipt finds no room left, processing stops and kevent() returns 0.
 *   - The same array may be passed as changelist and eventlist.
 *   - EV_ADD creates a knote, enabled unless EV_DISABLE. EV_ADD on an existing
 *     (ident, filter) modifies it: udata, fflags and data are replaced, the
 *     filter is re-evaluated (an event is reported again if its condition
 *     holds), but EV_ONESHOT / EV_CLEAR / EV_DISPATCH keep the values given at
 *     creation (as in FreeBSD, macOS, NetBSD, OpenBSD): to change them,
 *     EV_DELETE and EV_ADD again.
 *   - EV_DELETE / EV_ENABLE / EV_DISABLE / a modification of a missing knote ->
 *     ENOENT. An fd filter on a descriptor that is not open -> EBADF. An unknown
 *     filter -> EINVAL.
 *   - EV_ENABLE re-evaluates the filter (a still-true condition is reported
 *     again, also with EV_CLEAR); EV_DISABLE stops reporting, the condition
 *     keeps being tracked.
 *   - Level (no EV_CLEAR): the filter is re-run at each retrieval; the event
 *     is returned on every kevent() call while the condition holds and dropped
 *     silently once it does not.
 *   - EV_CLEAR: after retrieval the event is reported again only after new
 *     activity on the descriptor (new data, freed buffer space, EOF, error),
 *     even if the condition still holds.
 *   - EV_ONESHOT: returned once, then deleted (a later EV_DELETE -> ENOENT).
 *     As on FreeBSD it is returned with the data of its activation, without
 *     re-running the filter.
 *   - EV_DISPATCH: disabled after retrieval; EV_ENABLE re-arms.
 *   - Returned flags are the flags the knote was created with, minus
 *     EV_ADD/EV_DELETE/EV_ENABLE/EV_DISABLE, plus EV_EOF when set by the
 *     filter. udata is returned unchanged, as last set: EVERY change to an
 *     existing knote other than EV_DELETE (EV_ADD, EV_ENABLE, EV_DISABLE, a
 *     NOTE_TRIGGER) stores the change's udata, so such changes must carry the
 *     udata again (FreeBSD, macOS; FreeBSD's EV_KEEPUDATA is not provided).
 *   - EVFILT_READ: sockets: data = bytes available to read (FIONREAD); listening
 *     TCP sockets: data = completed connections waiting in the accept queue;
 *     read side shut down (peer's FIN or shutdown(SHUT_RD)) -> EV_EOF, possibly
 *     with data still pending; pipes and FIFOs: data = bytes in the pipe, EV_EOF
 *     when no writer is left.
 *   - EVFILT_WRITE: data = free space in the send buffer / pipe (approximate,
 *     see below); EV_EOF when the write side is closed: reader of a pipe gone,
 *     TCP socket shut down for writing (shutdown(SHUT_WR), reset, closed), any
 *     socket shut down in both directions. Unconnected TCP sockets and TCP
 *     listeners are not writable, as on FreeBSD.
 *   - A socket with a pending error reports both filters ready; with EV_EOF,
 *     fflags is nonzero (see below for its value).
 *   - EVFILT_USER: EV_ADD (NOTE_TRIGGER in the same change triggers at once);
 *     NOTE_TRIGGER triggers; NOTE_FFNOP / NOTE_FFAND / NOTE_FFOR / NOTE_FFCOPY
 *     act on the low 24 bits of the stored fflags, returned in fflags; data
 *     returns the data of the last change. With EV_CLEAR the trigger resets
 *     when the event is retrieved; without it the event stays triggered. As
 *     in FreeBSD's filt_usertouch, a change carrying EV_CLEAR resets the
 *     trigger AFTER applying NOTE_TRIGGER: a NOTE_TRIGGER change must not carry
 *     EV_CLEAR (on macOS it would trigger: the double follows FreeBSD, the
 *     stricter of the two).
 *   - kevent() on a descriptor that is not a kqueue -> EBADF.
 *
 * Not reproduced / approximated
 *   - Filters other than EVFILT_READ, EVFILT_WRITE, EVFILT_USER (TIMER, PROC,
 *     PROCDESC, SIGNAL, VNODE, AIO, LIO, FS, EMPTY, ...) are not defined here and
 *     are refused with EINVAL. NOTE_LOWAT and any other fflags on READ/WRITE are
 *     refused with EINVAL; SO_RCVLOWAT/SO_SNDLOWAT are not honoured. EV_FLAG1,
 *     EV_DROP, EV_FORCEONESHOT, EV_KEEPUDATA are not provided.
 *   - Regular files and directories cannot be registered (epoll refuses them):
 *     EV_ADD -> EINVAL, where FreeBSD supports EVFILT_READ on vnodes.
 *   - close() of a registered descriptor does not remove its knotes at once:
 *     they are dropped, never reported, when the double next looks at that
 *     ident: when one of its events is collected (the descriptor is re-checked
 *     with fstat()), or when a change names the ident (a closed ident -> EBADF,
 *     an ident now naming another file -> the old knotes are gone, EV_ADD
 *     creates fresh ones, EV_DELETE -> ENOENT). The file's identity is its
 *     (st_dev, st_ino): files sharing an inode (eventfd, epoll, other
 *     anon-inode descriptors) cannot be told apart. If the closed descriptor's
 *     file stays open elsewhere (dup, fork), its epoll registration lingers
 *     until that file is closed; its events are ignored.
 *   - Socket error in fflags: Linux has no way to read a socket's error without
 *     clearing it (getsockopt(SO_ERROR) clears it), and the application's own
 *     SO_ERROR read must still see it, so the double never reads it: with
 *     EV_EOF and a pending error (POLLERR) fflags = EIO as a placeholder, where
 *     FreeBSD gives the error itself (e.g. ECONNREFUSED). Use fflags as a
 *     flag, and getsockopt(SO_ERROR) for the value.
 *   - Write-side EOF after the local shutdown(SHUT_WR) is detected for TCP only
 *     (through TCP_INFO); for other sockets only when both directions are shut.
 *   - data: for EVFILT_WRITE on sockets it is SO_SNDBUF minus SIOCOUTQ (Linux
 *     doubles SO_SNDBUF and counts overhead: approximate); for listening
 *     sockets other than TCP it is 1 when a connection is pending; for datagram
 *     sockets it is the size of the next datagram (Linux FIONREAD), where
 *     FreeBSD gives all the bytes queued.
 *   - EV_CLEAR granularity: one epoll registration (EPOLLET) per descriptor
 *     carries both filters' interest, so on a descriptor with both filters
 *     registered an edge in one direction also re-reports the other filter's
 *     EV_CLEAR knote if its condition holds (e.g. writable again when data
 *     arrives), and adding or deleting one filter re-reports the other's
 *     condition once. Such extra events are possible; a missed one is not.
 *   - The kqueue descriptor may also poll readable spuriously (a level event
 *     whose condition has ended, or an epoll edge that turns out to report
 *     nothing); kqueue has the same looseness for level events.
 *   - kqueue is not inherited across fork() on FreeBSD; the double's descriptor
 *     is close-on-exec, and using it in a forked child is unsupported.
 *   - A kqueue closed with close() is forgotten lazily: by the next kqueue()
 *     call, or by the next kevent() on its number (-> EBADF, also when the
 *     number names a new file; a kevent() with no changes and nevents == 0
 *     does nothing and returns 0 instead). Only the double's memory lingers:
 *     the kqueue descriptor is the only one a kqueue holds, so close() frees
 *     every descriptor at once. The double keeps one eventfd for the whole
 *     process, opened before main() and never closed.
 *   - The 24-hour timeout cap of FreeBSD is not applied.
 */
#ifndef EVQ_KQUEUE_DOUBLE_SYS_EVENT_H
#define EVQ_KQUEUE_DOUBLE_SYS_EVENT_H

/* A system header on the real systems: the function kevent() hiding the
 * struct's name would otherwise trip -Wshadow in C++ code that includes it. */
#if defined(__GNUC__)
#pragma GCC system_header
#endif

#include <stdint.h>
#include <sys/types.h>

/* Filters (FreeBSD values). */
#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_USER (-11)

/* Actions and flags. */
#define EV_ADD 0x0001      /* add the event to the kqueue (implies enable) */
#define EV_DELETE 0x0002   /* delete the event from the kqueue */
#define EV_ENABLE 0x0004   /* enable the event */
#define EV_DISABLE 0x0008  /* disable the event (not reported) */
#define EV_ONESHOT 0x0010  /* report only once, then delete */
#define EV_CLEAR 0x0020    /* reset state after the event is retrieved */
#define EV_RECEIPT 0x0040  /* force EV_ERROR on success, data == 0 */
#define EV_DISPATCH 0x0080 /* disable the event after reporting it */
#define EV_SYSFLAGS 0xF000 /* reserved by the system */
#define EV_ERROR 0x4000    /* error, data contains errno */
#define EV_EOF 0x8000      /* EOF detected */

/* EVFILT_USER fflags. */
#define NOTE_FFNOP 0x00000000      /* ignore the input fflags */
#define NOTE_FFAND 0x40000000      /* AND fflags */
#define NOTE_FFOR 0x80000000       /* OR fflags */
#define NOTE_FFCOPY 0xc0000000     /* copy fflags */
#define NOTE_FFCTRLMASK 0xc0000000 /* mask for the operations */
#define NOTE_FFLAGSMASK 0x00ffffff /* the user-defined flags */
#define NOTE_TRIGGER 0x01000000    /* trigger the event */

struct kevent {
  uintptr_t ident;       /* identifier for this event */
  short filter;          /* filter for event */
  unsigned short flags;  /* action flags for kqueue */
  unsigned int fflags;   /* filter flag value */
  int64_t data;          /* filter data value */
  void *udata;           /* opaque user data identifier */
};

/* Evaluates kevp once; every field of *kevp is assigned. */
#define EV_SET(kevp, a, b, c, d, e, f)       \
  do {                                       \
    struct kevent *ev_set_kevp_ = (kevp);    \
    ev_set_kevp_->ident = (a);               \
    ev_set_kevp_->filter = (b);              \
    ev_set_kevp_->flags = (c);               \
    ev_set_kevp_->fflags = (d);              \
    ev_set_kevp_->data = (e);                \
    ev_set_kevp_->udata = (f);               \
  } while (0)

#ifdef __cplusplus
extern "C" {
#endif

struct timespec;

int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents,
           const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* EVQ_KQUEUE_DOUBLE_SYS_EVENT_H */
