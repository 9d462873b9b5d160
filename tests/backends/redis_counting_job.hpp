#pragma once
// A small real job for the Redis robustness and security tests: it counts records per
// key in a ValueState, driven by the embedded runner, so the whole path (controller,
// batching, scripts, reconnects) runs as in production.

#include "../support/hit.hpp"

#include <asyncstate/asyncstate.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace asyncstate::test {

class CountingFunction final : public KeyedProcessFunction<std::string, Hit, int> {
 public:
  void open(RuntimeContext& ctx) override { count_ = &ctx.getState(ValueStateDescriptor<std::int64_t>("count")); }
  void processElement(const Hit&, Context&, Collector<int>&) override {
    (void)count_->asyncValue().thenCompose(
        [this](std::optional<std::int64_t> c) { return count_->asyncUpdate(c.value_or(0) + 1); });
  }

 private:
  ValueState<std::int64_t>* count_ = nullptr;
};

// `perKey` records for each of `keys` keys, interleaved.
inline std::vector<Hit> countingInput(int keys, int perKey) {
  std::vector<Hit> hits;
  for (int round = 0; round < perKey; ++round) {
    for (int k = 0; k < keys; ++k) {
      hits.push_back(Hit{"key" + std::to_string(k), static_cast<std::int64_t>(hits.size())});
    }
  }
  return hits;
}

// Runs the counting job over `hits`; `log` receives the controller's start-up line,
// `onProgress` is called every `progressEvery` records (on the task thread).
inline RunStats runCountingJob(StateBackend& backend, const std::vector<Hit>& hits, std::ostream* log = nullptr,
                               std::uint64_t progressEvery = 0,
                               std::function<void(const RunStats&)> onProgress = nullptr) {
  CountingFunction function;
  RunnerOptions options;
  options.controller.log = log;
  options.controller.batchSize = 64;
  options.progressEvery = progressEvery;
  options.onProgress = std::move(onProgress);
  EmbeddedRunner<std::string, Hit, int> runner(
      backend, function, [](const Hit& h) { return h.key; }, [](const Hit& h) { return h.timestamp; }, options);
  VectorSource<Hit> source(hits);
  VectorCollector<int> sink;
  return runner.run(source, sink);
}

}  // namespace asyncstate::test
