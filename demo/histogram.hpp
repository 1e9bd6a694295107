// A latency histogram: log-linear buckets (HdrHistogram's layout), about 1.6 %
// relative precision from 1 ns to hours, fixed memory, O(1) record.
#pragma once

#include <array>
#include <cstdint>

namespace demo {

class Histogram {
 public:
  void record(std::uint64_t value_ns) noexcept;
  // The smallest recorded value v such that `q` of all values are <= v
  // (reported as its bucket's midpoint). 0 when empty. q in [0, 1].
  std::uint64_t quantile(double q) const noexcept;
  std::uint64_t max() const noexcept { return max_; }
  std::uint64_t count() const noexcept { return count_; }

 private:
  // 32 linear sub-buckets per power of two: values below 64 are exact.
  static constexpr int sub_bits = 5;
  static constexpr int sub_count = 1 << sub_bits;
  static constexpr int bucket_count = (64 - sub_bits) * sub_count + 2 * sub_count;

  static int index_of(std::uint64_t v) noexcept;
  static std::uint64_t midpoint_of(int index) noexcept;

  std::array<std::uint64_t, bucket_count> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace demo
