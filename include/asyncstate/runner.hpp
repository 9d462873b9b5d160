#pragma once
// EmbeddedRunner: source -> key-by -> KeyedProcessFunction -> sink on one machine,
// with periodic watermarks (which fire event-time timers) and checkpoints. Watermarks
// and watermark status changes are non-records (epoch_manager.hpp): their actions follow
// every earlier record's last continuation. A checkpoint drains the controller first, so
// a snapshot never holds half of a record's updates.

#include <asyncstate/controller.hpp>
#include <asyncstate/function.hpp>
#include <asyncstate/lightweight_checkpoint.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate {

// A replayable source: position() is saved in checkpoints and seek() replays from it.
template <class T>
class Source {
 public:
  virtual ~Source() = default;
  virtual std::optional<T> next() = 0;  // nullopt: nothing available right now
  virtual bool finished() const = 0;    // no element will ever come again
  virtual std::uint64_t position() const = 0;
  virtual void seek(std::uint64_t position) = 0;
};

template <class T>
class VectorSource final : public Source<T> {
 public:
  explicit VectorSource(std::vector<T> elements) : elements_(std::move(elements)) {}
  std::optional<T> next() override {
    if (position_ >= elements_.size()) return std::nullopt;
    return elements_[position_++];
  }
  bool finished() const override { return position_ >= elements_.size(); }
  std::uint64_t position() const override { return position_; }
  void seek(std::uint64_t position) override { position_ = std::min<std::uint64_t>(position, elements_.size()); }

 private:
  std::vector<T> elements_;
  std::uint64_t position_ = 0;
};

template <class T>
class VectorCollector final : public Collector<T> {
 public:
  void collect(T value) override { values.push_back(std::move(value)); }
  std::vector<T> values;
};

// Whether the source is producing (Flink's WatermarkStatus): while it is idle, downstream
// operators need not wait for its watermarks.
enum class WatermarkStatus : std::uint8_t { Active, Idle };

struct RunnerOptions {
  ControllerOptions controller;
  std::uint64_t watermarkEvery = 1000;                 // records between periodic watermarks
  std::int64_t maxOutOfOrderness = 0;                  // watermark = max timestamp seen - this
  std::uint64_t checkpointEvery = 0;                   // records between checkpoints; 0: none
  std::uint64_t stopAfter = 0;                         // stop (as if killed) after this many records; 0: run to the end
  std::chrono::milliseconds idleWait{5};               // how long to wait for completions when the source is idle
  std::uint64_t progressEvery = 0;                     // records between progress callbacks; 0: none
  std::function<void(std::int64_t)> onWatermark;       // after the watermark passed every earlier record
  std::function<void(const Savepoint&)> onCheckpoint;  // a consistent snapshot was taken
  // The source went idle (after every earlier record finished) or became active again
  // (before its next record runs); called once per change.
  std::function<void(WatermarkStatus)> onWatermarkStatus;
  std::function<void(const struct RunStats&)> onProgress;
  // Whether records after a watermark wait until it took effect (Serial, deterministic)
  // or may run while its timers fire (Parallel); see docs/runtime.md#epochs.
  EpochMode epochMode = EpochMode::Serial;
  // Checkpoints commit the backend's lightweight checkpoint (lightweight_checkpoint.hpp)
  // instead of copying the state into a savepoint, when the backend has them enabled;
  // otherwise they stay full snapshots. recover() resumes from the last one.
  bool lightweightCheckpoints = false;
};

struct RunStats {
  std::uint64_t records = 0;
  std::uint64_t outputs = 0;
  std::uint64_t watermarks = 0;
  std::uint64_t checkpoints = 0;
  double seconds = 0;
  double recordsPerSecond = 0;
  double latencyP50Micros = 0;
  double latencyP99Micros = 0;
  ControllerMetrics controller;
};

template <class K, class In, class Out>
class EmbeddedRunner {
 public:
  using Function = KeyedProcessFunction<K, In, Out>;

  EmbeddedRunner(StateBackend& backend, Function& function, std::function<K(const In&)> keyOf,
                 std::function<std::int64_t(const In&)> timestampOf, RunnerOptions options = {})
      : backend_(backend),
        function_(function),
        keyOf_(std::move(keyOf)),
        timestampOf_(std::move(timestampOf)),
        options_(std::move(options)),
        controller_(backend, options_.controller),
        runtimeContext_(controller_, timers_),
        context_(controller_, timers_) {
    if (options_.lightweightCheckpoints) {
      auto* lightweight = dynamic_cast<LightweightCheckpoints*>(&backend_);
      if (lightweight != nullptr && lightweight->lightweightCheckpointsEnabled()) lightweight_ = lightweight;
    }
    function_.open(runtimeContext_);
  }

  // Finishes in-flight work while the states it uses still exist; outputs produced now
  // are dropped (the sink of an aborted run() may be gone). Failures are logged.
  ~EmbeddedRunner() {
    collector_.detach();
    try {
      controller_.drain();
    } catch (const AsyncStateException& e) {
      for (const AsyncError& error : e.errors()) logFailure(error.message());
    } catch (const std::exception& e) {
      logFailure(e.what());
    }
    // A drain that could not finish (a stalled backend) left work whose continuations
    // use the states: it is given up now, while they exist, and not by the controller's
    // destructor after they are gone.
    controller_.giveUpUnfinished("the runner was destroyed");
    function_.close();
  }

  EmbeddedRunner(const EmbeddedRunner&) = delete;
  EmbeddedRunner& operator=(const EmbeddedRunner&) = delete;

  AsyncExecutionController& controller() noexcept { return controller_; }
  TimerService& timers() noexcept { return timers_; }

  // Restores state, timers, watermark and the source position from a checkpoint.
  // Returns how many outputs the checkpoint had already emitted (an exactly-once
  // sink keeps those and drops anything emitted after the checkpoint).
  std::uint64_t restore(const Savepoint& checkpoint, Source<In>& source) {
    const std::uint64_t outputs = restore(checkpoint);
    source.seek(decode<std::uint64_t>(checkpoint.metadata().at("source.position")));  // validated by restore()
    return outputs;
  }

  // As above, for a caller that positions the source itself (ParallelRunner's subtasks
  // read no source: the job's router does).
  std::uint64_t restore(const Savepoint& checkpoint) {
    const auto started = observedStart();
    const auto& meta = checkpoint.metadata();
    auto field = [&](const char* name) -> const std::string& {
      auto it = meta.find(name);
      if (it == meta.end()) throw CorruptSavepointError(std::string("checkpoint lacks runner field '") + name + "'");
      return it->second;
    };
    auto malformed = [](const char* name, const SerializationError& e) {
      return CorruptSavepointError(std::string("checkpoint runner field '") + name + "' is malformed: " + e.what());
    };
    auto decodeField = [&]<class T>(std::type_identity<T>, const char* name) {
      const std::string& bytes = field(name);
      try {
        return decode<T>(bytes);
      } catch (const SerializationError& e) {
        throw malformed(name, e);
      }
    };
    using U64 = std::type_identity<std::uint64_t>;
    using I64 = std::type_identity<std::int64_t>;
    decodeField(U64{}, "source.position");  // checked here; restore(checkpoint, source) seeks to it
    const auto watermark = decodeField(I64{}, "watermark");
    const auto maxTimestamp = decodeField(I64{}, "maxTimestamp");
    const auto outputs = decodeField(U64{}, "outputs");
    const auto records = decodeField(U64{}, "records");
    const auto sinceWatermark = decodeField(U64{}, "schedule.sinceWatermark");
    const auto sinceCheckpoint = decodeField(U64{}, "schedule.sinceCheckpoint");
    const auto idleWatermarkDone = decodeField(std::type_identity<bool>{}, "schedule.idleWatermarkDone");
    const auto status = decodeField(std::type_identity<std::uint8_t>{}, "watermarkStatus");
    if (status > static_cast<std::uint8_t>(WatermarkStatus::Idle))
      throw CorruptSavepointError("checkpoint has unknown watermark status " + std::to_string(status));
    TimerService timers;
    try {
      timers.restoreAll(field("timers"));
    } catch (const SerializationError& e) {
      throw malformed("timers", e);
    }
    std::optional<std::uint64_t> lightweightId;
    if (meta.contains(kLightweightCheckpointId)) lightweightId = decodeField(U64{}, kLightweightCheckpointId);
    // Validated above: nothing is touched if a field is missing or corrupt.
    if (lightweightId) {
      lightweightBackend().rollBackTo(*lightweightId);
    } else {
      backend_.restore(checkpoint);
    }
    timers.setWatermark(watermark);
    timers_ = std::move(timers);
    announcedWatermark_ = watermark;
    maxTimestamp_ = maxTimestamp;
    outputs_ = outputs;
    records_ = records;
    sinceWatermark_ = sinceWatermark;
    sinceCheckpoint_ = sinceCheckpoint;
    idleWatermarkDone_ = idleWatermarkDone;
    status_ = static_cast<WatermarkStatus>(status);
    if (started) observer()->restored(elapsedSince(*started), checkpoint);
    return outputs;
  }

  // After a crash: rolls the backend back to its last lightweight checkpoint and resumes
  // from there, like restore() (returns that checkpoint's outputs). With none committed
  // yet it undoes every write and leaves the runner at the start (returns 0).
  std::uint64_t recover(Source<In>& source) {
    LightweightCheckpoints& backend = lightweightBackend();
    LightweightCheckpoint last = backend.lastCheckpoint();
    if (last.id == 0) {
      backend.rollBackTo(0);
      return 0;
    }
    Savepoint checkpoint;
    checkpoint.metadata() = std::move(last.metadata);
    checkpoint.metadata()[kLightweightCheckpointId] = encode(last.id);
    return restore(checkpoint, source);
  }

  RunStats run(Source<In>& source, Collector<Out>& sink) {
    collector_.attach(sink);
    CountingCollector& collector = collector_;
    const auto started = std::chrono::steady_clock::now();
    std::uint64_t thisRun = 0;
    while (!source.finished()) {
      std::optional<In> element = source.next();
      if (!element) {
        // Idle input: keep completing work, and let the watermark catch up once.
        controller_.pollFor(options_.idleWait);
        if (!idleWatermarkDone_ && sinceWatermark_ > 0) {
          advanceWatermark(maxTimestamp_ - options_.maxOutOfOrderness, collector);
          sinceWatermark_ = 0;
          idleWatermarkDone_ = true;
        }
        if (status_ == WatermarkStatus::Active) changeStatus(WatermarkStatus::Idle);
        continue;
      }
      idleWatermarkDone_ = false;
      if (status_ == WatermarkStatus::Idle) changeStatus(WatermarkStatus::Active);
      process(std::move(*element));
      ++thisRun;
      if (options_.watermarkEvery > 0 && ++sinceWatermark_ >= options_.watermarkEvery) {
        advanceWatermark(maxTimestamp_ - options_.maxOutOfOrderness, collector);
        sinceWatermark_ = 0;
      }
      if (options_.checkpointEvery > 0 && ++sinceCheckpoint_ >= options_.checkpointEvery) {
        sinceCheckpoint_ = 0;
        checkpoint(source);
      }
      if (options_.progressEvery > 0 && records_ % options_.progressEvery == 0 && options_.onProgress) {
        options_.onProgress(stats(started, thisRun));
      }
      if (options_.stopAfter > 0 && thisRun >= options_.stopAfter) {
        controller_.drain();  // the records in flight write to `sink`, which the caller may drop
        return stats(started, thisRun);
      }
    }
    finishInput();
    return stats(started, thisRun);
  }

  // Drains, then snapshots the backend together with the runner's own position. With
  // lightweight checkpoints the backend commits instead, and the returned savepoint holds
  // only the runner's position and the checkpoint's id (restore() rolls back to it).
  Savepoint checkpoint(const Source<In>& source) { return checkpoint(source.position()); }

  // Driving the runner without run(), for a caller that reads the source itself and
  // decides when watermarks and checkpoints come (ParallelRunner's subtasks get them
  // from the job's router, in source order). No periodic schedule runs; outputs go to
  // the attached sink.
  void attach(Collector<Out>& sink) noexcept { collector_.attach(sink); }

  // One record, exactly as run() processes it.
  void process(In element) {
    const std::int64_t timestamp = timestampOf_(element);
    maxTimestamp_ = std::max(maxTimestamp_, timestamp);
    K key = keyOf_(element);
    controller_.processRecord(key, ElementTask{this, &collector_, std::move(element)}, timestamp);
    ++records_;
  }

  void advanceWatermarkTo(std::int64_t watermark) { advanceWatermark(watermark, collector_); }

  // End of input: the final watermark fires every remaining timer, then everything drains.
  void finishInput() {
    advanceWatermark(std::numeric_limits<std::int64_t>::max(), collector_);
    controller_.drain();
  }

  std::uint64_t outputs() const noexcept { return outputs_; }

  // As checkpoint(source), with the source position given.
  Savepoint checkpoint(std::uint64_t sourcePosition) {
    const auto started = observedStart();
    controller_.drain();
    Savepoint sp;
    if (lightweight_ == nullptr) backend_.snapshot(sp);
    auto& meta = sp.metadata();
    meta["source.position"] = encode(sourcePosition);
    meta["watermark"] = encode(timers_.currentWatermark());
    meta["maxTimestamp"] = encode(maxTimestamp_);
    meta["outputs"] = encode(outputs_);
    meta["records"] = encode(records_);
    meta["timers"] = timers_.encodeAll();
    meta["schedule.sinceWatermark"] = encode(sinceWatermark_);
    meta["schedule.sinceCheckpoint"] = encode(sinceCheckpoint_);
    meta["schedule.idleWatermarkDone"] = encode(idleWatermarkDone_);
    meta["watermarkStatus"] = encode(static_cast<std::uint8_t>(status_));
    if (lightweight_ != nullptr) {
      const std::uint64_t id = lightweight_->commitCheckpoint(meta);
      meta[kLightweightCheckpointId] = encode(id);
    }
    ++checkpoints_;
    if (started) observer()->checkpointTaken(elapsedSince(*started), sp);
    if (options_.onCheckpoint) options_.onCheckpoint(sp);
    return sp;
  }

 private:
  // Lives as long as the runner, since records still in flight hold a reference to it.
  class CountingCollector final : public Collector<Out> {
   public:
    explicit CountingCollector(std::uint64_t& count) : count_(count) {}
    void attach(Collector<Out>& sink) noexcept { sink_ = &sink; }
    void detach() noexcept { sink_ = nullptr; }
    void collect(Out value) override {
      if (sink_ == nullptr) return;
      ++count_;
      sink_->collect(std::move(value));
    }

   private:
    Collector<Out>* sink_ = nullptr;
    std::uint64_t& count_;
  };

  // One element's processing. Its input is visible to a dead-letter output
  // (FailedRecord::input<In>()), and a retry processes the same element again.
  struct ElementTask {
    EmbeddedRunner* runner;
    Collector<Out>* collector;
    In element;
    void operator()() const { runner->function_.processElement(element, runner->context_, *collector); }
    const In& input() const noexcept { return element; }
  };

  static constexpr const char* kLightweightCheckpointId = kLightweightCheckpointField;

  LightweightCheckpoints& lightweightBackend() {
    auto* lightweight = dynamic_cast<LightweightCheckpoints*>(&backend_);
    if (lightweight == nullptr || !lightweight->lightweightCheckpointsEnabled()) {
      throw std::invalid_argument("backend " + backend_.name() + " has no lightweight checkpoints enabled");
    }
    return *lightweight;
  }

  void logFailure(const std::string& text) const {
    if (options_.controller.log != nullptr)
      *options_.controller.log << "asyncstate: runner shut down with: " << text << '\n';
  }

  // A watermark is a non-record. Its trigger action, once every earlier record finished,
  // makes it current and fires the due timers (each as a record of its key, so per-key
  // order holds), again while those register more due timers; its final action emits
  // it: exactly once per call that advances it.
  void advanceWatermark(std::int64_t watermark, Collector<Out>& collector) {
    if (watermark <= announcedWatermark_) return;
    announcedWatermark_ = watermark;
    // For an observer: how long the watermark waited for the records ahead of it (until
    // its trigger action first ran).
    const auto announced = observedStart();
    controller_.processNonRecord(
        [this, &collector, watermark, announced, first = true]() mutable {
          if (first && announced) watermarkWait_ = elapsedSince(*announced);
          first = false;
          timers_.setWatermark(watermark);
          auto due = timers_.takeDue(watermark);
          for (auto& [timestamp, keyBytes] : due) {
            const std::int64_t ts = timestamp;
            controller_.template processEncodedRecord<K>(
                std::move(keyBytes), [this, &collector, ts] { function_.onTimer(ts, context_, collector); }, ts);
          }
          return !due.empty();
        },
        [this, watermark, announced] {
          ++watermarks_;
          if (announced) observer()->watermarkEmitted(watermark, watermarkWait_);
          if (options_.onWatermark) options_.onWatermark(watermark);
        },
        options_.epochMode);
  }

  // Events are timed by the controller's clock, and only for an observer.
  ExecutionObserver* observer() const noexcept { return options_.controller.observer; }
  std::optional<AsyncExecutionController::TimePoint> observedStart() const {
    if (observer() == nullptr) return std::nullopt;
    return controller_.options().clock();
  }
  std::chrono::nanoseconds elapsedSince(AsyncExecutionController::TimePoint started) const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(controller_.options().clock() - started);
  }

  // A status change is a non-record too: reported after every earlier record finished,
  // and before any later one runs in serial mode.
  void changeStatus(WatermarkStatus status) {
    status_ = status;
    controller_.processNonRecord(
        {},
        [this, status] {
          if (options_.onWatermarkStatus) options_.onWatermarkStatus(status);
        },
        options_.epochMode);
  }

  RunStats stats(std::chrono::steady_clock::time_point started, std::uint64_t records) const {
    RunStats s;
    s.records = records;
    s.outputs = outputs_;
    s.watermarks = watermarks_;
    s.checkpoints = checkpoints_;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    s.recordsPerSecond = s.seconds > 0 ? static_cast<double>(records) / s.seconds : 0;
    s.latencyP50Micros = controller_.recordLatency().percentileMicros(0.50);
    s.latencyP99Micros = controller_.recordLatency().percentileMicros(0.99);
    s.controller = controller_.metrics();
    return s;
  }

  StateBackend& backend_;
  Function& function_;
  std::function<K(const In&)> keyOf_;
  std::function<std::int64_t(const In&)> timestampOf_;
  RunnerOptions options_;
  TimerService timers_;
  AsyncExecutionController controller_;
  RuntimeContext runtimeContext_;
  typename Function::Context context_;
  std::int64_t maxTimestamp_ = std::numeric_limits<std::int64_t>::min() / 2;
  std::uint64_t outputs_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t watermarks_ = 0;
  std::uint64_t checkpoints_ = 0;
  // The last watermark handed to the controller; in parallel mode the timers' current
  // watermark catches up when its epoch's trigger action runs.
  std::int64_t announcedWatermark_ = TimerService::kNoWatermark;
  std::chrono::nanoseconds watermarkWait_{0};  // of the latest watermark, for the observer
  // The periodic schedule is part of the job's position: a restored run emits its next
  // watermark after the same record as the uninterrupted run would have.
  std::uint64_t sinceWatermark_ = 0;
  std::uint64_t sinceCheckpoint_ = 0;
  bool idleWatermarkDone_ = false;
  WatermarkStatus status_ = WatermarkStatus::Active;
  CountingCollector collector_{outputs_};
  LightweightCheckpoints* lightweight_ = nullptr;  // set when checkpoints are lightweight
};

}  // namespace asyncstate
