#include "format.hpp"

#include <cmath>
#include <cstdio>

namespace demo {
namespace {

std::string printf_string(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

std::string format_count(double v) {
  const long long n = std::llround(v);
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string format_si(double v) {
  if (v >= 1e6) return printf_string(v >= 1e7 ? "%.0fM" : "%.2fM", v / 1e6);
  if (v >= 1e3) return printf_string(v >= 1e4 ? "%.0fk" : "%.1fk", v / 1e3);
  return printf_string("%.0f", v);
}

std::string format_millis(double ms) {
  if (ms < 1) return printf_string("%.0fus", ms * 1000);
  if (ms < 10) return printf_string("%.2fms", ms);
  if (ms < 1000) return printf_string("%.1fms", ms);
  return printf_string("%.2fs", ms / 1000);
}

std::string format_kib(double kib) {
  if (kib >= 1024.0 * 1024.0) return printf_string("%.2f GB", kib / (1024.0 * 1024.0));
  if (kib >= 1024.0) return printf_string(kib >= 10 * 1024.0 ? "%.0f MB" : "%.1f MB", kib / 1024.0);
  return printf_string("%.0f KB", kib);
}

std::string format_bytes(double bytes) {
  if (std::abs(bytes) >= 1024.0 * 1024.0) return printf_string("%.1f MB", bytes / (1024.0 * 1024.0));
  if (std::abs(bytes) >= 1024.0) return printf_string(std::abs(bytes) >= 10240.0 ? "%.0f KB" : "%.1f KB", bytes / 1024.0);
  return printf_string("%.0f B", bytes);
}

std::string format_seconds(double s) { return printf_string(s < 10 ? "%.2f" : "%.1f", s); }

std::string format_ratio(double r) {
  if (!std::isfinite(r) || r < 0) return "-";
  if (r >= 100) return printf_string("%.0fx", r);
  if (r >= 10) return printf_string("%.1fx", r);
  return printf_string("%.2fx", r);
}

}  // namespace demo
