#pragma once
// Shared by the benchmark binaries: the size the floors allocate, and a main() that
// understands --smoke (a handful of iterations of every benchmark, for ctest).

#include <asyncstate/detail/future_core.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace bench {

// What a pending StateFuture<int> allocates (its core's pool block): the floors allocate
// exactly this.
inline constexpr std::size_t kFutureStateSize = asyncstate::detail::Core<int>::kBlockBytes;

// Registers a CPU-bound benchmark that also reports the fastest repetition ("min"), the
// statistic bench/report.py compares: on a shared machine interference only ever adds
// time, so the minimum is the least disturbed measurement (folly's benchmark does the same).
template <class Fn>
benchmark::internal::Benchmark* registerTimed(const char* name, Fn fn) {
  return benchmark::RegisterBenchmark(name, fn)->ComputeStatistics(
      "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
}

// True under --smoke: benchmarks shrink their untimed passes and sweeps too.
inline bool& smoke() {
  static bool value = false;
  return value;
}

inline int runBenchmarks(int argc, char** argv) {
  std::vector<char*> args;
  std::string minTime = "--benchmark_min_time=0.000001";
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--smoke") == 0) {
      smoke() = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  if (smoke()) args.push_back(minTime.data());
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  benchmark::AddCustomContext("future_state_bytes", std::to_string(kFutureStateSize));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench
