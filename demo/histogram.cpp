#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace demo {

int Histogram::index_of(std::uint64_t v) noexcept {
  if (v < 2 * sub_count) return static_cast<int>(v);
  // v >> shift lands in [sub_count, 2 * sub_count): keep the top sub_bits + 1 bits.
  const int shift = std::bit_width(v) - (sub_bits + 1);
  return (shift + 1) * sub_count + static_cast<int>(v >> shift) - sub_count;
}

std::uint64_t Histogram::midpoint_of(int index) noexcept {
  if (index < 2 * sub_count) return static_cast<std::uint64_t>(index);
  const int shift = index / sub_count - 1;
  const std::uint64_t low = static_cast<std::uint64_t>(index % sub_count + sub_count) << shift;
  return low + ((std::uint64_t{1} << shift) >> 1);
}

void Histogram::record(std::uint64_t value_ns) noexcept {
  ++counts_[static_cast<std::size_t>(index_of(value_ns))];
  ++count_;
  if (value_ns > max_) max_ = value_ns;
}

std::uint64_t Histogram::quantile(double q) const noexcept {
  if (count_ == 0) return 0;
  // The rank of the q-quantile, 1-based: at least one value.
  const auto rank = static_cast<std::uint64_t>(std::max(1.0, std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (int i = 0; i < bucket_count; ++i) {
    seen += counts_[static_cast<std::size_t>(i)];
    if (seen >= rank) {
      const std::uint64_t mid = midpoint_of(i);
      return mid < max_ ? mid : max_;
    }
  }
  return max_;
}

}  // namespace demo
