#pragma once
// The futures benchmarks' harness, shared by the translation units of their binary:
// futures_bench.cpp (the futures) and blocks_bench.cpp (the allocator alone). They are
// two units because g++ budgets inlining per unit: with the allocator cases in the
// futures' unit, the pool's release was no longer inlined into the pending
// continuation, which then took 6.5-7.2 instead of 5.4 ns (bench/analysis.md, ninth round).

#include "alloc_counter.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

namespace bench {

// The largest K of the in-flight case. Fixtures reserve their vectors for it up front
// so that peak_bytes measures the futures, not the benchmark's bookkeeping.
constexpr std::size_t kMaxInFlight = 65536;

// Every contender's operation is inlined into the timed loop. Left to the compiler, the
// small ones (malloc+free, a direct call, std::promise) were inlined and the larger ones
// (asyncstate's, boost's) were called, which charged a call frame -- six saved registers
// and a return -- to those contenders alone: 1.5 ns of the 8.8 ns of a pending
// asyncstate continuation on the machine of docs/benchmarks.md. The recorded numbers are
// g++'s; clang wants the attribute elsewhere on a mutable lambda, so there it is left out.
#if defined(__GNUC__) && !defined(__clang__)
#define INLINED_OP __attribute__((always_inline))
#else
#define INLINED_OP
#endif

// The order in which k outstanding requests complete: the order of creation, or
// (kShuffled) the order a remote backend answers in, a fixed shuffle of 0..k-1 drawn once
// up front, the same in every run and for every contender. Out-of-order completion
// scatters the blocks a heap allocator links into its free lists.
template <bool kShuffled>
class Completions {
 public:
  explicit Completions(std::int64_t k) : count_(static_cast<std::size_t>(k)) {
    if constexpr (kShuffled) {
      order_.resize(count_);
      std::iota(order_.begin(), order_.end(), 0U);
      std::shuffle(order_.begin(), order_.end(), std::mt19937(20261203));
    }
  }

  // Calls fn(j) for every request j, in completion order.
  template <class Fn>
  INLINED_OP void forEach(Fn&& fn) const {
    if constexpr (kShuffled) {
      for (const std::uint32_t j : order_) fn(std::size_t{j});
    } else {
      // A local bound: the member would be loaded again after every store fn makes.
      const std::size_t count = count_;
      for (std::size_t j = 0; j < count; ++j) fn(j);
    }
  }

 private:
  std::size_t count_;
  std::vector<std::uint32_t> order_;
};

// Times `op` in the benchmark loop, then counts its allocations in an untimed pass on
// a fresh fixture: `warm` operations to reach steady state, then `counted` ones.
template <class Fixture, class Op>
void measure(benchmark::State& state, Op op, std::int64_t items = 1) {
  {
    Fixture fx;
    fx.run([&] {
      // Untimed: the first operation grows what the fixture keeps (the pool's slabs, the
      // vectors). google-benchmark calls this function once per trial, a fresh fixture
      // each time, and a trial as short as --benchmark_min_time=0.05 would otherwise
      // charge that growth to the steady state: 65 536 pooled futures in flight took
      // 12.2 instead of 10.1 ns each (bench/analysis.md, tenth round).
      op(fx);
      for (auto _ : state) op(fx);
    });
    benchmark::DoNotOptimize(fx.sink);
  }
  const std::int64_t warm = items >= 1024 ? 1 : 64;
  const std::int64_t counted = items >= 1024 ? 2 : 1024;
  Fixture fx;
  bench::alloc::Probe probe;
  fx.run([&] {
    for (std::int64_t i = 0; i < warm; ++i) op(fx);
    probe.resetAllocations();
    for (std::int64_t i = 0; i < counted; ++i) op(fx);
  });
  // Read before touching state.counters, which allocates under the probe.
  const auto allocations = static_cast<double>(probe.allocations());
  const auto peakBytes = static_cast<double>(probe.peakBytes());
  state.counters["items"] = static_cast<double>(items);
  state.counters["allocs_per_item"] = allocations / static_cast<double>(counted * items);
  state.counters["peak_bytes"] = peakBytes;
}

// The fixture of the contenders that need no controller.
struct Plain {
  template <class Fn>
  void run(Fn&& fn) {
    fn();
  }
  std::int64_t sink = 0;
  std::exception_ptr error = std::make_exception_ptr(std::runtime_error("injected"));
};

// Registers the allocator-alone cases (blocks_bench.cpp).
void registerBlockBenchmarks();

}  // namespace bench
