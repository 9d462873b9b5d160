#pragma once
// A fixed-size latency histogram: log-linear buckets (8 per power of two) from 1 µs,
// so recording is O(1), memory is constant, and percentiles are within ~9%.

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdint>

namespace asyncstate {

template <class = void>
class BasicLatencyHistogram {
 public:
  static constexpr int kSubBuckets = 8;
  static constexpr int kOctaves = 40;
  static constexpr std::size_t kBuckets = std::size_t{kOctaves} * kSubBuckets;

  void add(std::chrono::nanoseconds latency) {
    const auto micros = static_cast<std::uint64_t>(std::max<std::int64_t>(latency.count() / 1000, 0));
    ++buckets_[indexOf(micros)];
    ++count_;
    sum_ += micros;
    if (micros > max_) max_ = micros;
  }

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t maxMicros() const noexcept { return max_; }
  std::uint64_t sumMicros() const noexcept { return sum_; }

  // How many samples were below 2^exponent microseconds: exact, because powers of two
  // are bucket edges (what a Prometheus export with power-of-two bounds needs).
  std::uint64_t countBelowPowerOfTwoMicros(int exponent) const {
    const std::uint64_t limit = std::uint64_t{1} << std::clamp(exponent, 0, 63);
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < buckets_.size() && upperBound(i) < limit; ++i) below += buckets_[i];
    return below;
  }

  // Upper bound of the bucket holding the q-quantile, in microseconds (q in [0, 1]).
  double percentileMicros(double q) const {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min<double>(static_cast<double>(upperBound(i)), static_cast<double>(max_));
    }
    return static_cast<double>(max_);
  }

 private:
  static std::size_t indexOf(std::uint64_t micros) {
    if (micros < kSubBuckets) return micros;
    const int octave = static_cast<int>(std::bit_width(micros)) - 1;  // >= 3
    const auto sub = static_cast<std::size_t>((micros >> (octave - 3)) & (kSubBuckets - 1));
    const std::size_t index = static_cast<std::size_t>(octave - 2) * kSubBuckets + sub;
    return std::min(index, kBuckets - 1);
  }
  static std::uint64_t upperBound(std::size_t index) {
    if (index < kSubBuckets) return index;
    const std::size_t octave = index / kSubBuckets + 2;
    const std::size_t sub = index % kSubBuckets;
    return ((std::uint64_t{kSubBuckets} + sub + 1) << (octave - 3)) - 1;
  }

  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
};
using LatencyHistogram = BasicLatencyHistogram<>;  // a template so its members compile only where used (include cost)

}  // namespace asyncstate
