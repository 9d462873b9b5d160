// The README's demo: runs the e-commerce job in its sync ("before") and async
// ("after", continuation and coroutine forms) versions over the same seeded events on
// the memory backend, checks that all produce identical output, and reports
// throughput, record latency and in-flight records.

#include "async_job.hpp"
#include "events.hpp"
#include "sync_job.hpp"

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/latency.hpp>

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

// latency == 0: the embedded memory backend; otherwise the memory backend behind a
// fixed per-batch latency, standing in for remote storage.
template <class Function>
Result runJob(const char* label, const std::vector<ecommerce::Event>& events, asyncstate::ControllerOptions options,
              std::chrono::microseconds latency = std::chrono::microseconds(0)) {
  asyncstate::MemoryBackend memory;
  std::optional<asyncstate::LatencyInjectingBackend> remote;
  if (latency.count() > 0) {
    asyncstate::LatencyOptions latencyOptions;
    latencyOptions.latency = latency;
    remote.emplace(memory, latencyOptions);
  }
  asyncstate::StateBackend& backend = remote ? static_cast<asyncstate::StateBackend&>(*remote) : memory;
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
  std::printf(
      "%-22s %9.0f records/s  latency p50 %7.0f us  p99 %8.0f us  peak in-flight %5zu  batches %6llu  outputs %zu\n",
      label, r.stats.recordsPerSecond, r.stats.latencyP50Micros, r.stats.latencyP99Micros,
      r.stats.controller.peakInFlightRecords, static_cast<unsigned long long>(r.stats.controller.batchesSent),
      r.output.size());
}

bool sameOutput(const Result& a, const Result& b, const Result& c) {
  return a.output == b.output && a.output == c.output;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t eventCount = 200000;
  std::size_t remoteEventCount = 3000;
  long latencyMicros = 1000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
      eventCount = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--remote-events") == 0 && i + 1 < argc) {
      remoteEventCount = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--latency-us") == 0 && i + 1 < argc) {
      latencyMicros = std::strtol(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: %s [--events N] [--remote-events N] [--latency-us US]\n", argv[0]);
      return 2;
    }
  }
  std::printf(
      "asyncstate %s demo: e-commerce activity per user in %lld s tumbling windows, enriched from a profile "
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
    const bool same = sameOutput(sync, async, coroutine);
    std::printf("output: %zu window rows; sync, async and coroutine outputs are %s\n", sync.output.size(),
                same ? "IDENTICAL" : "DIFFERENT");

    bool remoteSame = true;
    if (latencyMicros > 0 && remoteEventCount > 0) {
      std::printf("\nremote storage simulated: %ld us per request batch, %zu events\n", latencyMicros,
                  remoteEventCount);
      const auto remoteEvents = ecommerce::generateEvents(remoteEventCount, 43, 500);
      const std::chrono::microseconds latency(latencyMicros);
      const Result rsync = runJob<ecommerce::SyncActivityFunction>("sync, remote", remoteEvents, options, latency);
      const Result rasync = runJob<ecommerce::AsyncActivityFunction>("async, remote", remoteEvents, options, latency);
      const Result rcoro =
          runJob<ecommerce::CoroutineActivityFunction>("coroutines, remote", remoteEvents, options, latency);
      report("sync, remote", rsync);
      report("async, remote", rasync);
      report("coroutines, remote", rcoro);
      remoteSame = sameOutput(rsync, rasync, rcoro);
      std::printf("async/sync throughput under %ld us latency: %.1fx; outputs are %s\n", latencyMicros,
                  rasync.stats.recordsPerSecond / rsync.stats.recordsPerSecond, remoteSame ? "IDENTICAL" : "DIFFERENT");
    }
    return same && remoteSame ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    return 1;
  }
}
