#pragma once
// Counts heap allocations made through operator new on the calling thread, and the
// peak of live heap bytes, while a Probe is alive. The replacement operator new is in
// alloc_counter.cpp; outside a Probe it costs one thread-local test over malloc, so
// timed loops run (almost) uninstrumented and the counting happens in a separate pass.

#include <cstddef>
#include <cstdint>

namespace bench::alloc {

struct Counters {
  bool active = false;
  std::uint64_t allocations = 0;
  std::int64_t liveBytes = 0;  // relative to the Probe's start; can dip below zero
  std::int64_t peakBytes = 0;
};

Counters& counters() noexcept;

class Probe {
 public:
  Probe() noexcept : saved_(counters()) { counters() = Counters{true, 0, 0, 0}; }
  ~Probe() { counters() = saved_; }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  // Starts a new allocation count (after warm-up), keeping the live and peak bytes.
  void resetAllocations() noexcept { counters().allocations = 0; }
  std::uint64_t allocations() const noexcept { return counters().allocations; }
  std::int64_t peakBytes() const noexcept { return counters().peakBytes; }

 private:
  Counters saved_;
};

}  // namespace bench::alloc
