// The ways of handling I/O that the demo compares, by name.
//
// A new model: a server in server_<name>.cpp, a case in run_server
// (servers.cpp) and an entry in models.cpp; the client, the measurements, the
// table and the report need no change.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace demo {

enum class ModelId {
  thread_per_connection,  // blocking sockets, one thread per connection
  thread_pool,            // blocking sockets, a fixed pool of threads
  busy_poll,              // non-blocking sockets read in a loop on one thread
  evq_default,            // evq readiness (Poll) on the platform's best backend
  evq_poll,               // evq readiness on poll(2): the O(n) contrast
  evq_ring,               // evq completion (Ring): one recv in flight per connection
};

struct ModelInfo {
  ModelId id;
  std::string_view name;         // for --models and the server's command line
  std::string_view description;  // for --help
  bool built;                    // false: listed, never measured
};

const std::vector<ModelInfo>& all_models();
const ModelInfo& model_info(ModelId id);
// The models run when --models is not given: every built one.
std::vector<ModelId> default_models();
std::optional<ModelId> model_from_name(std::string_view name);
// "a, b, c": for error messages.
std::string model_names();
// The row label in the table and the report, e.g. "evq (epoll)": evq's label
// names the backend Poll::create() actually picks on this machine.
std::string model_label(ModelId id);

}  // namespace demo
