// The state benchmark: what the async state API and the controller cost and buy.
//   overhead/*  per-record cost of a keyed job on the memory backend, async vs sync
//   latency/*   async vs sync throughput under injected backend latency, against the
//               theoretical bound in-flight / latency
//   timeout/*   record latency (what a watermark waits for) against the buffer timeout,
//               and its throughput cost
//   cache/*     local cache size against hit rate and throughput on Zipf keys
//
// Every benchmark reports `items` (records per iteration); the sweeps add their own
// counters (records_per_s, bound_per_s, ...), all read by bench/report.py.

#include "common.hpp"

#include "ecommerce/async_job.hpp"
#include "ecommerce/events.hpp"
#include "ecommerce/sync_job.hpp"

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/latency.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using asyncstate::AllocationPolicy;
using asyncstate::AsyncExecutionController;
using asyncstate::ControllerOptions;
using asyncstate::ValueState;
using asyncstate::ValueStateDescriptor;
ControllerOptions quietOptions(AllocationPolicy policy = AllocationPolicy::Pooled) {
  ControllerOptions o;
  o.allocationPolicy = policy;
  o.log = nullptr;
  return o;
}

// --- (a) controller overhead: the example job on the memory backend ------------------

using Runner = asyncstate::EmbeddedRunner<std::string, ecommerce::Event, ecommerce::WindowCount>;

const std::vector<ecommerce::Event>& exampleEvents() {
  static const std::vector<ecommerce::Event> events = ecommerce::generateEvents(bench::smoke() ? 500 : 20000);
  return events;
}

// Runs the example job once over `events` and returns the runner's statistics.
template <class Function>
asyncstate::RunStats runJob(asyncstate::StateBackend& backend, const std::vector<ecommerce::Event>& events,
                            asyncstate::RunnerOptions options) {
  Function function;
  Runner runner(
      backend, function, [](const ecommerce::Event& e) { return e.userId; },
      [](const ecommerce::Event& e) { return e.timestamp; }, std::move(options));
  asyncstate::VectorSource<ecommerce::Event> source(events);
  asyncstate::VectorCollector<ecommerce::WindowCount> sink;
  const asyncstate::RunStats stats = runner.run(source, sink);
  benchmark::DoNotOptimize(sink.values.data());
  return stats;
}

// The README demo's settings: Flink's controller defaults, a watermark every 1000 records.
asyncstate::RunnerOptions exampleOptions(AllocationPolicy policy) {
  asyncstate::RunnerOptions o;
  o.controller = quietOptions(policy);
  o.watermarkEvery = 1000;
  o.maxOutOfOrderness = 1000;
  return o;
}

template <class Function, AllocationPolicy Policy>
void overhead(benchmark::State& state) {
  const auto& events = exampleEvents();
  double batches = 0;
  for (auto _ : state) {
    asyncstate::MemoryBackend backend;
    batches += static_cast<double>(runJob<Function>(backend, events, exampleOptions(Policy)).controller.batchesSent);
  }
  state.counters["items"] = static_cast<double>(events.size());
  state.counters["batches"] = benchmark::Counter(batches, benchmark::Counter::kAvgIterations);
}

// --- the remote-state rig for (b), (c), (d) --------------------------------------------
// memory backend <- [cache] <- latency injection <- controller, and an enrichment job:
// each record reads one ValueState entry (one round trip) and folds it into a sink.

using Clock = std::chrono::steady_clock;

struct RemoteRig {
  RemoteRig(std::chrono::microseconds latency, ControllerOptions options, std::size_t cacheBytes = 0)
      : remote(memory, latencyOptions(latency)),
        cache(remote, cacheBytes),
        controller(cacheBytes > 0 ? static_cast<asyncstate::StateBackend&>(cache) : remote, std::move(options)),
        value(controller, ValueStateDescriptor<std::string>("profile")) {}

  static asyncstate::LatencyOptions latencyOptions(std::chrono::microseconds latency) {
    asyncstate::LatencyOptions o;
    o.latency = latency;
    return o;
  }

  void asyncRecord(std::int64_t key) {
    controller.processRecord(key, [this] {
      auto done = value.asyncValue().thenAccept([this](std::optional<std::string> v) { sink += v ? v->size() : 1; });
    });
  }

  void syncRecord(std::int64_t key) {
    controller.processRecord(key, [this] {
      const std::optional<std::string> v = value.value();
      sink += v ? v->size() : 1;
    });
  }

  asyncstate::MemoryBackend memory;
  asyncstate::LatencyInjectingBackend remote;
  asyncstate::CachingBackend cache;
  AsyncExecutionController controller;
  ValueState<std::string> value;
  std::size_t sink = 0;
};

ControllerOptions sweepOptions(std::size_t inFlight, std::size_t batch,
                               std::chrono::milliseconds timeout = std::chrono::milliseconds(1000)) {
  ControllerOptions o = quietOptions();
  o.inFlightLimit = inFlight;
  o.batchSize = batch;
  o.bufferTimeout = timeout;
  return o;
}

double secondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// --- (b) latency hiding ------------------------------------------------------------------

struct LatencyCase {
  std::chrono::microseconds latency;
  std::size_t inFlight = 0;  // 0: the synchronous job
  std::size_t batch = 0;
};

// About 0.2 s of records at the bound (at least 500, at most 20 000) for async, 0.3 s
// (at least 200) for sync: long enough that one scheduling hiccup does not decide a run.
std::int64_t latencyRecords(const LatencyCase& c) {
  if (bench::smoke()) return 20;
  const std::int64_t us = std::max<std::int64_t>(c.latency.count(), 1);
  if (c.inFlight == 0) return std::max<std::int64_t>(200, 300'000 / us);
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(c.inFlight) * 200'000 / us, 500, 20000);
}

void latencyHiding(benchmark::State& state, LatencyCase c) {
  const std::int64_t records = latencyRecords(c);
  const bool sync = c.inFlight == 0;
  double seconds = 0;
  for (auto _ : state) {
    RemoteRig rig(c.latency, sweepOptions(sync ? 1 : c.inFlight, sync ? 1 : c.batch));
    const auto start = Clock::now();
    for (std::int64_t key = 0; key < records; ++key) sync ? rig.syncRecord(key) : rig.asyncRecord(key);
    rig.controller.drain();
    const double elapsed = secondsSince(start);
    state.SetIterationTime(elapsed);
    seconds += elapsed;
    benchmark::DoNotOptimize(rig.sink);
  }
  const double latencySeconds = static_cast<double>(c.latency.count()) * 1e-6;
  const double perSecond = static_cast<double>(records) * static_cast<double>(state.iterations()) / seconds;
  state.counters["items"] = static_cast<double>(records);
  state.counters["latency_us"] = static_cast<double>(c.latency.count());
  state.counters["in_flight"] = static_cast<double>(sync ? 1 : c.inFlight);
  state.counters["batch"] = static_cast<double>(sync ? 1 : c.batch);
  state.counters["records_per_s"] = perSecond;
  state.counters["bound_per_s"] = static_cast<double>(sync ? 1 : c.inFlight) / latencySeconds;
}

// --- (c) buffer timeout: record latency and watermark delay against throughput ----------
// A source producing `kPacedRate` records/s (slower than a batch fills), a watermark
// every kWatermarkEvery records (the runner drains the controller for each), 1 ms of
// backend latency. The buffer timeout decides how long a partial batch waits.

constexpr double kPacedRate = 5000;
constexpr std::int64_t kWatermarkEvery = 500;

void bufferTimeout(benchmark::State& state, std::chrono::milliseconds timeout) {
  const std::int64_t records = bench::smoke() ? 50 : 3000;
  const auto latency = std::chrono::microseconds(1000);
  std::vector<double> watermarkDelays;
  double p50 = 0, p99 = 0, batches = 0, pacedRate = 0, saturatedRate = 0;
  for (auto _ : state) {
    {
      ControllerOptions options = sweepOptions(6000, 1000, timeout);
      options.latencySampleEvery = 1;  // the record latency is what this benchmark reports
      RemoteRig rig(latency, options);
      const auto start = Clock::now();
      for (std::int64_t key = 0; key < records; ++key) {
        const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(key) / kPacedRate));
        // The source blocks between arrivals, as a socket would; a spinning source would
        // starve the latency wrapper's timer thread on a 2-core machine.
        for (auto now = Clock::now(); now < due; now = Clock::now()) {
          rig.controller.poll();
          std::this_thread::sleep_for(std::min<Clock::duration>(due - now, std::chrono::microseconds(100)));
        }
        rig.asyncRecord(key);
        if ((key + 1) % kWatermarkEvery == 0) {
          const auto watermarkStart = Clock::now();
          rig.controller.drain();
          watermarkDelays.push_back(secondsSince(watermarkStart) * 1e3);
        }
      }
      rig.controller.drain();
      pacedRate = static_cast<double>(records) / secondsSince(start);
      p50 = rig.controller.recordLatency().percentileMicros(0.50) / 1e3;
      p99 = rig.controller.recordLatency().percentileMicros(0.99) / 1e3;
      batches = static_cast<double>(rig.controller.metrics().batchesSent) * 1000.0 / static_cast<double>(records);
    }
    {
      // The same job with the source unthrottled: the throughput ceiling at this timeout.
      RemoteRig rig(latency, sweepOptions(6000, 1000, timeout));
      const auto start = Clock::now();
      for (std::int64_t key = 0; key < records; ++key) rig.asyncRecord(key);
      rig.controller.drain();
      saturatedRate = static_cast<double>(records) / secondsSince(start);
    }
  }
  std::sort(watermarkDelays.begin(), watermarkDelays.end());
  state.counters["items"] = static_cast<double>(records);
  state.counters["timeout_ms"] = static_cast<double>(timeout.count());
  state.counters["record_p50_ms"] = p50;
  state.counters["record_p99_ms"] = p99;
  state.counters["watermark_p50_ms"] = watermarkDelays.empty() ? 0 : watermarkDelays[watermarkDelays.size() / 2];
  state.counters["watermark_max_ms"] = watermarkDelays.empty() ? 0 : watermarkDelays.back();
  state.counters["batches_per_1k"] = batches;
  state.counters["paced_records_per_s"] = pacedRate;
  state.counters["records_per_s"] = saturatedRate;
}

// --- (d) local cache size against hit rate and throughput ----------------------------------
// Zipf(0.99) over kCacheKeys keys plus one hot key taking kHotShare of the records;
// every key holds a 100-byte value behind 1 ms of latency.

constexpr std::int64_t kCacheKeys = 50000;
constexpr double kHotShare = 0.05;

const std::vector<std::int64_t>& zipfKeys() {
  static const std::vector<std::int64_t> keys = [] {
    std::vector<double> weights(kCacheKeys);
    for (std::int64_t k = 0; k < kCacheKeys; ++k) weights[static_cast<std::size_t>(k)] = 1.0 / std::pow(k + 1.0, 0.99);
    std::discrete_distribution<std::int64_t> zipf(weights.begin(), weights.end());
    std::bernoulli_distribution hot(kHotShare);
    std::mt19937_64 rng(7);
    std::vector<std::int64_t> out(bench::smoke() ? 200 : 20000);
    // Key -1 is the hot key; Zipf ranks are shuffled so that hot ranks are not adjacent ids.
    for (auto& k : out) k = hot(rng) ? -1 : (zipf(rng) * 7919) % kCacheKeys;
    return out;
  }();
  return keys;
}

class IgnoreCompletions final : public asyncstate::CompletionSink {
  void complete(std::uint64_t, asyncstate::StateResult) override {}
  void fail(std::uint64_t, std::exception_ptr) override {}
};

void populate(asyncstate::MemoryBackend& memory) {
  const std::uint32_t id = memory.registerState("profile", asyncstate::StateKind::Value);
  std::vector<asyncstate::StateRequest> puts;
  for (std::int64_t k = -1; k < kCacheKeys; ++k) {
    asyncstate::StateRequest r;
    r.type = asyncstate::RequestType::Put;
    r.stateId = id;
    r.key = asyncstate::encode(k);
    r.keyGroup = asyncstate::keyGroupOf(r.key);
    r.value = asyncstate::encode(std::string(100, 'v'));
    puts.push_back(std::move(r));
  }
  IgnoreCompletions ignore;
  memory.executeBatch(std::move(puts), ignore);
}

void cacheSize(benchmark::State& state, std::size_t capacityBytes) {
  const auto& keys = zipfKeys();
  double seconds = 0;
  asyncstate::CacheStats stats;
  for (auto _ : state) {
    RemoteRig rig(std::chrono::microseconds(1000), sweepOptions(1000, 100), capacityBytes);
    populate(rig.memory);
    const auto start = Clock::now();
    for (const std::int64_t key : keys) rig.asyncRecord(key);
    rig.controller.drain();
    const double elapsed = secondsSince(start);
    state.SetIterationTime(elapsed);
    seconds += elapsed;
    stats = rig.cache.cacheStats();
  }
  state.counters["items"] = static_cast<double>(keys.size());
  state.counters["cache_bytes"] = static_cast<double>(capacityBytes);
  state.counters["hit_rate"] = stats.hitRate();
  state.counters["records_per_s"] =
      static_cast<double>(keys.size()) * static_cast<double>(state.iterations()) / seconds;
}

void registerAll() {
  using benchmark::RegisterBenchmark;
  using ecommerce::AsyncActivityFunction;
  using ecommerce::CoroutineActivityFunction;
  using ecommerce::SyncActivityFunction;
  bench::registerTimed("overhead/sync", overhead<SyncActivityFunction, AllocationPolicy::Pooled>)
      ->Unit(benchmark::kMillisecond);
  bench::registerTimed("overhead/async_pooled", overhead<AsyncActivityFunction, AllocationPolicy::Pooled>)
      ->Unit(benchmark::kMillisecond);
  bench::registerTimed("overhead/async_heap", overhead<AsyncActivityFunction, AllocationPolicy::Heap>)
      ->Unit(benchmark::kMillisecond);
  bench::registerTimed("overhead/coroutine_pooled", overhead<CoroutineActivityFunction, AllocationPolicy::Pooled>)
      ->Unit(benchmark::kMillisecond);
  bench::registerTimed("overhead/coroutine_heap", overhead<CoroutineActivityFunction, AllocationPolicy::Heap>)
      ->Unit(benchmark::kMillisecond);

  for (const std::int64_t us : {100, 1000, 10000}) {
    const std::chrono::microseconds latency(us);
    const std::string prefix = "latency/" + std::to_string(us) + "us/";
    std::vector<LatencyCase> cases = {{latency, 0, 0}};
    // The in-flight sweep at batch 100, the batch sweep at 100 and 1000 in flight (batches
    // smaller than the window overlap their round trips), and Flink's defaults.
    for (const std::size_t inFlight : {10, 100, 1000}) cases.push_back({latency, inFlight, 100});
    cases.push_back({latency, 100, 10});
    for (const std::size_t batch : {10, 1000}) cases.push_back({latency, 1000, batch});
    cases.push_back({latency, 6000, 1000});
    for (const LatencyCase& c : cases) {
      const std::string name = c.inFlight == 0
                                   ? prefix + "sync"
                                   : prefix + "async/if" + std::to_string(c.inFlight) + "/b" + std::to_string(c.batch);
      RegisterBenchmark(name.c_str(), latencyHiding, c)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
    }
  }
  for (const std::int64_t ms : {10, 30, 100, 1000}) {
    RegisterBenchmark(("timeout/" + std::to_string(ms) + "ms").c_str(), bufferTimeout, std::chrono::milliseconds(ms))
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  }
  for (const std::size_t bytes : {0, 64 << 10, 512 << 10, 2 << 20, 8 << 20}) {
    RegisterBenchmark(("cache/" + std::to_string(bytes >> 10) + "KiB").c_str(), cacheSize, bytes)
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  registerAll();
  return bench::runBenchmarks(argc, argv);
}
