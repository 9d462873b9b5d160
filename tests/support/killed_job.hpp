#pragma once
// The job the kill tests' children run (redis_checkpoint_child.cpp,
// rocksdb_lightweight_child.cpp) and what their tests make of its output: every kind of
// state write, each output printed as one line straight to stdout (no buffer a kill could
// lose), and the exactly-once sink the test rebuilds from those lines.

#include "hit.hpp"

#include <asyncstate/asyncstate.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace asyncstate::test {

inline void say(const std::string& line) {
  const std::string text = line + "\n";
  if (::write(STDOUT_FILENO, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::_Exit(3);
}

// Each record writes a value, a map entry (put or remove) and a list (append or
// clear), and now and then clears the whole map: every kind of write must be undone
// by a roll-back to a checkpoint.
class MixedJob final : public asyncstate::KeyedProcessFunction<std::string, Hit, std::string> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    count_ = &ctx.getState(asyncstate::ValueStateDescriptor<std::int64_t>("count"));
    buckets_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::string, std::int64_t>("buckets"));
    seen_ = &ctx.getListState(asyncstate::ListStateDescriptor<std::int64_t>("seen"));
  }

  void processElement(const Hit& hit, Context&, Collector<std::string>& out) override {
    count_->asyncValue().thenCompose([this, key = hit.key, &out](std::optional<std::int64_t> c) {
      const std::int64_t n = c.value_or(0) + 1;
      out.collect(key + "=" + std::to_string(n));
      return count_->asyncUpdate(n);
    });
    const std::string bucket = "b" + std::to_string(hit.timestamp % 5);
    buckets_->asyncGet(bucket).thenCompose([this, bucket](std::optional<std::int64_t> v) {
      if (v && *v >= 3) return buckets_->asyncRemove(bucket);
      return buckets_->asyncPut(bucket, v.value_or(0) + 1);
    });
    if (hit.timestamp % 11 == 0) buckets_->asyncClear();
    if (hit.timestamp % 7 == 0) {
      seen_->asyncClear();
    } else {
      seen_->asyncAdd(hit.timestamp);
    }
  }

 private:
  asyncstate::ValueState<std::int64_t>* count_ = nullptr;
  asyncstate::MapState<std::string, std::int64_t>* buckets_ = nullptr;
  asyncstate::ListState<std::int64_t>* seen_ = nullptr;
};

class PrintingSink final : public Collector<std::string> {
 public:
  void collect(std::string value) override { say("out " + value); }
};

// The job as a child runs it on `backend`: `records` hits over `keys` keys, small
// batches, a lightweight checkpoint every `checkpointEvery` records.
struct KilledJobRun {
  KilledJobRun(StateBackend& backend, int records, int keys, std::size_t checkpointEvery)
      : source(input(records, keys)),
        runner(
            backend, function, [](const Hit& h) { return h.key; }, [](const Hit& h) { return h.timestamp; },
            options(checkpointEvery)) {}

  MixedJob function;
  VectorSource<Hit> source;
  EmbeddedRunner<std::string, Hit, std::string> runner;

 private:
  static std::vector<Hit> input(int records, int keys) {
    std::vector<Hit> hits;
    for (int i = 0; i < records; ++i) hits.push_back(Hit{"k" + std::to_string(i * 7 % keys), i});
    return hits;
  }
  static RunnerOptions options(std::size_t checkpointEvery) {
    RunnerOptions o;
    o.controller.batchSize = 16;
    o.checkpointEvery = checkpointEvery;
    o.lightweightCheckpoints = true;
    return o;
  }
};

// Applies one child's lines to the exactly-once sink `outputs`: the outputs after the
// checkpoint it recovered from are dropped, then its own are kept. Returns whether it
// printed "done". A checkpoint counting outputs the sink never saw is a defect of the
// job under test, thrown as std::logic_error (the test fails with its text).
inline bool collectChildLines(const std::vector<std::string>& lines, std::vector<std::string>& outputs) {
  bool done = false;
  for (const std::string& line : lines) {
    if (line.rfind("recovered ", 0) == 0) {
      const std::size_t kept = std::stoul(line.substr(10));
      if (kept > outputs.size()) {
        throw std::logic_error("the child recovered a checkpoint counting " + std::to_string(kept) +
                               " outputs, but the sink holds only " + std::to_string(outputs.size()));
      }
      outputs.resize(kept);
    } else if (line.rfind("out ", 0) == 0) {
      outputs.push_back(line.substr(4));
    } else if (line == "done") {
      done = true;
    }
  }
  return done;
}

}  // namespace asyncstate::test
