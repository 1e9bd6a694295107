// The load generator: N evq client connections in one process, open-loop.
//
// Each client sends a 64 B request at its intended times t0 + k * think
// (a repeating evq timer, Registry::add_timer with a period, so the schedule
// never drifts) and reads the 64 B reply. A client has at most one request in
// flight, like an HTTP/1.1 browser connection: when a reply comes late, the
// requests whose time has passed go out as soon as it arrives, and every
// latency counts from the request's intended send time, not from when it
// could be sent (no coordinated omission). The t0 of the N clients are spread
// evenly over one think time, so the offered load is a steady N / think.
//
// Protocol with the orchestrator: arguments on the command line; on stdout
//   connected <ok> <failed> <millis> [<first error>]
//   result <key>=<value> ...          after the load phase (see client.cpp)
//   error <message>
// and on stdin "go\n" starts the load phase; end of file ends the process.
#pragma once

#include <chrono>

namespace demo {

struct ClientConfig {
  int port = 0;
  int connections = 0;
  int sources = 1;  // connect from 127.0.0.1 .. 127.0.0.<sources> (see client_socket.hpp)
  std::chrono::milliseconds think{50};
  std::chrono::nanoseconds duration{};
};

inline constexpr int message_size = 64;

int run_client(const ClientConfig& config);

}  // namespace demo
