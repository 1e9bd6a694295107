#include <string>

#include "evq/result.hpp"

namespace evq {

namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "evq"; }

  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::already_registered: return "source is already registered";
      case errc::not_registered: return "source is not registered";
      case errc::zero_capacity: return "Events has zero capacity";
      case errc::invalid_address: return "invalid socket address";
      case errc::timer_not_armed: return "timer already fired or was cancelled";
      case errc::invalid_timer: return "not a timer of this registry";
      case errc::backend_unavailable: return "backend not available in this build or on this system";
      case errc::trigger_unsupported: return "trigger not supported for this source on this backend";
      case errc::invalid_source: return "source has no open descriptor";
      case errc::invalid_argument: return "invalid argument";
    }
    return "unknown evq error";
  }

  // Each evq error also compares equal to the closest portable condition.
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<errc>(code)) {
      case errc::already_registered: return std::errc::file_exists;
      case errc::not_registered:
      case errc::timer_not_armed: return std::errc::no_such_file_or_directory;
      case errc::zero_capacity:
      case errc::invalid_address:
      case errc::invalid_timer:
      case errc::invalid_argument: return std::errc::invalid_argument;
      case errc::backend_unavailable:
      case errc::trigger_unsupported: return std::errc::operation_not_supported;
      case errc::invalid_source: return std::errc::bad_file_descriptor;
    }
    return {code, *this};
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace evq
