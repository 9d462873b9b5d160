// The story's before/after table (issue 13 item 5): keyed state of 10 MB, 100 MB and
// 1 GB, and for each size
//   rocksdb-full         RocksDB with full snapshots, the "before": a checkpoint copies
//                        the whole state into a savepoint file; recovery reads it back
//                        and rewrites every entry
//   rocksdb-incremental  RocksDB incremental native checkpoints (RocksDbBackend::
//                        checkpoint): only table files new since the last one are copied;
//                        recovery copies the checkpoint's files and opens them
//   redis-lightweight    Redis, the disaggregated store, behind the local cache, with
//                        lightweight checkpoints: a checkpoint commits a marker; recovery
//                        rolls back the writes since it
// measures checkpoint duration after a change set of 1 % of the keys (and, fastest of
// five, after a fixed 100 keys), recovery time
// after a crash (with another uncommitted 1 % change set on Redis), rescale time 1 -> 2
// (ParallelRunner::restore of a checkpoint taken at parallelism 1), the change set's
// throughput and p99 record latency, and the cache's hit rate. Written as JSON for
// bench/report.py; bench/story.sh runs it.
//
//   asyncstate_bench_story [--smoke] [--sizes=10,100,1000] [--out=story.json] [--work=DIR]
//
// A plain driver rather than google-benchmark: each measurement is one operation on
// state that takes seconds to build, and the ratios that matter are orders of magnitude.

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/redis.hpp>
#include <asyncstate/backend/rocksdb.hpp>
#include <asyncstate/parallel_runner.hpp>

#include "redis_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace asyncstate;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kValueBytes = 1024;
constexpr const char* kStateName = "value";
constexpr std::size_t kCacheBytes = 64u << 20;  // the local cache: far smaller than the large states

struct Update {
  std::uint64_t key = 0;
  std::int64_t timestamp = 0;
};

// Read-modify-write of one 1 KiB value per record: the change set.
class UpdateFunction final : public KeyedProcessFunction<std::uint64_t, Update, int> {
 public:
  void open(RuntimeContext& ctx) override { value_ = &ctx.getState(ValueStateDescriptor<std::string>(kStateName)); }
  void processElement(const Update& u, Context&, Collector<int>&) override {
    (void)value_->asyncValue().thenCompose([this, stamp = u.timestamp](std::optional<std::string> v) {
      std::string next = v.value_or(std::string(kValueBytes, 'x'));
      std::memcpy(next.data(), &stamp, std::min(sizeof stamp, next.size()));
      return value_->asyncUpdate(next);
    });
  }

 private:
  ValueState<std::string>* value_ = nullptr;
};

using Runner = EmbeddedRunner<std::uint64_t, Update, int>;
using Parallel = ParallelRunner<std::uint64_t, Update, int>;

double secondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

template <class F>
double timed(F&& f) {
  const auto start = Clock::now();
  f();
  return secondsSince(start);
}

// The fastest of a few repetitions of a short measurement: on a shared machine
// interference only ever adds time (as bench/common.hpp's "min").
template <class F>
double fastestOf(F&& measure) {
  constexpr int kRepetitions = 5;
  double best = measure();
  for (int i = 1; i < kRepetitions; ++i) best = std::min(best, measure());
  return best;
}

std::uint64_t keyOf(const Update& u) { return u.key; }
std::int64_t timestampOf(const Update& u) { return u.timestamp; }

RunnerOptions runnerOptions(bool lightweight) {
  RunnerOptions options;
  options.controller.latencySampleEvery = 1;
  options.controller.log = nullptr;  // one start-up line per runner would drown the progress lines
  options.watermarkEvery = 0;
  options.lightweightCheckpoints = lightweight;
  return options;
}

// Answers counted; the loader waits on it.
class CountingSink final : public CompletionSink {
 public:
  void complete(std::uint64_t, StateResult) override { ++done_; }
  void fail(std::uint64_t, std::exception_ptr error) override {
    ++done_;
    if (!error_) error_ = error;
  }
  void waitUntil(std::uint64_t answered, StateBackend& backend) {
    while (done_.load() < answered) {
      backend.poll();
      if (done_.load() < answered) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<std::uint64_t> done_{0};
  std::exception_ptr error_;
};

// Writes `keys` values through the backend's own batch path (a RocksDB WriteBatch, a
// pipelined Redis script per key group), a few batches in flight.
void bulkLoad(StateBackend& backend, std::uint64_t keys, std::mt19937_64& random) {
  const std::uint32_t state = backend.registerState(kStateName, StateKind::Value);
  constexpr std::uint64_t kBatch = 4000;
  constexpr std::uint64_t kInFlight = 4;
  CountingSink sink;
  std::string raw(kValueBytes, '\0');
  std::uint64_t ticket = 0;
  for (std::uint64_t first = 0; first < keys; first += kBatch) {
    std::vector<StateRequest> batch;
    for (std::uint64_t k = first; k < std::min(keys, first + kBatch); ++k) {
      for (std::size_t i = 0; i + 8 <= raw.size(); i += 8) {
        const std::uint64_t word = random();
        std::memcpy(raw.data() + i, &word, 8);
      }
      StateRequest r;
      r.type = RequestType::Put;
      r.stateId = state;
      r.key = encode(k);
      r.keyGroup = keyGroupOf(r.key);
      r.value = encode(raw);
      r.ticket = ticket++;
      batch.push_back(std::move(r));
    }
    backend.executeBatch(std::move(batch), sink);
    if (ticket > kInFlight * kBatch) sink.waitUntil(ticket - kInFlight * kBatch, backend);
  }
  sink.waitUntil(ticket, backend);
}

// The keys a checkpoint interval changes besides 1 % of them: the same number at every
// size, so that what grows with the state alone shows.
constexpr std::uint64_t kFixedChangedKeys = 100;

// `changed` keys (default 1 % of them), each updated four times in random order (so a
// cache sees repeats).
std::vector<Update> changeSet(std::uint64_t keys, std::mt19937_64& random, std::int64_t& clock,
                              std::uint64_t changed = 0) {
  if (changed == 0) changed = std::max<std::uint64_t>(1, keys / 100);
  changed = std::min(changed, keys);
  std::vector<std::uint64_t> chosen(changed);
  std::uniform_int_distribution<std::uint64_t> any(0, keys - 1);
  for (auto& k : chosen) k = any(random);
  std::vector<Update> out;
  std::uniform_int_distribution<std::size_t> pick(0, changed - 1);
  for (std::uint64_t i = 0; i < 4 * changed; ++i) out.push_back(Update{chosen[pick(random)], clock++});
  return out;
}

struct Workload {
  double seconds = 0;
  double recordsPerSecond = 0;
  double p99Micros = 0;
};

// Runs `updates` through the runner, driven record by record, and drains.
Workload process(Runner& runner, const std::vector<Update>& updates) {
  VectorCollector<int> sink;
  runner.attach(sink);
  Workload w;
  w.seconds = timed([&] {
    for (const Update& u : updates) runner.process(u);
    runner.controller().drain();
  });
  w.recordsPerSecond = static_cast<double>(updates.size()) / w.seconds;
  w.p99Micros = runner.controller().recordLatency().percentileMicros(0.99);
  return w;
}

// The JSON of one measured configuration.
class Json {
 public:
  Json& num(const std::string& name, double v) {
    std::ostringstream s;
    s.precision(6);
    s << v;
    return raw(name, s.str());
  }
  Json& str(const std::string& name, const std::string& v) { return raw(name, "\"" + v + "\""); }
  Json& raw(const std::string& name, const std::string& v) {
    fields_.push_back("\"" + name + "\": " + v);
    return *this;
  }
  std::string text() const {
    std::string out = "{";
    for (std::size_t i = 0; i < fields_.size(); ++i) out += (i ? ", " : "") + fields_[i];
    return out + "}";
  }

 private:
  std::vector<std::string> fields_;
};

std::uint64_t directoryBytes(const fs::path& dir) {
  std::uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

void log(const std::string& line) { std::cerr << "story: " << line << std::endl; }

// RocksDB: one database carries both checkpoint modes; the change set and the state are
// the same for both, only the checkpoint differs.
std::pair<std::string, std::string> measureRocksDb(std::uint64_t keys, const fs::path& work) {
  std::mt19937_64 random(42);
  std::int64_t clock = 0;
  fs::remove_all(work);
  fs::create_directories(work);
  Json full, incremental;
  auto db = std::make_unique<RocksDbBackend>(RocksDbOptions{work / "db", false});
  db->retain(10);  // the checkpoint recovered from below must outlive the repetitions after it
  const double load = timed([&] { bulkLoad(*db, keys, random); });
  // A running job's database is compacted long after its state was written. Freshly
  // loaded, its level-0 files would be compacted right after the first checkpoint, and
  // the next one would copy the whole rewritten state (see the analysis).
  const double compaction = timed([&] { db->compact(); });
  const fs::path root = work / "checkpoints";
  const double firstCheckpoint = timed([&] { db->checkpoint(root); });
  log("rocksdb: loaded " + std::to_string(keys) + " keys in " + std::to_string(load) + " s, first checkpoint " +
      std::to_string(firstCheckpoint) + " s");

  UpdateFunction function;
  auto runner = std::make_unique<Runner>(*db, function, keyOf, timestampOf, runnerOptions(false));
  const std::vector<Update> changes = changeSet(keys, random, clock);
  const Workload w = process(*runner, changes);

  // (b) incremental: the files new since the first checkpoint.
  CheckpointHandle handle;
  const double incrementalSeconds = timed([&] {
    runner->controller().drain();
    handle = db->checkpoint(root);
  });
  const double fixedSeconds = fastestOf([&] {
    process(*runner, changeSet(keys, random, clock, kFixedChangedKeys));
    return timed([&] {
      runner->controller().drain();
      db->checkpoint(root);
    });
  });
  // (a) full: the runner's checkpoint (drain + snapshot of every entry) written durably.
  Savepoint snapshot;
  const fs::path savepointFile = work / "savepoint";
  const double fullSeconds = timed([&] {
    snapshot = runner->checkpoint(changes.size());
    snapshot.writeFile(savepointFile.string());
  });
  const std::uint64_t savepointBytes = fs::file_size(savepointFile);
  log("rocksdb: checkpoint full " + std::to_string(fullSeconds) + " s, incremental " +
      std::to_string(incrementalSeconds) + " s (" + std::to_string(handle.bytesCopied()) + " bytes copied)");
  runner.reset();
  db.reset();

  // Recovery, full: read the savepoint, rewrite every entry into an empty database.
  const double fullRecovery = timed([&] {
    const Savepoint read = Savepoint::readFile(savepointFile.string());
    RocksDbBackend restored(RocksDbOptions{work / "restored-full", false});
    UpdateFunction f;
    Runner r(restored, f, keyOf, timestampOf, runnerOptions(false));
    r.restore(read);
  });
  fs::remove_all(work / "restored-full");
  fs::remove(savepointFile);
  // Recovery, incremental: copy the checkpoint's files and open them.
  const double incrementalRecovery = timed([&] {
    auto restored =
        RocksDbBackend::restoreFromCheckpoint(root, handle.id, RocksDbOptions{work / "restored-inc", false});
    restored->registerState(kStateName, StateKind::Value);
  });
  fs::remove_all(work / "restored-inc");
  const std::uint64_t checkpointRootBytes = directoryBytes(root);
  fs::remove_all(root);
  log("rocksdb: recovery full " + std::to_string(fullRecovery) + " s, incremental " +
      std::to_string(incrementalRecovery) + " s");

  // Rescale 1 -> 2, as Flink does for per-subtask state: each new subtask gets the
  // entries of its key-group range from the checkpoint, written into its own database.
  // (The checkpoint is handed over in memory: reading it from storage would add more.)
  ParallelCheckpoint checkpoint;
  checkpoint.placement = StatePlacement::PerSubtask;
  checkpoint.sourcePosition = changes.size();
  checkpoint.parts.push_back({KeyGroupRange{}, std::move(snapshot)});
  const double rescale = timed([&] {
    ParallelRunnerOptions options;
    options.parallelism = 2;
    options.runner = runnerOptions(false);
    Parallel rescaled(
        [&](const Subtask& s) {
          return std::make_unique<RocksDbBackend>(
              RocksDbOptions{work / ("rescaled-" + std::to_string(s.index)), false});
        },
        [] { return std::make_unique<UpdateFunction>(); }, keyOf, timestampOf, options);
    VectorSource<Update> source(changes);
    rescaled.restore(checkpoint, source);
  });
  log("rocksdb: rescale 1->2 " + std::to_string(rescale) + " s");
  fs::remove_all(work);

  for (Json* j : {&full, &incremental}) {
    j->num("load_s", load).num("throughput_rps", w.recordsPerSecond).num("p99_us", w.p99Micros);
    j->num("rescale_s", rescale).num("changed_records", static_cast<double>(changes.size()));
  }
  full.num("checkpoint_s", fullSeconds).num("recovery_s", fullRecovery);
  full.num("checkpoint_bytes", static_cast<double>(savepointBytes));
  incremental.num("checkpoint_s", incrementalSeconds).num("recovery_s", incrementalRecovery);
  incremental.num("fixed_checkpoint_s", fixedSeconds)
      .num("first_checkpoint_s", firstCheckpoint)
      .num("compaction_s", compaction);
  incremental.num("checkpoint_bytes", static_cast<double>(handle.bytesCopied()));
  incremental.num("checkpoint_files_copied", static_cast<double>(handle.filesCopied()));
  incremental.num("checkpoint_root_bytes", static_cast<double>(checkpointRootBytes));
  return {full.text(), incremental.text()};
}

// Redis behind the local cache, lightweight checkpoints; the store is shared, so a
// rescale hands the new subtasks their key-group ranges of the same store.
std::string measureRedis(std::uint64_t keys, const test::RedisServer& server, const std::string& job) {
  std::mt19937_64 random(42);
  std::int64_t clock = 0;
  RedisOptions redisOptions;
  redisOptions.seeds = {server.address()};
  redisOptions.job = job;
  redisOptions.lightweightCheckpoints = true;
  // Each commit deletes the pre-images of the epoch that leaves retention. With one
  // retained checkpoint that is the committed epoch itself, so the measured checkpoint
  // pays the deletion a steady-state commit pays (with N retained, the first N - 1
  // commits of a fresh job would delete nothing and look cheaper than they are).
  redisOptions.retainedCheckpoints = 1;
  Json j;
  auto redis = std::make_unique<RedisBackend>(redisOptions);
  auto cached = std::make_unique<CachingBackend>(*redis, kCacheBytes);
  const double load = timed([&] { bulkLoad(*cached, keys, random); });
  const double firstCheckpoint = timed([&] { cached->commitCheckpoint({}); });
  log("redis: loaded " + std::to_string(keys) + " keys in " + std::to_string(load) + " s");

  UpdateFunction function;
  auto runner = std::make_unique<Runner>(*cached, function, keyOf, timestampOf, runnerOptions(true));
  const std::vector<Update> changes = changeSet(keys, random, clock);
  VectorSource<Update> source(changes);
  const Workload w = process(*runner, changes);
  const double hitRate = cached->cacheStats().hitRate();
  Savepoint position;
  const double checkpointSeconds = timed([&] { position = runner->checkpoint(changes.size()); });
  const std::uint64_t preImageDeletes = redis->checkpointStats().lastCommitDeletes;
  const double fixedSeconds = fastestOf([&] {
    process(*runner, changeSet(keys, random, clock, kFixedChangedKeys));
    return timed([&] { runner->checkpoint(changes.size()); });
  });
  // The last checkpoint before the crash, which the rescale restores (a lightweight
  // checkpoint can be restored while it is retained).
  position = runner->checkpoint(changes.size());

  // The crash: another change set, not committed, then the job is gone.
  const std::vector<Update> uncommitted = changeSet(keys, random, clock);
  process(*runner, uncommitted);
  runner.reset();
  cached.reset();
  redis.reset();
  log("redis: checkpoint " + std::to_string(checkpointSeconds) + " s, hit rate " + std::to_string(hitRate));

  std::uint64_t rolledBack = 0;
  const double recovery = timed([&] {
    RedisBackend restarted(redisOptions);
    CachingBackend cache(restarted, kCacheBytes);
    UpdateFunction f;
    Runner r(cache, f, keyOf, timestampOf, runnerOptions(true));
    r.recover(source);
    rolledBack = restarted.checkpointStats().lastRollBackPreImages;
  });
  log("redis: recovery " + std::to_string(recovery) + " s (" + std::to_string(rolledBack) + " pre-images)");

  // Rescale 1 -> 2: the checkpoint's parts carry positions and timers only.
  ParallelCheckpoint checkpoint;
  checkpoint.placement = StatePlacement::Shared;
  checkpoint.sourcePosition = changes.size();
  checkpoint.parts.push_back({KeyGroupRange{}, position});
  std::vector<std::unique_ptr<RedisBackend>> stores;
  const double rescale = timed([&] {
    ParallelRunnerOptions options;
    options.parallelism = 2;
    options.placement = StatePlacement::Shared;
    options.runner = runnerOptions(true);
    Parallel rescaled(
        [&](const Subtask&) -> std::unique_ptr<StateBackend> {
          stores.push_back(std::make_unique<RedisBackend>(redisOptions));
          return std::make_unique<CachingBackend>(*stores.back(), kCacheBytes / 2);
        },
        [] { return std::make_unique<UpdateFunction>(); }, keyOf, timestampOf, options);
    rescaled.restore(checkpoint, source);
  });
  stores.clear();
  log("redis: rescale 1->2 " + std::to_string(rescale) + " s");
  RedisBackend::deleteJobKeys(redisOptions);

  j.num("load_s", load).num("first_checkpoint_s", firstCheckpoint);
  j.num("throughput_rps", w.recordsPerSecond).num("p99_us", w.p99Micros).num("cache_hit_rate", hitRate);
  j.num("fixed_checkpoint_s", fixedSeconds)
      .num("checkpoint_s", checkpointSeconds)
      .num("recovery_s", recovery)
      .num("rescale_s", rescale);
  j.num("checkpoint_unlinks", static_cast<double>(preImageDeletes));
  j.num("recovery_pre_images", static_cast<double>(rolledBack));
  j.num("changed_records", static_cast<double>(changes.size()));
  return j.text();
}

std::vector<double> parseSizes(const std::string& list) {
  std::vector<double> sizes;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) sizes.push_back(std::stod(item));
  return sizes;
}

}  // namespace

int main(int argc, char** argv) {
  bool smoke = false;
  std::string sizesArg = "10,100,1000";
  std::string out = "story.json";
  fs::path work = fs::temp_directory_path() / ("asyncstate-story-" + std::to_string(::getpid()));
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--smoke") {
      smoke = true;
    } else if (arg.rfind("--sizes=", 0) == 0) {
      sizesArg = arg.substr(8);
    } else if (arg.rfind("--out=", 0) == 0) {
      out = arg.substr(6);
    } else if (arg.rfind("--work=", 0) == 0) {
      work = fs::path(arg.substr(7)) / ("asyncstate-story-" + std::to_string(::getpid()));
    } else {
      std::cerr << "usage: " << argv[0] << " [--smoke] [--sizes=10,100,1000 (MB)] [--out=FILE] [--work=DIR]\n";
      return 2;
    }
  }
  if (smoke) sizesArg = "0.1,0.2";  // tiny: the path runs, nothing is measured
  try {
    test::RedisServer server;
    std::vector<std::string> cases;
    int index = 0;
    for (const double mb : parseSizes(sizesArg)) {
      const auto keys = static_cast<std::uint64_t>(mb * 1e6 / kValueBytes);
      log("state of " + std::to_string(mb) + " MB: " + std::to_string(keys) + " keys of " +
          std::to_string(kValueBytes) + " bytes");
      const auto [full, incremental] = measureRocksDb(keys, work);
      const std::string redis = measureRedis(keys, server, "story-" + std::to_string(index++));
      Json c;
      c.num("size_mb", mb).num("keys", static_cast<double>(keys)).num("value_bytes", kValueBytes);
      c.raw("rocksdb_full", full).raw("rocksdb_incremental", incremental).raw("redis_lightweight", redis);
      cases.push_back(c.text());
    }
    std::ofstream file(out);
    file << "{\"smoke\": " << (smoke ? "true" : "false") << ", \"cache_bytes\": " << kCacheBytes << ", \"cases\": [\n";
    for (std::size_t i = 0; i < cases.size(); ++i) file << "  " << cases[i] << (i + 1 < cases.size() ? ",\n" : "\n");
    file << "]}\n";
    if (!file) throw std::runtime_error("cannot write " + out);
    log("wrote " + out);
  } catch (const std::exception& e) {
    std::cerr << "story: failed: " << e.what() << '\n';
    fs::remove_all(work);
    return 1;
  }
  return 0;
}
