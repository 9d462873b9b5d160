// Child process of RocksDbLightweight.AJobKilledAtRandomPoints* (rocksdb_lightweight_test.cpp):
// a job with value, map and list state on RocksDB with lightweight checkpoints. It
// recovers from the last checkpoint, prints "recovered <outputs>" (the outputs that
// checkpoint had emitted), then every output as "out <key>=<count>", and "done" at the
// end of its input, until it is killed. argv: database directory, checkpoint root,
// records, keys, records per checkpoint.

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/rocksdb.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace {

using asyncstate::Collector;

struct Hit {
  std::string key;
  std::int64_t timestamp = 0;
};

void say(const std::string& line) {
  const std::string text = line + "\n";
  if (::write(STDOUT_FILENO, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::_Exit(3);
}

// Each record writes a value, a map entry (put or remove) and a list (append or clear),
// and now and then clears the whole map: every kind of write must be rolled back.
class MixedJob final : public asyncstate::KeyedProcessFunction<std::string, Hit, std::string> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    count_ = &ctx.getState(asyncstate::ValueStateDescriptor<std::int64_t>("count"));
    buckets_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::string, std::int64_t>("buckets"));
    seen_ = &ctx.getListState(asyncstate::ListStateDescriptor<std::int64_t>("seen"));
  }

  void processElement(const Hit& hit, Context&, Collector<std::string>& out) override {
    (void)count_->asyncValue().thenCompose([this, key = hit.key, &out](std::optional<std::int64_t> c) {
      const std::int64_t n = c.value_or(0) + 1;
      out.collect(key + "=" + std::to_string(n));
      return count_->asyncUpdate(n);
    });
    const std::string bucket = "b" + std::to_string(hit.timestamp % 5);
    (void)buckets_->asyncGet(bucket).thenCompose([this, bucket](std::optional<std::int64_t> v) {
      if (v && *v >= 3) return buckets_->asyncRemove(bucket);
      return buckets_->asyncPut(bucket, v.value_or(0) + 1);
    });
    if (hit.timestamp % 11 == 0) (void)buckets_->asyncClear();
    if (hit.timestamp % 7 == 0) {
      (void)seen_->asyncClear();
    } else {
      (void)seen_->asyncAdd(hit.timestamp);
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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) return 2;
  try {
    asyncstate::RocksDbOptions options;
    options.path = argv[1];
    options.checkpointRoot = argv[2];
    const int records = std::stoi(argv[3]);
    const int keys = std::stoi(argv[4]);
    std::vector<Hit> hits;
    for (int i = 0; i < records; ++i) hits.push_back(Hit{"k" + std::to_string(i * 7 % keys), i});

    asyncstate::RocksDbBackend backend(options);
    MixedJob function;
    asyncstate::RunnerOptions runnerOptions;
    runnerOptions.controller.batchSize = 16;
    runnerOptions.checkpointEvery = std::stoul(argv[5]);
    runnerOptions.lightweightCheckpoints = true;
    asyncstate::EmbeddedRunner<std::string, Hit, std::string> runner(
        backend, function, [](const Hit& h) { return h.key; }, [](const Hit& h) { return h.timestamp; }, runnerOptions);
    asyncstate::VectorSource<Hit> source(hits);
    say("recovered " + std::to_string(runner.recover(source)));
    PrintingSink sink;
    runner.run(source, sink);
    say("done");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
