#pragma once
// A small keyed job for the monitoring tests: counts clicks per user in a ValueState,
// emitting "user count" per click, on a memory backend behind a local cache.

#include <asyncstate/asyncstate.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace asyncstate::test {

struct Click {
  std::string user;
  std::int64_t timeMillis = 0;
};

class CountClicks : public KeyedProcessFunction<std::string, Click, std::string> {
 public:
  void open(RuntimeContext& ctx) override { count_ = &ctx.getState(ValueStateDescriptor<long>("count")); }

  void processElement(const Click&, Context& ctx, Collector<std::string>& out) override {
    (void)count_->asyncValue().thenCompose([this, &ctx, &out](std::optional<long> n) {
      out.collect(ctx.currentKey() + " " + std::to_string(n.value_or(0) + 1));
      return count_->asyncUpdate(n.value_or(0) + 1);
    });
  }

 private:
  ValueState<long>* count_ = nullptr;
};

using ClickRunner = EmbeddedRunner<std::string, Click, std::string>;

// `records` clicks one millisecond apart from `startMillis`: every other click from one
// of ten regulars (user-0..user-9), the rest from `users` users in turn, so a small
// cache both hits and misses.
inline std::vector<Click> generateClicks(std::size_t records, std::size_t users, std::int64_t startMillis = 0) {
  std::vector<Click> clicks;
  clicks.reserve(records);
  for (std::size_t i = 0; i < records; ++i) {
    const std::size_t user = i % 2 == 0 ? (i / 2) % 10 : i % users;
    clicks.push_back(Click{"user-" + std::to_string(user), startMillis + static_cast<std::int64_t>(i)});
  }
  return clicks;
}

inline RunnerOptions clickJobOptions() {
  RunnerOptions options;
  options.controller.log = nullptr;
  options.controller.batchSize = 64;
  options.controller.inFlightLimit = 256;
  options.watermarkEvery = 500;
  return options;
}

}  // namespace asyncstate::test
