// The server of each model. Each runs in its own process (so getrusage and
// /proc figures are its own), echoes every byte it reads, and never returns
// unless it fails; the orchestrator ends it with SIGKILL.
#pragma once

#include "models.hpp"

namespace demo {

// The process's exit code (only on failure: 3 after an "error" line).
int run_server(ModelId model, int pool_threads);

int run_thread_per_connection_server();
int run_thread_pool_server(int threads);
int run_busy_poll_server();
int run_evq_server(bool poll_backend);
int run_evq_ring_server();

}  // namespace demo
