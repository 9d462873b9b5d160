#pragma once
// ParallelRunner: the embedded runner at parallelism K. K subtasks, each a task thread
// with its own backend, controller and EmbeddedRunner, own the contiguous key-group
// ranges of key_group_range.hpp; a router (the thread that calls run()) reads the source
// and hands every record to the subtask owning its key's group, through a bounded queue.
//
// Time and checkpoints are the job's, as in Flink, where the source emits watermarks and
// checkpoint barriers into every channel: the router counts the source's records,
// computes watermarks exactly as EmbeddedRunner::run() does, and broadcasts each one
// into every queue at the source position where the single runner would emit it. So
// every key sees its records, watermarks and timers in the single runner's order, and a
// function whose output per key depends only on those gives the single runner's output.
// Each key's outputs come in order; outputs of different keys interleave as the
// subtasks run.
//
// Checkpoints are aligned: the router puts a barrier into every queue and routes nothing
// more until every subtask has drained up to it and produced its part, so all parts are
// taken at one source position and the outputs before it are exactly the first
// `outputs` the sink received. A ParallelCheckpoint holds the job's position and one
// part per subtask with its key-group range.
//
// Rescaling. restore() at K' gives every new subtask the key groups of its new range,
// taken from whichever old parts hold them (entries and timers carry their key bytes,
// so each one's key group is computed). Where a rescale moves state depends on where it
// lives (StatePlacement):
//   PerSubtask  each subtask's backend holds its key groups only (memory, RocksDB): the
//               parts carry the state, and a rescale moves key-group ranges.
//   Shared      every subtask reaches one store addressed by key group (Redis, Redis
//               Cluster): the parts carry timers and positions only, and a rescale moves
//               no state; each new subtask just owns its new range of the same store.
//               Such a checkpoint is a rescaling point: it restores while the store is as
//               the job left it there, i.e. taken when the job stopped (stop-with-
//               checkpoint, ParallelRunnerOptions::checkpointOnStop), as Flink rescales
//               through a stop-with-savepoint.
//
// Lightweight checkpoints (RunnerOptions::lightweightCheckpoints) apply to Shared stores
// whose backends have them enabled (lightweight_checkpoint.hpp). At a barrier every
// subtask drains, then waits until all have drained, and only then commits through its
// own connection: the first commit makes the store's checkpoint (every subtask's writes
// up to the barrier, none after), the others delete their own pre-images and open the
// same next epoch, so all parts name one checkpoint id (checked). Restoring such a
// checkpoint, at any parallelism, rolls the store back to that id (every connection
// does; the first undoes the writes) and hands each subtask the timers of its new key
// groups: any checkpoint is then a rescaling point, and none moves state. PerSubtask
// state travels in the parts, so there checkpoints stay full snapshots.

#include <asyncstate/function.hpp>
#include <asyncstate/key_group_range.hpp>
#include <asyncstate/lightweight_checkpoint.hpp>
#include <asyncstate/runner.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/serializer.hpp>
#include <asyncstate/state_backend.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

namespace asyncstate {

enum class StatePlacement : std::uint8_t {
  PerSubtask,  // each subtask's backend holds its own key groups: a rescale moves key-group ranges
  Shared,      // all subtasks share one store addressed by key group: a rescale moves nothing
};

inline const char* toString(StatePlacement placement) {
  return placement == StatePlacement::Shared ? "shared" : "per-subtask";
}

// What a backend factory is told about the subtask it makes a backend for.
struct Subtask {
  std::uint32_t index = 0;
  std::uint32_t parallelism = 1;
  KeyGroupRange keyGroups;
};

// A checkpoint of a parallel job: its position in the source and, per subtask, the
// key-group range it owned and its part (state, for PerSubtask placement, plus timers).
struct ParallelCheckpoint {
  struct Part {
    KeyGroupRange keyGroups;
    Savepoint savepoint;
  };

  StatePlacement placement = StatePlacement::PerSubtask;
  std::uint64_t sourcePosition = 0;
  std::int64_t watermark = std::numeric_limits<std::int64_t>::min();
  std::int64_t maxTimestamp = 0;
  std::uint64_t outputs = 0;  // emitted before the checkpoint, by all subtasks together
  std::uint64_t records = 0;
  std::uint64_t sinceWatermark = 0;
  std::uint64_t sinceCheckpoint = 0;
  bool idleWatermarkDone = false;
  std::vector<Part> parts;

  std::uint32_t parallelism() const noexcept { return static_cast<std::uint32_t>(parts.size()); }

  // The whole checkpoint as one Savepoint (versioned and checksummed; parts nested in
  // its metadata), to be written with Savepoint::writeFile and read back with fromSavepoint.
  Savepoint toSavepoint() const {
    Savepoint out;
    auto& meta = out.metadata();
    meta["parallel.placement"] = encode(static_cast<std::uint8_t>(placement));
    meta["parallel.sourcePosition"] = encode(sourcePosition);
    meta["parallel.watermark"] = encode(watermark);
    meta["parallel.maxTimestamp"] = encode(maxTimestamp);
    meta["parallel.outputs"] = encode(outputs);
    meta["parallel.records"] = encode(records);
    meta["parallel.sinceWatermark"] = encode(sinceWatermark);
    meta["parallel.sinceCheckpoint"] = encode(sinceCheckpoint);
    meta["parallel.idleWatermarkDone"] = encode(idleWatermarkDone);
    meta["parallel.parts"] = encode(static_cast<std::uint32_t>(parts.size()));
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const std::string prefix = "parallel.part." + std::to_string(i) + ".";
      meta[prefix + "keyGroups"] =
          encode(std::pair<std::uint32_t, std::uint32_t>(parts[i].keyGroups.first, parts[i].keyGroups.last));
      meta[prefix + "savepoint"] = parts[i].savepoint.serialize();
    }
    return out;
  }

  static ParallelCheckpoint fromSavepoint(const Savepoint& in) {
    const auto& meta = in.metadata();
    auto field = [&](const std::string& name) -> const std::string& {
      auto it = meta.find(name);
      if (it == meta.end()) throw CorruptSavepointError("parallel checkpoint lacks field '" + name + "'");
      return it->second;
    };
    try {
      ParallelCheckpoint cp;
      const auto placement = decode<std::uint8_t>(field("parallel.placement"));
      if (placement > static_cast<std::uint8_t>(StatePlacement::Shared))
        throw CorruptSavepointError("parallel checkpoint has unknown state placement " + std::to_string(placement));
      cp.placement = static_cast<StatePlacement>(placement);
      cp.sourcePosition = decode<std::uint64_t>(field("parallel.sourcePosition"));
      cp.watermark = decode<std::int64_t>(field("parallel.watermark"));
      cp.maxTimestamp = decode<std::int64_t>(field("parallel.maxTimestamp"));
      cp.outputs = decode<std::uint64_t>(field("parallel.outputs"));
      cp.records = decode<std::uint64_t>(field("parallel.records"));
      cp.sinceWatermark = decode<std::uint64_t>(field("parallel.sinceWatermark"));
      cp.sinceCheckpoint = decode<std::uint64_t>(field("parallel.sinceCheckpoint"));
      cp.idleWatermarkDone = decode<bool>(field("parallel.idleWatermarkDone"));
      const auto count = decode<std::uint32_t>(field("parallel.parts"));
      if (count > kMaxKeyGroups)
        throw CorruptSavepointError("parallel checkpoint claims " + std::to_string(count) + " parts");
      for (std::uint32_t i = 0; i < count; ++i) {
        const std::string prefix = "parallel.part." + std::to_string(i) + ".";
        const auto range = decode<std::pair<std::uint32_t, std::uint32_t>>(field(prefix + "keyGroups"));
        cp.parts.push_back({{range.first, range.second}, Savepoint::parse(field(prefix + "savepoint"))});
      }
      return cp;
    } catch (const SerializationError& e) {
      throw CorruptSavepointError(std::string("malformed parallel checkpoint: ") + e.what());
    }
  }
};

struct ParallelRunnerOptions {
  std::uint32_t parallelism = 1;
  StatePlacement placement = StatePlacement::PerSubtask;
  // Each subtask's runner and controller options. watermarkEvery, maxOutOfOrderness,
  // checkpointEvery, stopAfter and idleWait apply to the job: they count the source's
  // records. onWatermark runs on every subtask's thread; onCheckpoint and
  // onWatermarkStatus are not used (see onCheckpoint below).
  RunnerOptions runner;
  std::size_t queueCapacity = 1024;  // records per subtask queue before the router waits
  // When run() stops after runner.stopAfter records, it first takes a checkpoint there
  // (Flink's stop-with-savepoint): the way to rescale a job whose state is Shared.
  bool checkpointOnStop = false;
  std::function<void(const ParallelCheckpoint&)> onCheckpoint;  // on the router's thread
};

template <class K, class In, class Out>
class ParallelRunner {
 public:
  using Function = KeyedProcessFunction<K, In, Out>;
  using BackendFactory = std::function<std::unique_ptr<StateBackend>(const Subtask&)>;
  using FunctionFactory = std::function<std::unique_ptr<Function>()>;

  ParallelRunner(const BackendFactory& makeBackend, const FunctionFactory& makeFunction,
                 std::function<K(const In&)> keyOf, std::function<std::int64_t(const In&)> timestampOf,
                 ParallelRunnerOptions options = {})
      : keyOf_(std::move(keyOf)), timestampOf_(std::move(timestampOf)), options_(std::move(options)) {
    requireValidParallelism(options_.parallelism);
    RunnerOptions subtaskOptions = options_.runner;
    subtaskOptions.onCheckpoint = nullptr;
    subtaskOptions.onWatermarkStatus = nullptr;
    // A part without state could not move a PerSubtask key group to its new owner.
    if (options_.placement == StatePlacement::PerSubtask) subtaskOptions.lightweightCheckpoints = false;
    for (std::uint32_t i = 0; i < options_.parallelism; ++i) {
      const Subtask subtask{i, options_.parallelism, keyGroupRangeOf(i, options_.parallelism)};
      subtasks_.push_back(std::make_unique<SubtaskRunner>(subtask, makeBackend(subtask), makeFunction(),
                                                          options_.placement, keyOf_, timestampOf_, subtaskOptions,
                                                          [this] { awaitEverySubtaskDrained(); }));
    }
    if (subtaskOptions.lightweightCheckpoints) {
      lightweight_ = subtasks_.front()->view->lightweightCheckpointsEnabled();
      for (const auto& subtask : subtasks_) {
        if (subtask->view->lightweightCheckpointsEnabled() != lightweight_) {
          throw std::invalid_argument("parallel runner: the backends of subtasks 0 and " +
                                      std::to_string(subtask->subtask.index) +
                                      " disagree on lightweight checkpoints; the factory must configure them alike");
        }
      }
    }
  }

  ParallelRunner(const ParallelRunner&) = delete;
  ParallelRunner& operator=(const ParallelRunner&) = delete;

  std::uint32_t parallelism() const noexcept { return options_.parallelism; }
  const Subtask& subtask(std::uint32_t index) const { return subtasks_.at(index)->subtask; }

  // Restores a checkpoint taken at any parallelism: every subtask gets the state (for
  // PerSubtask placement) and timers of the key groups it now owns; the source is sought
  // to the checkpoint's position. Validated first: a checkpoint whose parts do not cover
  // every key group exactly once, or whose placement differs, is refused before any
  // subtask is touched. Returns how many outputs the checkpoint had emitted.
  std::uint64_t restore(const ParallelCheckpoint& checkpoint, Source<In>& source) {
    if (checkpoint.placement != options_.placement) {
      throw std::invalid_argument(std::string("parallel checkpoint: taken with ") + toString(checkpoint.placement) +
                                  " state, but this job's state is " + toString(options_.placement) +
                                  "; nothing was restored");
    }
    requireCoverage(checkpoint);
    const std::optional<std::string> lightweightId = lightweightIdOf(checkpoint);
    if (lightweightId && !lightweight_) {
      throw std::invalid_argument("parallel checkpoint: it is lightweight checkpoint " + *lightweightId +
                                  " of the shared store, but this job's backends have no lightweight checkpoints "
                                  "enabled (RunnerOptions::lightweightCheckpoints and the backend's option); "
                                  "nothing was restored");
    }
    std::vector<Savepoint> inputs;
    for (const auto& subtask : subtasks_) {
      inputs.push_back(cut(checkpoint, subtask->subtask.keyGroups));
      if (lightweightId) inputs.back().metadata()[kLightweightCheckpointField] = *lightweightId;
    }
    for (std::size_t i = 0; i < subtasks_.size(); ++i) subtasks_[i]->runner.restore(inputs[i]);
    source.seek(checkpoint.sourcePosition);
    watermark_ = checkpoint.watermark;
    maxTimestamp_ = checkpoint.maxTimestamp;
    committedOutputs_ = checkpoint.outputs;
    records_ = checkpoint.records;
    sinceWatermark_ = checkpoint.sinceWatermark;
    sinceCheckpoint_ = checkpoint.sinceCheckpoint;
    idleWatermarkDone_ = checkpoint.idleWatermarkDone;
    return checkpoint.outputs;
  }

  // Runs the source to its end (or runner.stopAfter records); outputs go to `sink`, which
  // subtasks call one at a time. A failure in any subtask stops the job and is rethrown here.
  RunStats run(Source<In>& source, Collector<Out>& sink) {
    LockedCollector locked(sink);
    const auto started = std::chrono::steady_clock::now();
    std::uint64_t thisRun = 0;
    try {
      for (auto& subtask : subtasks_) {
        subtask->runner.attach(locked);
        subtask->thread = std::thread([this, s = subtask.get()] { subtaskLoop(*s); });
      }
      route(source, thisRun);
    } catch (...) {
      abort(std::current_exception());
    }
    for (auto& subtask : subtasks_) {
      if (subtask->thread.joinable()) subtask->thread.join();
    }
    if (failure_) std::rethrow_exception(failure_);
    RunStats s;
    s.records = thisRun;
    s.outputs = outputs();
    s.checkpoints = checkpoints_;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    s.recordsPerSecond = s.seconds > 0 ? static_cast<double>(thisRun) / s.seconds : 0;
    return s;
  }

  // Outputs emitted since the job began (across restores); read it while run() is not running.
  std::uint64_t outputs() const {
    std::uint64_t n = committedOutputs_;
    for (const auto& subtask : subtasks_) n += subtask->runner.outputs();
    return n;
  }

 private:
  struct Watermark {
    std::int64_t value;
  };
  struct Barrier {
    std::uint64_t position;
  };
  struct Finish {};  // end of input: the final watermark fires every timer
  struct Stop {};    // stopped early: drain, no final watermark
  using Message = std::variant<In, Watermark, Barrier, Finish, Stop>;

  class LockedCollector final : public Collector<Out> {
   public:
    explicit LockedCollector(Collector<Out>& sink) : sink_(sink) {}
    void collect(Out value) override {
      std::lock_guard lock(mutex_);
      sink_.collect(std::move(value));
    }

   private:
    Collector<Out>& sink_;
    std::mutex mutex_;
  };

  // A Shared store seen by one subtask: its state belongs to the job, not to the
  // subtask, so a part neither copies it nor replaces it. Lightweight checkpoints go to
  // the store, a commit only once every subtask drained to the barrier.
  class SharedStoreView final : public StateBackend, public LightweightCheckpoints {
   public:
    SharedStoreView(StateBackend& store, std::function<void()> awaitEverySubtaskDrained)
        : store_(store),
          lightweight_(dynamic_cast<LightweightCheckpoints*>(&store)),
          awaitEverySubtaskDrained_(std::move(awaitEverySubtaskDrained)) {}
    std::string name() const override { return store_.name(); }
    std::uint32_t registerState(const std::string& n, StateKind kind) override { return store_.registerState(n, kind); }
    void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
      store_.executeBatch(std::move(batch), sink);
    }
    void poll() override { store_.poll(); }
    void snapshot(Savepoint&) override {}
    void restore(const Savepoint&) override {}
    std::string describeConfiguration() const override {
      return store_.describeConfiguration() + ", shared by subtasks";
    }
    std::size_t preferredBatchSize() const override { return store_.preferredBatchSize(); }
    BackendStats stats() const override { return store_.stats(); }

    bool lightweightCheckpointsEnabled() const override {
      return lightweight_ != nullptr && lightweight_->lightweightCheckpointsEnabled();
    }
    std::uint64_t commitCheckpoint(const std::map<std::string, std::string>& metadata) override {
      // Committed before another subtask drained, the checkpoint would hold half of that
      // subtask's records, and its pre-images of them would be gone.
      awaitEverySubtaskDrained_();
      return lightweight().commitCheckpoint(metadata);
    }
    LightweightCheckpoint lastCheckpoint() override { return lightweight().lastCheckpoint(); }
    std::vector<LightweightCheckpoint> retainedCheckpoints() override { return lightweight().retainedCheckpoints(); }
    void rollBackTo(std::uint64_t id) override { lightweight().rollBackTo(id); }

   private:
    LightweightCheckpoints& lightweight() {
      if (!lightweightCheckpointsEnabled())
        throw std::logic_error("backend " + store_.name() + " has no lightweight checkpoints enabled");
      return *lightweight_;
    }

    StateBackend& store_;
    LightweightCheckpoints* lightweight_;
    std::function<void()> awaitEverySubtaskDrained_;
  };

  struct SubtaskRunner {
    SubtaskRunner(const Subtask& s, std::unique_ptr<StateBackend> b, std::unique_ptr<Function> f,
                  StatePlacement placement, std::function<K(const In&)> keyOf,
                  std::function<std::int64_t(const In&)> timestampOf, const RunnerOptions& options,
                  std::function<void()> awaitEverySubtaskDrained)
        : subtask(s),
          backend(std::move(b)),
          view(placement == StatePlacement::Shared
                   ? std::make_unique<SharedStoreView>(*backend, std::move(awaitEverySubtaskDrained))
                   : nullptr),
          function(std::move(f)),
          runner(view ? *view : *backend, *function, std::move(keyOf), std::move(timestampOf), options) {}

    Subtask subtask;
    std::unique_ptr<StateBackend> backend;
    std::unique_ptr<SharedStoreView> view;
    std::unique_ptr<Function> function;
    EmbeddedRunner<K, In, Out> runner;
    std::thread thread;
    std::deque<Message> queue;  // guarded by the job's mutex_
  };

  // Every old part overlapping `range`, cut to it; its runner fields are the job's.
  Savepoint cut(const ParallelCheckpoint& checkpoint, const KeyGroupRange& range) const {
    Savepoint out;
    std::vector<std::pair<std::int64_t, std::string>> timers;
    for (const auto& part : checkpoint.parts) {
      for (const auto& [name, state] : part.savepoint.states()) out.declare(name, state.kind);
      if (!part.keyGroups.overlaps(range)) continue;
      for (const auto& [name, state] : part.savepoint.states()) {
        for (const SavepointEntry& e : state.entries) {
          if (range.contains(keyGroupOf(e.key))) out.add(name, state.kind, e.key, e.userKey, e.value);
        }
      }
      for (auto& timer : partTimers(part)) {
        if (range.contains(keyGroupOf(timer.second))) timers.push_back(std::move(timer));
      }
    }
    auto& meta = out.metadata();
    meta["source.position"] = encode(checkpoint.sourcePosition);
    meta["watermark"] = encode(checkpoint.watermark);
    meta["maxTimestamp"] = encode(checkpoint.maxTimestamp);
    meta["outputs"] = encode(std::uint64_t{0});  // the job counts what came before
    meta["records"] = encode(std::uint64_t{0});
    meta["timers"] = encode(timers);
    meta["schedule.sinceWatermark"] = encode(std::uint64_t{0});  // the router keeps the schedule
    meta["schedule.sinceCheckpoint"] = encode(std::uint64_t{0});
    meta["schedule.idleWatermarkDone"] = encode(false);
    meta["watermarkStatus"] = encode(static_cast<std::uint8_t>(WatermarkStatus::Active));
    return out;
  }

  // The store checkpoint a lightweight parallel checkpoint names (every part names the
  // same one), or nullopt for a full one. Anything between is refused.
  static std::optional<std::string> lightweightIdOf(const ParallelCheckpoint& checkpoint) {
    std::optional<std::string> id;
    std::size_t parts = 0;
    for (const auto& part : checkpoint.parts) {
      const auto it = part.savepoint.metadata().find(kLightweightCheckpointField);
      if (it == part.savepoint.metadata().end()) continue;
      ++parts;
      if (id && *id != it->second) {
        throw CorruptSavepointError("parallel checkpoint: its parts name different lightweight checkpoints (" + *id +
                                    " and " + it->second + "); nothing was restored");
      }
      id = it->second;
    }
    if (id && (parts != checkpoint.parts.size() || checkpoint.placement != StatePlacement::Shared)) {
      throw CorruptSavepointError("parallel checkpoint: lightweight checkpoint " + *id +
                                  " must be named by every part of a shared store's checkpoint; nothing was restored");
    }
    return id;
  }

  static std::vector<std::pair<std::int64_t, std::string>> partTimers(const ParallelCheckpoint::Part& part) {
    auto it = part.savepoint.metadata().find("timers");
    if (it == part.savepoint.metadata().end())
      throw CorruptSavepointError("parallel checkpoint: the part of key groups " + part.keyGroups.toString() +
                                  " lacks its timers");
    try {
      return decode<std::vector<std::pair<std::int64_t, std::string>>>(it->second);
    } catch (const SerializationError& e) {
      throw CorruptSavepointError("parallel checkpoint: the timers of key groups " + part.keyGroups.toString() +
                                  " are malformed: " + e.what());
    }
  }

  // An entry of `part` outside `range`, described; none: nullopt.
  static std::optional<std::string> strayEntry(const Savepoint& part, const KeyGroupRange& range) {
    for (const auto& [name, state] : part.states()) {
      for (const SavepointEntry& e : state.entries) {
        if (!range.contains(keyGroupOf(e.key)))
          return "an entry of state '" + name + "' in key group " + std::to_string(keyGroupOf(e.key));
      }
    }
    return std::nullopt;
  }

  // The parts' ranges must tile [0, kMaxKeyGroups) and hold only their own key groups:
  // anything else would lose state or restore it twice.
  static void requireCoverage(const ParallelCheckpoint& checkpoint) {
    const std::string refused = "; nothing was restored";
    if (checkpoint.parts.empty()) throw CorruptSavepointError("parallel checkpoint has no parts" + refused);
    std::vector<const ParallelCheckpoint::Part*> parts;
    parts.reserve(checkpoint.parts.size());
    for (const auto& part : checkpoint.parts) parts.push_back(&part);
    std::sort(parts.begin(), parts.end(), [](auto* a, auto* b) { return a->keyGroups.first < b->keyGroups.first; });
    std::uint32_t next = 0;
    for (const auto* part : parts) {
      const KeyGroupRange& r = part->keyGroups;
      if (r.first > r.last || r.last >= kMaxKeyGroups)
        throw CorruptSavepointError("parallel checkpoint: part " + r.toString() + " is not a key-group range" +
                                    refused);
      if (r.first < next)
        throw CorruptSavepointError("parallel checkpoint: parts overlap at key group " + std::to_string(r.first) +
                                    refused);
      if (r.first > next)
        throw CorruptSavepointError("parallel checkpoint: no part holds key groups [" + std::to_string(next) + ", " +
                                    std::to_string(r.first - 1) + "]" + refused);
      next = r.last + 1;
      if (auto stray = strayEntry(part->savepoint, r)) {
        throw CorruptSavepointError("parallel checkpoint: the part of key groups " + r.toString() + " holds " + *stray +
                                    refused);
      }
      partTimers(*part);
    }
    if (next != kMaxKeyGroups)
      throw CorruptSavepointError("parallel checkpoint: no part holds key groups [" + std::to_string(next) + ", " +
                                  std::to_string(kMaxKeyGroups - 1) + "]" + refused);
  }

  // The router: the single runner's loop, with records routed and time broadcast.
  void route(Source<In>& source, std::uint64_t& thisRun) {
    const RunnerOptions& o = options_.runner;
    while (!source.finished()) {
      if (failed()) return;
      std::optional<In> element = source.next();
      if (!element) {
        if (!idleWatermarkDone_ && sinceWatermark_ > 0) {
          advanceWatermark(maxTimestamp_ - o.maxOutOfOrderness);
          sinceWatermark_ = 0;
          idleWatermarkDone_ = true;
        }
        std::this_thread::sleep_for(o.idleWait);  // nothing to poll here: the subtasks poll their controllers
        continue;
      }
      idleWatermarkDone_ = false;
      maxTimestamp_ = std::max(maxTimestamp_, timestampOf_(*element));
      const std::uint32_t target = subtaskOfKeyGroup(keyGroupOf(encode(keyOf_(*element))), options_.parallelism);
      send(*subtasks_[target], Message(std::in_place_index<0>, std::move(*element)));
      ++records_;
      ++thisRun;
      if (o.watermarkEvery > 0 && ++sinceWatermark_ >= o.watermarkEvery) {
        advanceWatermark(maxTimestamp_ - o.maxOutOfOrderness);
        sinceWatermark_ = 0;
      }
      if (o.checkpointEvery > 0 && ++sinceCheckpoint_ >= o.checkpointEvery) {
        sinceCheckpoint_ = 0;
        checkpoint(source.position());
      }
      if (o.stopAfter > 0 && thisRun >= o.stopAfter) {
        if (options_.checkpointOnStop) checkpoint(source.position());
        broadcast(Stop{});
        return;
      }
    }
    broadcast(Finish{});
  }

  // As EmbeddedRunner's: a watermark that does not advance is not emitted. By the next
  // barrier every subtask has applied it, so it is the checkpoint's watermark.
  void advanceWatermark(std::int64_t watermark) {
    if (watermark <= watermark_) return;
    watermark_ = watermark;
    broadcast(Watermark{watermark});
  }

  void broadcast(const Message& message) {
    for (auto& subtask : subtasks_) send(*subtask, message);
  }

  void send(SubtaskRunner& subtask, Message message) {
    std::unique_lock lock(mutex_);
    spaceOrFailure_.wait(lock, [&] { return failure_ || subtask.queue.size() < options_.queueCapacity; });
    if (failure_) return;  // run() rethrows it once the subtasks stopped
    const bool wasEmpty = subtask.queue.empty();
    subtask.queue.push_back(std::move(message));
    if (wasEmpty) messages_.notify_all();
  }

  // Aligned: every subtask drains to the barrier and hands in its part before the router
  // routes anything after it.
  void checkpoint(std::uint64_t position) {
    {
      std::lock_guard lock(mutex_);
      parts_.assign(subtasks_.size(), std::nullopt);
    }
    broadcast(Barrier{position});
    std::unique_lock lock(mutex_);
    partsOrFailure_.wait(lock, [&] {
      return failure_ || std::all_of(parts_.begin(), parts_.end(), [](const auto& p) { return p.has_value(); });
    });
    if (failure_) return;
    ParallelCheckpoint cp;
    cp.placement = options_.placement;
    cp.sourcePosition = position;
    cp.watermark = watermark_;
    cp.maxTimestamp = maxTimestamp_;
    cp.records = records_;
    cp.sinceWatermark = sinceWatermark_;
    cp.sinceCheckpoint = sinceCheckpoint_;
    cp.idleWatermarkDone = idleWatermarkDone_;
    cp.outputs = committedOutputs_;
    for (std::size_t i = 0; i < subtasks_.size(); ++i) {
      // A store every subtask sees whole (Redis) run as PerSubtask would be restored
      // over itself K times: refuse it here, before such a checkpoint exists.
      if (auto stray = strayEntry(*parts_[i], subtasks_[i]->subtask.keyGroups)) {
        lock.unlock();
        throw std::logic_error("parallel checkpoint: the backend of subtask " + std::to_string(i) + " (key groups " +
                               subtasks_[i]->subtask.keyGroups.toString() + ") holds " + *stray +
                               ": its store is shared by the subtasks, so the job needs StatePlacement::Shared");
      }
      cp.outputs += decode<std::uint64_t>(parts_[i]->metadata().at("outputs"));
      cp.parts.push_back({subtasks_[i]->subtask.keyGroups, std::move(*parts_[i])});
    }
    lock.unlock();
    try {
      lightweightIdOf(cp);
    } catch (const CorruptSavepointError& e) {
      throw std::logic_error(std::string(e.what()) +
                             ": the subtasks' backends do not share one store, so the job needs StatePlacement::"
                             "PerSubtask");
    }
    ++checkpoints_;
    if (options_.onCheckpoint) options_.onCheckpoint(cp);
  }

  // Called by each subtask's store view before it commits a lightweight checkpoint (the
  // subtask has drained to the barrier): returns once every subtask did the same.
  void awaitEverySubtaskDrained() {
    std::unique_lock lock(mutex_);
    const std::uint64_t round = drainedRound_;
    if (++drained_ == subtasks_.size()) {
      drained_ = 0;
      ++drainedRound_;
      everySubtaskDrained_.notify_all();
      return;
    }
    everySubtaskDrained_.wait(lock, [&] { return failure_ || drainedRound_ != round; });
    if (drainedRound_ == round) throw std::runtime_error("parallel checkpoint abandoned: the job failed");
  }

  bool failed() {
    std::lock_guard lock(mutex_);
    return failure_ != nullptr;
  }

  void abort(std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      if (!failure_) failure_ = std::move(error);
    }
    spaceOrFailure_.notify_all();
    partsOrFailure_.notify_all();
    messages_.notify_all();
    everySubtaskDrained_.notify_all();
  }

  void subtaskLoop(SubtaskRunner& s) {
    try {
      while (true) {
        std::deque<Message> batch;
        {
          std::unique_lock lock(mutex_);
          // Waits briefly only: records in flight need the controller polled.
          messages_.wait_for(lock, std::chrono::milliseconds(1), [&] { return failure_ || !s.queue.empty(); });
          if (failure_) return;
          batch.swap(s.queue);
        }
        spaceOrFailure_.notify_all();
        if (batch.empty()) {
          s.runner.controller().poll();
          continue;
        }
        for (Message& message : batch) {
          if (auto* element = std::get_if<In>(&message)) {
            s.runner.process(std::move(*element));
          } else if (auto* watermark = std::get_if<Watermark>(&message)) {
            s.runner.advanceWatermarkTo(watermark->value);
          } else if (auto* barrier = std::get_if<Barrier>(&message)) {
            Savepoint part = s.runner.checkpoint(barrier->position);
            std::lock_guard lock(mutex_);
            parts_[s.subtask.index] = std::move(part);
            partsOrFailure_.notify_all();
          } else if (std::holds_alternative<Finish>(message)) {
            s.runner.finishInput();
            return;
          } else {
            s.runner.controller().drain();
            return;
          }
        }
      }
    } catch (...) {
      abort(std::current_exception());
    }
  }

  std::function<K(const In&)> keyOf_;
  std::function<std::int64_t(const In&)> timestampOf_;
  ParallelRunnerOptions options_;
  std::vector<std::unique_ptr<SubtaskRunner>> subtasks_;
  bool lightweight_ = false;  // Shared store with lightweight checkpoints

  std::mutex mutex_;
  std::condition_variable messages_;             // a queue got a message, or the job failed
  std::condition_variable spaceOrFailure_;       // a queue has room, or the job failed
  std::condition_variable partsOrFailure_;       // a checkpoint part arrived, or the job failed
  std::condition_variable everySubtaskDrained_;  // a round of awaitEverySubtaskDrained() completed, or the job failed
  std::size_t drained_ = 0;                      // subtasks waiting in this round
  std::uint64_t drainedRound_ = 0;
  std::vector<std::optional<Savepoint>> parts_;
  std::exception_ptr failure_;

  // The job's position and schedule, kept by the router.
  std::int64_t watermark_ = TimerService::kNoWatermark;
  std::int64_t maxTimestamp_ = std::numeric_limits<std::int64_t>::min() / 2;
  std::uint64_t committedOutputs_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t sinceWatermark_ = 0;
  std::uint64_t sinceCheckpoint_ = 0;
  bool idleWatermarkDone_ = false;
  std::uint64_t checkpoints_ = 0;
};

}  // namespace asyncstate
