#pragma once
// AsyncExecutionController: runs records on one task thread. It orchestrates small
// parts, each in its own header:
//   key_accounting.hpp      per-key order (a record whose key has work in flight waits)
//   request_buffer.hpp      batching by size and by buffer timeout
//   ticket_table.hpp        requests sent and not yet answered, and their futures
//   completion_mailbox.hpp  answers from backend threads, outliving the controller
//   error_policy.hpp        what happens to a record whose attempt failed (skip, retry, dead letter)
//   epoch_manager.hpp       non-records (watermarks) and the epochs of records they close
// and owns what ties them together: the in-flight limit with overdraft, waiting and
// stall detection, routing failures to the error handler or the record's error policy,
// metrics, and the Runtime futures report to.
//
// One record from source to sink: processRecord() admits it (admit), it holds its key
// or queues behind it (KeyAccounting::acquire), runs (start), its state requests are
// buffered (submit) and sent (flushBuffer), answers come back through the mailbox and
// settle their futures (pump -> TicketTable::settle), continuations run, and when its
// last reference goes the runtime calls finished() -- the one place a record is done.

#include <asyncstate/completion_mailbox.hpp>
#include <asyncstate/detail/future_core.hpp>
#include <asyncstate/detail/runtime.hpp>
#include <asyncstate/epoch_manager.hpp>
#include <asyncstate/error.hpp>
#include <asyncstate/error_policy.hpp>
#include <asyncstate/execution_observer.hpp>
#include <asyncstate/future.hpp>
#include <asyncstate/hot_keys.hpp>
#include <asyncstate/key_accounting.hpp>
#include <asyncstate/metrics.hpp>
#include <asyncstate/pool.hpp>
#include <asyncstate/promise.hpp>
#include <asyncstate/request_buffer.hpp>
#include <asyncstate/serializer.hpp>
#include <asyncstate/state_backend.hpp>
#include <asyncstate/ticket_table.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace asyncstate {

// The time the controller decides buffer timeouts and stalls by; tests inject their own
// to make those decisions deterministic. Empty: std::chrono::steady_clock.
using ControllerClock = std::function<std::chrono::steady_clock::time_point()>;

// Defaults follow Flink's async state (state.async.batch-size / max-in-flight /
// buffer-timeout); see docs/guide.md for how to choose them.
struct ControllerOptions {
  std::size_t batchSize = 1000;                   // requests per backend batch, at most (and no more than
                                                  // the backend's StateBackend::preferredBatchSize())
  std::chrono::milliseconds bufferTimeout{1000};  // a partial batch waits at most this long
  std::size_t inFlightLimit = 6000;               // records admitted and not yet finished (overdraft aside)
  ErrorHandler errorHandler;                      // empty: failTask()
  // Set: the failures of a record are decided per record (skip, retry, dead letter; see
  // error_policy.hpp); only failures outside any record reach errorHandler.
  RecordErrorPolicy recordErrors;
  AllocationPolicy allocationPolicy = AllocationPolicy::Pooled;
  std::uint32_t iteratorChunkSize = 100;          // map entries per lazily loaded chunk
  std::chrono::milliseconds stallTimeout{60000};  // no progress this long while waiting is an error
  std::ostream* log = &std::clog;                 // start-up configuration and shutdown reports; null: silent
  // recordLatency() samples one record in this many (each sample reads the clock twice);
  // 1 measures every record, 0 none.
  std::uint32_t latencySampleEvery = 64;
  ControllerClock clock;
  // When one key holds more than this share of the in-flight records, a warning names it
  // (see docs/operations.md); the keys with the most waiting records are in hotKeys().
  HotKeyPolicyOptions hotKeys;
  // Told about batches sent and backend round trips (and, in a runner, checkpoints,
  // restores and watermarks) as they happen; must outlive the controller. Null: no cost.
  ExecutionObserver* observer = nullptr;
};

struct ControllerMetrics {
  std::size_t inFlightRecords = 0;  // admitted, not finished (includes blocked ones)
  std::size_t peakInFlightRecords = 0;
  std::size_t blockedRecords = 0;    // waiting because their key has a record in flight
  std::size_t blockedKeys = 0;       // distinct keys with waiting records
  std::size_t bufferedRequests = 0;  // not yet sent to the backend
  std::size_t pendingRequests = 0;   // sent, not yet answered
  std::uint64_t recordsProcessed = 0;
  std::uint64_t overdraftRecords = 0;  // admitted past the in-flight limit (derived, or only waiting for their key)
  std::uint64_t requestsSent = 0;
  std::uint64_t batchesSent = 0;
  std::uint64_t sizeFlushes = 0;        // batches sent because the buffer was full
  std::uint64_t timeoutFlushes = 0;     // batches sent because the buffer timeout expired
  std::uint64_t drainFlushes = 0;       // batches sent because someone waited (drain, sync access, limit)
  std::uint64_t unhandledFailures = 0;  // failures that reached the error handler
  RecordErrorMetrics recordErrors;      // failures decided by the record error policy
  std::size_t retryingRecords = 0;      // failed records waiting for their retry (holding their key)
  std::size_t pendingEpochs = 0;        // closed epochs whose non-record's final action has not run
};

template <class = void>
class BasicAsyncExecutionController;
// A class template under its old name, so that its members compile only in translation
// units that use them (including asyncstate costs every UDF file; see bench/analysis.md).
using AsyncExecutionController = BasicAsyncExecutionController<>;

namespace detail {

// Keeps the runtime alive after the controller when futures outlive it (reported).
template <class Controller>
class ControllerRuntime final : public Runtime {
 public:
  ControllerRuntime(Controller* owner, AllocationPolicy policy) : Runtime(policy), owner_(owner) {}
  void reportUnhandled(AsyncError error) override {
    if (owner_ != nullptr) {
      owner_->reportFailure(std::move(error), currentRecord());
    } else {
      std::cerr << "asyncstate: failure after its controller was destroyed: " << error.message() << '\n';
    }
  }
  void recordFinished(RecordContext* record) override {
    if (owner_ != nullptr) {
      owner_->finished(record);
    } else {
      Controller::destroyOrphanedRecord(*this, record);
    }
  }
  // The controller is gone but futures still live in this pool: the runtime frees
  // itself when the last of them is released.
  void orphan() noexcept {
    owner_ = nullptr;
    notifyWhenIdle();
  }

 private:
  void idle() noexcept override {
    if (owner_ == nullptr) delete this;
  }

  Controller* owner_;
};

// Makes `runtime` the thread's current one for the duration of a controller call.
class TaskThreadScope {
 public:
  explicit TaskThreadScope(Runtime* runtime) noexcept : saved_(tlsRuntime) { tlsRuntime = runtime; }
  ~TaskThreadScope() { tlsRuntime = saved_; }
  TaskThreadScope(const TaskThreadScope&) = delete;
  TaskThreadScope& operator=(const TaskThreadScope&) = delete;

 private:
  Runtime* saved_;
};

// A record of this controller: what the error policy needs besides the key. Failures
// of the current attempt are collected here until its last continuation ran.
class ControllerRecord : public RecordContext {
 public:
  using RecordContext::RecordContext;

  // The record's input and its type, if its callable exposes one (input()).
  virtual std::pair<const void*, const std::type_info*> input() const noexcept = 0;

  void addFailure(AsyncError error) { failures_.push_back(std::move(error)); }
  bool failed() const noexcept { return !failures_.empty(); }
  std::vector<AsyncError> takeFailures() noexcept { return std::exchange(failures_, {}); }
  std::uint32_t attempts() const noexcept { return attempts_; }
  void nextAttempt() noexcept { ++attempts_; }

  EpochManager::Epoch* epoch() const noexcept { return epoch_; }
  void setEpoch(EpochManager::Epoch* epoch) noexcept { epoch_ = epoch; }

 private:
  std::vector<AsyncError> failures_;
  EpochManager::Epoch* epoch_ = nullptr;
  std::uint32_t attempts_ = 1;
};

// A record together with its processing callable.
template <class F>
class RecordOf final : public ControllerRecord {
 public:
  RecordOf(Runtime* runtime, std::string keyBytes, std::uint32_t keyGroup, KeyDescriber describe, F&& fn)
      : ControllerRecord(runtime, std::move(keyBytes), keyGroup, describe, sizeof(RecordOf)), fn_(std::move(fn)) {}
  void run() override { fn_(); }
  std::pair<const void*, const std::type_info*> input() const noexcept override {
    if constexpr (requires(const F& f) { f.input(); }) {
      return {&fn_.input(), &typeid(std::decay_t<decltype(fn_.input())>)};
    } else {
      return {nullptr, nullptr};
    }
  }

 private:
  F fn_;
};

// Records to be started from the pump loop (not nested in whatever freed them), in order.
class ReadyQueue {
 public:
  void push(RecordContext* record) noexcept {
    record->setNextInLine(nullptr);
    if (last_ == nullptr) {
      first_ = record;
    } else {
      last_->setNextInLine(record);
    }
    last_ = record;
  }
  RecordContext* pop() noexcept {
    RecordContext* record = first_;
    if (record != nullptr) {
      first_ = record->nextInLine();
      if (first_ == nullptr) last_ = nullptr;
    }
    return record;
  }
  bool empty() const noexcept { return first_ == nullptr; }

 private:
  RecordContext* first_ = nullptr;
  RecordContext* last_ = nullptr;
};

// A state's registration with its controller, so that whichever of the two goes first
// tells the other: a state going first settles the controller's work (the library's own
// continuations use the state), a controller going first unlinks its states (a state
// declared before its controller outlives it and must not reach it).
class ControllerLink {
 public:
  ControllerLink() = default;
  ControllerLink(const ControllerLink&) = delete;
  ControllerLink& operator=(const ControllerLink&) = delete;

  bool linked() const noexcept { return prev_ != nullptr; }

  void insertAfter(ControllerLink& head) noexcept {
    prev_ = &head;
    next_ = head.next_;
    if (next_ != nullptr) next_->prev_ = this;
    head.next_ = this;
  }
  void unlink() noexcept {
    if (prev_ == nullptr) return;
    prev_->next_ = next_;
    if (next_ != nullptr) next_->prev_ = prev_;
    prev_ = next_ = nullptr;
  }
  void unlinkAll() noexcept {
    while (next_ != nullptr) next_->unlink();
  }

 private:
  ControllerLink* prev_ = nullptr;
  ControllerLink* next_ = nullptr;
};

}  // namespace detail

// Identifies a registered state to the controller (states hold one).
struct StateHandle {
  std::uint32_t id = 0;
  std::string name;
  StateKind kind = StateKind::Value;
};

template <class>
class BasicAsyncExecutionController final {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit BasicAsyncExecutionController(StateBackend& backend, ControllerOptions options = {})
      : backend_(backend),
        options_(std::move(options)),
        runtime_(std::make_unique<detail::ControllerRuntime<BasicAsyncExecutionController>>(this,
                                                                                            options_.allocationPolicy)),
        mailbox_(runtime_.get()),
        buffer_(batchSizeFor(options_, backend)),
        hotKeys_(options_.hotKeys, options_.log) {
    if (!options_.errorHandler) options_.errorHandler = failTask();
    const std::size_t askedBatchSize = options_.batchSize;
    options_.batchSize = batchSizeFor(options_, backend);
    if (options_.inFlightLimit == 0) options_.inFlightLimit = 1;
    // A scan of zero entries would never advance: every backend rejects it.
    if (options_.iteratorChunkSize == 0) options_.iteratorChunkSize = 1;
    if (!options_.clock) options_.clock = [] { return std::chrono::steady_clock::now(); };
    if (options_.observer != nullptr && options_.observer->measuresRoundTrips()) roundTrips_.emplace();
    if (options_.log != nullptr) {
      *options_.log << "asyncstate: controller on backend " << backend_.describeConfiguration() << " (batch size "
                    << options_.batchSize
                    << (options_.batchSize < askedBatchSize
                            ? " as the backend prefers, " + std::to_string(askedBatchSize) + " asked"
                            : std::string())
                    << ", buffer timeout " << options_.bufferTimeout.count() << " ms, in-flight limit "
                    << options_.inFlightLimit << ", "
                    << (options_.allocationPolicy == AllocationPolicy::Pooled ? "pooled" : "heap")
                    << " future allocation)\n";
    }
  }

  // The batch size in effect: the option, and no more than the backend says pays off.
  static std::size_t batchSizeFor(const ControllerOptions& options, const StateBackend& backend) {
    const std::size_t preferred = backend.preferredBatchSize();
    const std::size_t size = preferred != 0 ? std::min(options.batchSize, preferred) : options.batchSize;
    return size == 0 ? 1 : size;
  }

  BasicAsyncExecutionController(const BasicAsyncExecutionController&) = delete;
  BasicAsyncExecutionController& operator=(const BasicAsyncExecutionController&) = delete;

  // Drains; what cannot finish (a stalled backend) is failed or dropped, and the
  // mailbox is closed so that the backend's late answers find nobody (they are dropped).
  ~BasicAsyncExecutionController() {
    detail::TaskThreadScope scope(runtime_.get());
    try {
      drainAll();
    } catch (const std::exception& e) {
      logLine(std::string("controller destroyed while draining failed: ") + e.what());
    }
    abandonUnfinished("the controller was destroyed");
    states_.unlinkAll();
    if (epochs_.hasPending()) {
      logLine(std::to_string(epochs_.pendingEpochs()) +
              " non-records (watermarks) never finished: the controller was destroyed first");
    }
    for (const AsyncError& error : failures_) {
      logLine("failure not rethrown before the controller was destroyed: " + error.message());
    }
    const std::size_t live = runtime_->liveBlocks();
    if (live > 0) {
      logLine("controller destroyed with " + std::to_string(live) +
              " live futures; their pool is kept until the last of them is released");
      runtime_->orphan();
      (void)runtime_.release();  // NOLINT(bugprone-unused-return-value): deliberately handed to its futures
    }
  }

  const ControllerOptions& options() const noexcept { return options_; }
  StateBackend& backend() noexcept { return backend_; }

  // --- records ---------------------------------------------------------------

  // Runs fn() as the processing of one record with `key`. Waits (processing
  // completions) while the in-flight limit is reached, except for overdraft: a record
  // whose key already has a record in flight (it only waits for that one) and work
  // started from inside a running record are admitted past the limit. If the key has a
  // record in flight, the record is queued and runs after it, in arrival order.
  // fn is moved into the record and lives until the record's last continuation ran.
  template <class K, class F>
  void processRecord(const K& key, F&& fn, std::int64_t timestamp = 0) {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    admit(encode(key), &describeKey<K>, std::forward<F>(fn), timestamp);
  }

  // As processRecord, for a key that is already encoded (timers keep keys encoded).
  template <class K, class F>
  void processEncodedRecord(std::string keyBytes, F&& fn, std::int64_t timestamp = 0) {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    admit(std::move(keyBytes), &describeKey<K>, std::forward<F>(fn), timestamp);
  }

  // A non-record (a watermark, a watermark status change): closes the current epoch.
  // `trigger` runs once every record admitted before it finished (records it starts join
  // the epoch; it returns whether to run again once those finished), `final` once
  // everything `trigger` started finished -- each exactly once, epochs in order, from the
  // task thread's pump loop. Serial: returns after the epoch finished (the next record
  // sees its effects). Parallel: returns at once; later records may run meanwhile.
  void processNonRecord(EpochTriggerAction trigger, EpochFinalAction final, EpochMode mode = EpochMode::Serial) {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    epochs_.onNonRecord(std::move(trigger), std::move(final));
    if (mode == EpochMode::Serial) {
      drainAll();
      throwIfFailed();
    } else {
      pump();  // its records may all have finished already
    }
  }

  // Processes whatever completed and flushes a partial batch whose timeout expired.
  void poll() {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    backend_.poll();
    pump();
    flushOnTimeout();
  }

  // Like poll(), but waits up to maxWait for completions when there is nothing to do.
  void pollFor(std::chrono::milliseconds maxWait) {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    backend_.poll();
    if (!pump()) waitForCompletions(now() + maxWait);
    pump();
    flushOnTimeout();
  }

  // Waits until every admitted record -- and every continuation and request derived
  // from it -- has finished; failures included. Watermarks and checkpoints call this.
  void drain() {
    detail::TaskThreadScope scope(runtime_.get());
    drainAll();
    throwIfFailed();
  }

  // Called before something continuations use goes away (a state, the runner's
  // function), `what` naming it: drains, and when that cannot finish (a stalled backend)
  // gives up on what is left (giveUpUnfinished). Logs instead of throwing; failures kept
  // for the fail-the-task handler stay kept.
  void settleBefore(const std::string& what) {
    detail::TaskThreadScope scope(runtime_.get());
    if (!canSettle()) return;
    try {
      drainAll();
    } catch (const std::exception& e) {
      logLine(what + ", but draining failed first: " + e.what());
    } catch (...) {
      logLine(what + ", but draining failed first");
    }
    abandonIfUnfinished(what);
  }

  // A state built on this controller registers here (state.hpp) and leaves through
  // stateGoing() if it goes first.
  void linkState(detail::ControllerLink& state) noexcept { state.insertAfter(states_); }
  void stateGoing(detail::ControllerLink& state, const std::string& name) {
    state.unlink();
    settleBefore("state '" + name + "' went away");
  }

  // After a drain that could not finish: gives up on what is left as the destructor
  // would -- requests the backend still owes fail their futures, records that never
  // started are dropped -- so that no library continuation runs after `what`. From then
  // on requests fail at once. Does nothing when all work finished, and inside a record
  // or an epoch action, which cannot wait.
  void giveUpUnfinished(const std::string& what) {
    detail::TaskThreadScope scope(runtime_.get());
    abandonIfUnfinished(what);
  }

  // Sends buffered requests now.
  void flush() {
    detail::TaskThreadScope scope(runtime_.get());
    flushBuffer(FlushReason::Wait);
  }

  // Drains and rethrows any failure kept by the fail-the-task handler.
  void close() { drain(); }

  ControllerMetrics metrics() const {
    ControllerMetrics m = metrics_;
    m.inFlightRecords = inFlight_;
    m.blockedRecords = keys_.blockedRecords();
    m.blockedKeys = keys_.blockedKeys();
    m.bufferedRequests = buffer_.size();
    m.pendingRequests = tickets_.outstanding();
    m.retryingRecords = retries_.size();
    m.pendingEpochs = epochs_.pendingEpochs();
    return m;
  }
  PoolStats poolStats() const noexcept { return runtime_->poolStats(); }
  // Admission-to-finish time (including time blocked on its key) of the sampled
  // records: one in options().latencySampleEvery.
  const LatencyHistogram& recordLatency() const noexcept { return latency_; }
  // The keys holding the most waiting records (a bounded sketch), and the hottest one's
  // share of the in-flight window.
  const HotKeyMonitor& hotKeys() const noexcept { return hotKeys_; }

  // A pooled pending future to be completed later on this task thread.
  template <class T>
  StatePromise<T> newPromise() {
    return StatePromise<T>(detail::Core<detail::Stored<T>>::create(*runtime_));
  }

  // Runs fn() with this controller as the thread's runtime (futures created inside
  // come from its pool and report to its handler) without admitting a record.
  template <class F>
  decltype(auto) runOnTaskThread(F&& fn) {
    detail::TaskThreadScope scope(runtime_.get());
    return std::forward<F>(fn)();
  }

  // --- used by states ----------------------------------------------------------

  StateHandle registerState(const std::string& name, StateKind kind) {
    return StateHandle{backend_.registerState(name, kind), name, kind};
  }

  // The record whose key state access is scoped to; throws outside of one.
  detail::RecordContext& currentRecord(const char* operation) const {
    detail::RecordContext* record = runtime_->currentRecord();
    if (record == nullptr) {
      throw FutureMisuseError(std::string(operation) +
                              " called outside of a record: keyed state is only accessible while processing an "
                              "element or timer (or in their continuations)");
    }
    return *record;
  }

  template <class R>
  using Decoder = detail::Decoder<R>;

  // Buffers one request for the current record and returns the future of its result.
  template <class R>
  StateFuture<R> submit(StateRequest&& request, const StateHandle& state, const char* operation, Decoder<R> decode,
                        const void* context = nullptr) {
    detail::RecordContext& record = currentRecord(operation);
    if (closing_) {
      return failedFuture<R>(AsyncError(
          std::make_exception_ptr(std::runtime_error("the controller is being destroyed: the request is not sent")),
          state.name, record.keyText(), operation));
    }
    auto* core = detail::Core<detail::Stored<R>>::create(*runtime_);
    StateFuture<R> future(core);
    request.ticket = tickets_.add<R>(core, decode, context, detail::RequestOrigin{&record, &state.name, operation});
    request.stateId = state.id;
    request.keyGroup = record.keyGroup();
    request.key = record.keyBytes();
    if (buffer_.add(std::move(request))) flushBuffer(FlushReason::Size);
    return future;
  }

  // Blocks the task thread until `future` completes: flushes what is buffered (so a
  // read sees this record's earlier writes) and processes completions meanwhile.
  // A failure is rethrown as AsyncStateException and counts as delivered.
  template <class T>
  detail::Stored<T> await(StateFuture<T>&& future) {
    detail::TaskThreadScope scope(runtime_.get());
    while (!future.isDone()) {
      flushBuffer(FlushReason::Wait);
      waitForProgress();
    }
    std::optional<detail::Stored<T>> value;
    std::optional<AsyncError> error;
    FutureAccess::consumeReady(
        std::move(future), [&](detail::Stored<T>& v) { value.emplace(std::move(v)); },
        [&](AsyncError& e) { error.emplace(std::move(e)); });
    if (error) throw AsyncStateException({std::move(*error)});
    return std::move(*value);
  }

 private:
  friend class detail::ControllerRuntime<BasicAsyncExecutionController>;

  enum class FlushReason { Size, Timeout, Wait };

  // processRecord() reads the clock when a record starts a batch and then checks the
  // buffer timeout once per this many records, not per record; the slack this adds is a
  // few microseconds.
  static constexpr std::uint32_t kTimeoutCheckEvery = 32;

  template <class K>
  static std::string describeKey(std::string_view bytes) {
    try {
      return keyToText(decode<K>(bytes));
    } catch (const SerializationError&) {
      return "<undecodable key>";
    }
  }

  TimePoint now() const { return options_.clock(); }

  template <class F>
  void admit(std::string keyBytes, detail::RecordContext::KeyDescriber describe, F&& fn, std::int64_t timestamp) {
    using Record = detail::RecordOf<std::decay_t<F>>;
    const std::uint32_t keyGroup = keyGroupOf(keyBytes);
    void* memory = runtime_->allocate(sizeof(Record));
    auto* record = ::new (memory)
        Record(runtime_.get(), std::move(keyBytes), keyGroup, describe, std::decay_t<F>(std::forward<F>(fn)));
    record->setTimestamp(timestamp);
    // Work started from inside a running record is derived from in-flight work: waiting
    // here for the limit could wait for the very record that starts it.
    const bool derived = runtime_->currentRecord() != nullptr;
    try {
      while (inFlight_ >= options_.inFlightLimit && !derived && !keys_.isHeld(record->keyBytes(), record->keyHash())) {
        waitForProgress();
      }
    } catch (...) {
      destroy(*runtime_, record);  // not admitted: the caller sees the failure
      throw;
    }
    if (inFlight_ >= options_.inFlightLimit) ++metrics_.overdraftRecords;
    if (++inFlight_ > metrics_.peakInFlightRecords) metrics_.peakInFlightRecords = inFlight_;
    record->setEpoch(derived ? EpochManager::join(asRecord(runtime_->currentRecord()).epoch()) : epochs_.onRecord());
    if (options_.latencySampleEvery != 0 && ++sinceLatencySample_ >= options_.latencySampleEvery) {
      sinceLatencySample_ = 0;
      record->setAdmitted(now());
    }
    if (keys_.acquire(record)) {
      if (derived) {
        ready_.push(record);  // started by the pump loop that runs the record admitting it
        return;
      }
      start(record);
    } else {
      // Only records that wait are counted (hot keys are what make records wait), by their
      // key's bytes: the text is decoded only when a key is reported. The clock is read
      // only for a key over the warning threshold (it spaces the warnings), not per record.
      const std::size_t recordsOfKey = keys_.recordsOf(record->keyBytes(), record->keyHash());
      hotKeys_.recordWaiting(record->keyBytes(), describe, recordsOfKey, inFlight_,
                             hotKeys_.policy().exceeds(recordsOfKey, inFlight_) ? now() : TimePoint{});
    }  // a waiting record is handed out by finished() when its key frees
    if (derived) return;
    pump();
    if (!buffer_.empty() && !buffer_.deadline()) {
      (void)bufferDeadline();  // this record started the batch: its timeout runs from now
    } else if (++sinceTimeoutCheck_ >= kTimeoutCheckEvery) {
      sinceTimeoutCheck_ = 0;
      flushOnTimeout();
    }
  }

  void start(detail::RecordContext* record) {
    {
      detail::RecordScope scope(*runtime_, record);
      try {
        record->run();
      } catch (...) {
        reportFailure(AsyncError(std::current_exception(), "", record->keyText(), "processElement"), record);
      }
    }
    if (asRecord(record).attempts() == 1) ++metrics_.recordsProcessed;
    record->release();
  }

  static detail::ControllerRecord& asRecord(detail::RecordContext* record) noexcept {
    return *static_cast<detail::ControllerRecord*>(record);  // admit() creates every record
  }

  // The record's last reference is gone: the one place that decides a record is done --
  // or, when its attempt failed and the error policy retries it, that it runs again.
  void finished(detail::RecordContext* record) {
    detail::ControllerRecord& attempt = asRecord(record);
    if (attempt.failed()) {
      if (!concludeFailedAttempt(attempt)) return;
    } else if (attempt.attempts() > 1) {
      ++metrics_.recordErrors.retriedToSuccess;
    }
    EpochManager::completeOneRecord(attempt.epoch());
    --inFlight_;
    if (const auto admitted = record->admitted()) latency_.add(now() - *admitted);
    // The key's next record starts from the pump loop, not nested here.
    if (detail::RecordContext* next = keys_.release(record)) {
      if (closing_) {
        discard(next);
      } else {
        ready_.push(next);
      }
    }
    destroy(*runtime_, record);
  }

  // A record in flight when the controller went away, finished since: nobody counts it
  // any more, but its block goes back (the orphaned pool is freed once all are back) and
  // the failures its attempt kept are not dropped without a word.
  static void destroyOrphanedRecord(detail::Runtime& runtime, detail::RecordContext* record) noexcept {
    for (const AsyncError& error : asRecord(record).takeFailures()) {
      std::cerr << "asyncstate: failure of a record finished after its controller was destroyed: " << error.message()
                << '\n';
    }
    destroy(runtime, record);
  }

  // A record that never started and never will (the controller goes away).
  void discard(detail::RecordContext* record) {
    EpochManager::completeOneRecord(asRecord(record).epoch());
    --inFlight_;
    destroy(*runtime_, record);
  }

  // Static: an orphaned record has no controller to call it on, only the runtime.
  static void destroy(detail::Runtime& runtime, detail::RecordContext* record) noexcept {
    const std::size_t size = record->allocationSize();
    record->~RecordContext();
    runtime.deallocate(record, size);
  }

  // A failure nobody downstream will see. With a record error policy, a failure of a
  // record joins its current attempt's failures (decided when the attempt ends);
  // otherwise, and outside records, it goes to the error handler now.
  void reportFailure(AsyncError error, detail::RecordContext* record) noexcept {
    if (options_.recordErrors && record != nullptr) {
      try {
        asRecord(record).addFailure(std::move(error));
        ++metrics_.recordErrors.failures;
        return;
      } catch (...) {
        logLine("out of memory while keeping a record's failure; it goes to the error handler");
      }
    }
    reportUnhandled(std::move(error));
  }

  // The failed attempt of `record` ended: the policy decides its fate, exactly once.
  // Returns false when the record runs again (it keeps its key and its in-flight slot).
  bool concludeFailedAttempt(detail::ControllerRecord& record) {
    RecordErrorMetrics& counts = metrics_.recordErrors;
    const RecordErrorPolicy& policy = options_.recordErrors;
    ++counts.failedAttempts;
    std::vector<AsyncError> errors = record.takeFailures();
    const auto [input, inputType] = record.input();
    const FailedRecord failed(errors, record.attempts(), record.keyText(), record.timestamp(), input, inputType);
    RecordFailureAction action = RecordFailureAction::FailTask;
    try {
      action = policy.decide(failed);
    } catch (...) {
      errors.emplace_back(std::current_exception(), "", failed.keyText(), "record error policy");
    }
    if (action == RecordFailureAction::Retry && (closing_ || record.attempts() >= policy.retry.maxAttempts)) {
      action = policy.whenRetriesExhausted == RecordFailureAction::Retry ? RecordFailureAction::FailTask
                                                                         : policy.whenRetriesExhausted;
    }
    switch (action) {
      case RecordFailureAction::Retry:
        ++counts.retries;
        retries_.push(now() + policy.retry.backoffBefore(record.attempts()), &record);
        record.nextAttempt();
        record.retain();  // the new attempt's own reference, as admit() gives the first
        return false;
      case RecordFailureAction::Skip: ++counts.skipped; return true;
      case RecordFailureAction::DeadLetter:
        if (!policy.deadLetter) {
          errors.emplace_back(std::make_exception_ptr(std::logic_error(
                                  "the record error policy chose a dead letter but has no deadLetter output")),
                              "", failed.keyText(), "record error policy");
          break;
        }
        try {
          policy.deadLetter(failed);
          ++counts.deadLettered;
          return true;
        } catch (...) {
          errors.emplace_back(std::current_exception(), "", failed.keyText(), "dead-letter output");
        }
        break;
      case RecordFailureAction::FailTask: break;
    }
    ++counts.failedTask;
    for (AsyncError& error : errors) failures_.push_back(std::move(error));
    return true;
  }

  void reportUnhandled(AsyncError error) noexcept {
    ++metrics_.unhandledFailures;
    ErrorAction action = ErrorAction::FailTask;
    try {
      action = options_.errorHandler(error);
    } catch (...) {
      action = ErrorAction::FailTask;
    }
    if (action == ErrorAction::FailTask) {
      try {
        failures_.push_back(std::move(error));
      } catch (...) {
        logLine("out of memory while keeping a failure: " + error.message());
      }
    }
  }

  void throwIfFailed() {
    if (!failures_.empty()) throw AsyncStateException(std::exchange(failures_, {}));
  }

  void flushBuffer(FlushReason reason) {
    const std::size_t requests = buffer_.size();
    const std::size_t batches = buffer_.sendAll([&](std::vector<StateRequest>&& batch) {
      mailbox_->expect(batch.size());
      if (options_.observer != nullptr) observeSent(batch, reason);
      sentTickets_.clear();
      for (const StateRequest& request : batch) sentTickets_.push_back(request.ticket);
      try {
        backend_.executeBatch(std::move(batch), *mailbox_);
      } catch (...) {
        // A backend that throws took none of the batch (StateBackend's contract): its
        // requests are answered with that failure here, as the backend would have, so
        // each future fails once and nothing waits for answers that never come.
        const std::exception_ptr error = std::current_exception();
        for (const std::uint64_t ticket : sentTickets_) mailbox_->fail(ticket, error);
      }
    });
    if (batches == 0) return;
    (reason == FlushReason::Size      ? metrics_.sizeFlushes
     : reason == FlushReason::Timeout ? metrics_.timeoutFlushes
                                      : metrics_.drainFlushes) += batches;
    metrics_.batchesSent += batches;
    metrics_.requestsSent += requests;
  }

  void observeSent(const std::vector<StateRequest>& batch, FlushReason reason) {
    options_.observer->batchSent(batch.size(), reason == FlushReason::Size      ? BatchReason::Size
                                               : reason == FlushReason::Timeout ? BatchReason::Timeout
                                                                                : BatchReason::Drain);
    if (roundTrips_) roundTrips_->sent(batch, now());
  }

  void observeAnswered(const std::vector<detail::Completion>& answers) {
    if (answers.empty()) return;
    const TimePoint answeredAt = now();  // once per mailbox take, not per answer
    for (const detail::Completion& answer : answers) {
      if (const auto duration = roundTrips_->answered(answer.ticket, answeredAt)) {
        options_.observer->backendRoundTrip(*duration);
      }
    }
  }

  // A partial batch's deadline is stamped by the record that started it, or by the
  // first check after requests derived outside a record's start (continuations)
  // started it -- never per request: sync access sends each request alone.
  TimePoint bufferDeadline() {
    if (!buffer_.deadline()) buffer_.setDeadline(now() + options_.bufferTimeout);
    return *buffer_.deadline();
  }

  void flushOnTimeout() {
    if (!buffer_.empty() && now() >= bufferDeadline()) {
      flushBuffer(FlushReason::Timeout);
      pump();
    }
  }

  // Settles answered requests and starts unblocked records. Returns whether anything happened.
  bool pump() {
    bool progressed = false;
    for (;;) {
      std::vector<detail::Completion> batch = std::exchange(spare_, {});
      mailbox_->takeAll(batch);
      queueDueRetries();
      if (batch.empty() && ready_.empty()) {
        spare_ = std::move(batch);
        if (runEpochActions()) {
          progressed = true;
          continue;  // the actions may have started records
        }
        return progressed;
      }
      progressed = true;
      if (roundTrips_) observeAnswered(batch);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (i + 1 < batch.size()) tickets_.prefetch(batch[i + 1].ticket);
        detail::Completion& completion = batch[i];
        if (!tickets_.settle(*runtime_, completion.ticket, &completion.result, std::move(completion.error))) {
          logLine("backend " + backend_.name() + " answered unknown or already answered request ticket " +
                  std::to_string(completion.ticket) + "; ignored");
        }
      }
      batch.clear();
      spare_ = std::move(batch);
      while (detail::RecordContext* next = ready_.pop()) start(next);
    }
  }

  // Runs the non-records' actions that are due -- from the top of the task thread only:
  // not inside a record (sync access waits from there) nor inside another action.
  bool runEpochActions() {
    if (!epochs_.hasPending() || inEpochAction_ || runtime_->currentRecord() != nullptr) return false;
    inEpochAction_ = true;
    bool ran = false;
    for (bool done = false; !done;) {
      try {
        ran = epochs_.advance() || ran;
        done = true;
      } catch (AsyncStateException& e) {
        ran = true;  // the action ran into the task's earlier failures: they stay kept
        for (const AsyncError& error : e.errors()) failures_.push_back(error);
      } catch (...) {
        ran = true;
        reportUnhandled(AsyncError(std::current_exception(), "", "", "non-record action"));
      }
    }
    inEpochAction_ = false;
    return ran;
  }

  // Failed records whose backoff is over run from the pump loop, in due order.
  void queueDueRetries() {
    if (retries_.empty()) return;
    const TimePoint at = now();
    while (detail::ControllerRecord* record = retries_.popDue(at)) ready_.push(record);
  }

  // Blocks until a completion arrives, the buffer deadline or a retry is due, or
  // `until`. Real waits are short, so that an injected clock is consulted again soon.
  void waitForCompletions(TimePoint until) {
    if (!buffer_.empty()) until = std::min(until, bufferDeadline());
    if (!retries_.empty()) until = std::min(until, retries_.nextDue());
    const auto remaining = until - now();
    if (remaining <= TimePoint::duration::zero()) return;
    mailbox_->waitFor(std::min<std::chrono::nanoseconds>(remaining, kLongestWait));
  }
  static constexpr std::chrono::milliseconds kLongestWait{50};

  // One step of waiting: process what is there, else send what is buffered (nothing
  // else will), else block for the backend. Fails loudly instead of hanging.
  void waitForProgress() {
    if (pump()) return;
    if (!buffer_.empty()) {
      flushBuffer(FlushReason::Wait);
      if (pump()) return;
    }
    backend_.poll();
    if (pump()) return;
    if (tickets_.outstanding() == 0 && !retries_.empty()) {
      waitForCompletions(retries_.nextDue());  // only a backoff to sit out
      return;
    }
    if (tickets_.outstanding() == 0) {
      throw AsyncStateException(
          {AsyncError(std::make_exception_ptr(std::logic_error(
                          std::to_string(inFlight_) +
                          " records are in flight but no state request is outstanding: a future they wait on can never "
                          "complete (a StatePromise never completed?)")),
                      "", "", "wait for in-flight records")});
    }
    const TimePoint deadline = now() + options_.stallTimeout;
    while (!pump()) {
      if (now() >= deadline) {
        throw AsyncStateException({AsyncError(
            std::make_exception_ptr(std::runtime_error("backend " + backend_.name() + " answered none of " +
                                                       std::to_string(tickets_.outstanding()) + " requests within " +
                                                       std::to_string(options_.stallTimeout.count()) + " ms")),
            "", "", "wait for backend")});
      }
      waitForCompletions(deadline);
      backend_.poll();
    }
  }

  // Waits for every record and every non-record's actions that can run here (all but
  // when called from inside a record or an action).
  void drainAll() {
    for (;;) {
      flushBuffer(FlushReason::Wait);
      pump();
      if (inFlight_ == 0 && tickets_.outstanding() == 0 && buffer_.empty() && !runEpochActions()) return;
      if (inFlight_ == 0 && tickets_.outstanding() == 0 && buffer_.empty()) continue;
      waitForProgress();
    }
  }

  // giveUpUnfinished() for callers that already set the task thread's scope.
  void abandonIfUnfinished(const std::string& why) {
    if (canSettle() && (inFlight_ != 0 || tickets_.outstanding() != 0 || !buffer_.empty())) abandonUnfinished(why);
  }

  // Teardown after a drain that could not finish (`why` names the teardown): requests
  // the backend still owes fail their futures (their failures are logged), and records
  // that never started are dropped without running. Whatever else still holds futures
  // keeps the pool alive.
  void abandonUnfinished(const std::string& why) {
    closing_ = true;
    if (tickets_.outstanding() > 0) {
      logLine(std::to_string(tickets_.outstanding()) + " requests to backend " + backend_.name() +
              " were not answered before " + why + "; their futures fail");
      tickets_.failAll(*runtime_, std::make_exception_ptr(
                                      std::runtime_error(why + " before backend " + backend_.name() + " answered")));
    }
    // Requests the failed continuations issued are never sent.
    std::size_t dropped = 0;
    keys_.dropWaiting([&](detail::RecordContext* record) {
      ++dropped;
      discard(record);
    });
    while (detail::RecordContext* record = ready_.pop()) {
      ++dropped;
      discard(record);
    }
    // Failed records waiting for a retry hold their key; nobody waits behind them any more.
    retries_.dropAll([&](detail::ControllerRecord* record) {
      ++dropped;
      (void)keys_.release(record);
      discard(record);
    });
    if (dropped > 0) logLine(std::to_string(dropped) + " records never ran: " + why + " first");
  }

  bool canSettle() const noexcept { return !closing_ && runtime_->currentRecord() == nullptr && !inEpochAction_; }

  void logLine(const std::string& text) const {
    if (options_.log != nullptr) *options_.log << "asyncstate: " << text << '\n';
  }

  StateBackend& backend_;
  ControllerOptions options_;
  std::unique_ptr<detail::ControllerRuntime<BasicAsyncExecutionController>> runtime_;
  detail::MailboxHandle mailbox_;
  detail::RequestBuffer buffer_;
  detail::TicketTable tickets_;
  detail::KeyAccounting keys_;
  HotKeyMonitor hotKeys_;
  std::optional<detail::RoundTripTimer> roundTrips_;  // only when the observer measures round trips
  detail::ReadyQueue ready_;
  detail::RetryQueue<detail::ControllerRecord, TimePoint> retries_;
  EpochManager epochs_;
  bool inEpochAction_ = false;
  std::vector<detail::Completion> spare_;   // the pump's batch, kept for its capacity
  std::vector<std::uint64_t> sentTickets_;  // the batch being sent, kept for its capacity
  detail::ControllerLink states_;           // the head of the states built on this controller

  std::size_t inFlight_ = 0;
  bool closing_ = false;
  std::uint32_t sinceTimeoutCheck_ = 0;
  std::uint32_t sinceLatencySample_ = 0;
  ControllerMetrics metrics_;
  std::vector<AsyncError> failures_;
  LatencyHistogram latency_;
};

}  // namespace asyncstate
