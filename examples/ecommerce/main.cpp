// The README's demo: runs the e-commerce job in its sync ("before") and async
// ("after", continuation and coroutine forms) versions over the same seeded events on
// the memory backend, checks that all produce identical output, and reports
// throughput, record latency and in-flight records.

#include "async_job.hpp"
#include "events.hpp"
#include "sync_job.hpp"

#include <asyncstate/asyncstate.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Result {
  std::vector<ecommerce::WindowCount> output;
  asyncstate::RunStats stats;
};

template <class Function>
Result runJob(const char* label, const std::vector<ecommerce::Event>& events, asyncstate::ControllerOptions options) {
  asyncstate::MemoryBackend backend;
  Function function;
  asyncstate::RunnerOptions runnerOptions;
  runnerOptions.controller = options;
  runnerOptions.controller.log = nullptr;
  runnerOptions.watermarkEvery = 1000;
  runnerOptions.maxOutOfOrderness = 1000;
  runnerOptions.progressEvery = std::max<std::uint64_t>(events.size() / 4, 1);
  runnerOptions.onProgress = [label, total = events.size()](const asyncstate::RunStats& s) {
    std::fprintf(stderr, "  [%s] %llu/%zu records, %.0f records/s, %zu in flight\n", label,
                 static_cast<unsigned long long>(s.records), total, s.recordsPerSecond, s.controller.inFlightRecords);
  };
  asyncstate::EmbeddedRunner<std::string, ecommerce::Event, ecommerce::WindowCount> runner(
      backend, function, [](const ecommerce::Event& e) { return e.userId; },
      [](const ecommerce::Event& e) { return e.timestamp; }, runnerOptions);
  asyncstate::VectorSource<ecommerce::Event> source(events);
  asyncstate::VectorCollector<ecommerce::WindowCount> sink;
  Result result;
  result.stats = runner.run(source, sink);
  result.output = std::move(sink.values);
  std::sort(result.output.begin(), result.output.end());
  return result;
}

void report(const char* label, const Result& r) {
  std::printf("%-22s %9.0f records/s  latency p50 %7.0f us  p99 %8.0f us  peak in-flight %5zu  batches %6llu  outputs %zu\n",
              label, r.stats.recordsPerSecond, r.stats.latencyP50Micros, r.stats.latencyP99Micros,
              r.stats.controller.peakInFlightRecords, static_cast<unsigned long long>(r.stats.controller.batchesSent),
              r.output.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t eventCount = 200000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
      eventCount = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: %s [--events N]\n", argv[0]);
      return 2;
    }
  }
  std::printf("asyncstate %s demo: e-commerce activity per user in %lld s tumbling windows, enriched from a profile "
              "MapState; %zu seeded events, memory backend\n",
              ASYNCSTATE_VERSION_STRING, static_cast<long long>(ecommerce::kWindowMillis / 1000), eventCount);
  const auto events = ecommerce::generateEvents(eventCount);
  asyncstate::ControllerOptions options;  // Flink's defaults: batch 1000, 6000 in flight, 1 s buffer timeout
  try {
    const Result sync = runJob<ecommerce::SyncActivityFunction>("sync (before)", events, options);
    const Result async = runJob<ecommerce::AsyncActivityFunction>("async (after)", events, options);
    const Result coroutine = runJob<ecommerce::CoroutineActivityFunction>("async coroutines", events, options);
    report("sync (before)", sync);
    report("async (after)", async);
    report("async coroutines", coroutine);
    const bool same = sync.output == async.output && sync.output == coroutine.output;
    std::printf("output: %zu window rows; sync, async and coroutine outputs are %s\n", sync.output.size(),
                same ? "IDENTICAL" : "DIFFERENT");
    return same ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    return 1;
  }
}
