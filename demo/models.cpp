#include "models.hpp"

#include <evq/evq.hpp>

namespace demo {

const std::vector<ModelInfo>& all_models() {
  static const std::vector<ModelInfo> models = {
      {ModelId::thread_per_connection, "thread-per-conn", "blocking, one thread per connection", true},
      {ModelId::thread_pool, "thread-pool", "blocking, fixed thread pool (--pool)", true},
      {ModelId::busy_poll, "busy-poll", "non-blocking, one thread reading every socket in a loop", true},
      {ModelId::evq_default, "evq", "evq readiness, default backend (epoll on Linux)", true},
      {ModelId::evq_poll, "evq-poll", "evq readiness on poll(2)", true},
      {ModelId::evq_ring, "evq-ring", "evq completion (Ring): native io_uring/IOCP, else emulated", true},
  };
  return models;
}

const ModelInfo& model_info(ModelId id) {
  for (const ModelInfo& m : all_models())
    if (m.id == id) return m;
  return all_models().front();  // unreachable: every id is listed
}

std::vector<ModelId> default_models() {
  std::vector<ModelId> ids;
  for (const ModelInfo& m : all_models())
    if (m.built) ids.push_back(m.id);
  return ids;
}

std::optional<ModelId> model_from_name(std::string_view name) {
  for (const ModelInfo& m : all_models())
    if (m.name == name) return m.id;
  return std::nullopt;
}

std::string model_names() {
  std::string s;
  for (const ModelInfo& m : all_models()) {
    if (!s.empty()) s += ", ";
    s += m.name;
  }
  return s;
}

std::string model_label(ModelId id) {
  switch (id) {
    case ModelId::thread_per_connection: return "thread/conn";
    case ModelId::thread_pool: return "thread pool";
    case ModelId::busy_poll: return "busy poll";
    case ModelId::evq_default: {
      static const std::string label = [] {
        auto poll = evq::Poll::create();
        return "evq (" + std::string(poll ? evq::to_string(poll->backend()) : "default") + ")";
      }();
      return label;
    }
    case ModelId::evq_poll: return "evq (poll)";
    case ModelId::evq_ring: {
      static const std::string label = [] {
        auto ring = evq::Ring::create();
        if (!ring) return std::string("evq Ring");
        return "evq Ring (" + std::string(evq::to_string(ring->backend())) + (ring->is_native() ? ")" : ", emulated)");
      }();
      return label;
    }
  }
  return "?";
}

}  // namespace demo
