#include "servers.hpp"

#include "server_harness.hpp"

namespace demo {

int run_server(ModelId model, int pool_threads) {
  server::install_snapshot_handler();
  switch (model) {
    case ModelId::thread_per_connection: return run_thread_per_connection_server();
    case ModelId::thread_pool: return run_thread_pool_server(pool_threads);
    case ModelId::busy_poll: return run_busy_poll_server();
    case ModelId::evq_default: return run_evq_server(false);
    case ModelId::evq_poll: return run_evq_server(true);
    case ModelId::evq_ring: return run_evq_ring_server();
  }
  server::fail("this model", std::make_error_code(std::errc::function_not_supported));
}

}  // namespace demo
