// What every model's server shares: the listening address, how it tells the
// orchestrator it is ready, how it reports its own resource use on request,
// and how it fails.
//
// The server process speaks to the orchestrator on its stdout, one line each:
//   ready <port> <backend>                     once it listens
//   snap <user_us> <sys_us> <vcsw> <ivcsw> <accepted>   on each SIGUSR1
//   error <message>                            then it exits with code 3
// A signal is the only way in, so no model pays for a control thread or a
// control descriptor in its loop: the handler runs getrusage(RUSAGE_SELF),
// which covers every thread of the process.
//
// One known limit: ThreadSanitizer defers a signal until the receiving thread
// passes one of its interceptors, and it does not treat accept4() as a
// blocking call, so in a TSan build the blocking models never answer a
// snapshot ("the server did not answer"). evq and busy-poll work there; the
// smoke test uses those two.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>
#include <system_error>

namespace demo::server {

// Connections accepted so far. Models add to it; the snapshot reports it, so
// the orchestrator knows when all N are in.
extern std::atomic<std::uint64_t> accepted;

// The address servers listen on: 127.0.0.1, port chosen by the kernel, so
// nothing outside this machine can reach them.
inline constexpr std::uint8_t listen_octets[4] = {127, 0, 0, 1};

// SIGUSR1 -> one "snap" line. SA_RESTART, so blocking calls in other threads
// carry on. Call before announce_ready.
void install_snapshot_handler();
void announce_ready(std::uint16_t port, std::string_view backend);
[[noreturn]] void fail(std::string_view what, std::error_code ec);
[[noreturn]] void fail(std::string_view what, int errno_value);

// A blocking (or, with non_blocking, non-blocking) POSIX listener on the
// listen address; its port through *port. Fails the process on error.
int posix_listener(bool non_blocking, std::uint16_t* port);
// TCP_NODELAY on a POSIX socket: replies are small and must not wait for Nagle.
void set_nodelay(int fd);

}  // namespace demo::server
