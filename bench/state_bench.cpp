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

#include <asyncstate/backend/memory.hpp>
#include <asyncstate/controller.hpp>
#include <asyncstate/state.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

namespace {

using asyncstate::AllocationPolicy;
using asyncstate::AsyncExecutionController;
using asyncstate::ControllerOptions;
using asyncstate::ValueState;
using asyncstate::ValueStateDescriptor;

constexpr std::int64_t kKeys = 10000;

// A fixed pseudo-random key sequence, the same for every contender.
const std::vector<std::int64_t>& uniformKeys() {
  static const std::vector<std::int64_t> keys = [] {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int64_t> pick(0, kKeys - 1);
    std::vector<std::int64_t> out(1 << 16);
    for (auto& k : out) k = pick(rng);
    return out;
  }();
  return keys;
}

ControllerOptions quietOptions(AllocationPolicy policy = AllocationPolicy::Pooled) {
  ControllerOptions o;
  o.allocationPolicy = policy;
  o.log = nullptr;
  return o;
}

// --- (a) controller overhead ---------------------------------------------------------
// The job: count events per key (read the count, write it back plus one).

constexpr std::int64_t kOverheadRecords = 1000;

template <AllocationPolicy Policy>
void overheadAsync(benchmark::State& state) {
  asyncstate::MemoryBackend backend;
  AsyncExecutionController controller(backend, quietOptions(Policy));
  ValueState<std::int64_t> count(controller, ValueStateDescriptor<std::int64_t>("count"));
  const auto& keys = uniformKeys();
  std::size_t next = 0;
  for (auto _ : state) {
    for (std::int64_t r = 0; r < kOverheadRecords; ++r) {
      controller.processRecord(keys[next++ & (keys.size() - 1)], [&count] {
        auto done = count.asyncValue().thenCompose(
            [&count](std::optional<std::int64_t> c) { return count.asyncUpdate(c.value_or(0) + 1); });
      });
    }
    controller.drain();
  }
  state.counters["items"] = kOverheadRecords;
  state.counters["batches"] = static_cast<double>(controller.metrics().batchesSent);
}

void overheadSync(benchmark::State& state) {
  asyncstate::MemoryBackend backend;
  AsyncExecutionController controller(backend, quietOptions());
  ValueState<std::int64_t> count(controller, ValueStateDescriptor<std::int64_t>("count"));
  const auto& keys = uniformKeys();
  std::size_t next = 0;
  for (auto _ : state) {
    for (std::int64_t r = 0; r < kOverheadRecords; ++r) {
      controller.processRecord(keys[next++ & (keys.size() - 1)],
                               [&count] { count.update(count.value().value_or(0) + 1); });
    }
    controller.drain();
  }
  state.counters["items"] = kOverheadRecords;
}

// The same counting without the state library: the floor the overhead is measured from.
void overheadBaseline(benchmark::State& state) {
  std::unordered_map<std::int64_t, std::int64_t> counts;
  const auto& keys = uniformKeys();
  std::size_t next = 0;
  for (auto _ : state) {
    for (std::int64_t r = 0; r < kOverheadRecords; ++r) ++counts[keys[next++ & (keys.size() - 1)]];
    benchmark::DoNotOptimize(counts);
  }
  state.counters["items"] = kOverheadRecords;
}

void registerAll() {
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("overhead/baseline", overheadBaseline);
  RegisterBenchmark("overhead/async_pooled", overheadAsync<AllocationPolicy::Pooled>);
  RegisterBenchmark("overhead/async_heap", overheadAsync<AllocationPolicy::Heap>);
  RegisterBenchmark("overhead/sync", overheadSync);
}

}  // namespace

int main(int argc, char** argv) {
  registerAll();
  return bench::runBenchmarks(argc, argv);
}
