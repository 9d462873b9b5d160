#pragma once
// AsyncExecutionController: runs records on one task thread with per-key order, an
// in-flight record limit, request batching (by size and by buffer timeout), and
// draining at watermarks and checkpoints. It is the Runtime futures report to: it owns
// the pool their state lives in and the error handler their failures reach.

#include <asyncstate/detail/future_core.hpp>
#include <asyncstate/detail/runtime.hpp>
#include <asyncstate/error.hpp>
#include <asyncstate/future.hpp>
#include <asyncstate/metrics.hpp>
#include <asyncstate/pool.hpp>
#include <asyncstate/serializer.hpp>
#include <asyncstate/state_backend.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <range/v3/range/conversion.hpp>
#include <range/v3/view/chunk.hpp>
#include <range/v3/view/move.hpp>

namespace asyncstate {

// Defaults follow Flink's async state (state.async.batch-size / max-in-flight /
// buffer-timeout); see docs/guide.md for how to choose them.
struct ControllerOptions {
  std::size_t batchSize = 1000;                   // requests per backend batch
  std::chrono::milliseconds bufferTimeout{1000};  // a partial batch waits at most this long
  std::size_t inFlightLimit = 6000;               // records admitted and not yet finished
  ErrorHandler errorHandler;                      // empty: failTask()
  AllocationPolicy allocationPolicy = AllocationPolicy::Pooled;
  std::uint32_t iteratorChunkSize = 100;          // map entries per lazily loaded chunk
  std::chrono::milliseconds stallTimeout{60000};  // no progress this long while waiting is an error
  std::ostream* log = &std::clog;                 // start-up configuration and shutdown reports; null: silent
};

struct ControllerMetrics {
  std::size_t inFlightRecords = 0;  // admitted, not finished (includes blocked ones)
  std::size_t peakInFlightRecords = 0;
  std::size_t blockedRecords = 0;    // waiting because their key has a record in flight
  std::size_t blockedKeys = 0;       // distinct keys with waiting records
  std::size_t bufferedRequests = 0;  // not yet sent to the backend
  std::size_t pendingRequests = 0;   // sent, not yet answered
  std::uint64_t recordsProcessed = 0;
  std::uint64_t requestsSent = 0;
  std::uint64_t batchesSent = 0;
  std::uint64_t sizeFlushes = 0;        // batches sent because the buffer was full
  std::uint64_t timeoutFlushes = 0;     // batches sent because the buffer timeout expired
  std::uint64_t drainFlushes = 0;       // batches sent because someone waited (drain, sync access, limit)
  std::uint64_t unhandledFailures = 0;  // failures that reached the error handler
};

// A pooled pending future completed later on the task thread (by a timer, an
// external event source, a benchmark). State requests create these internally.
template <class T>
class StatePromise {
 public:
  StatePromise() = default;
  explicit StatePromise(detail::Core<detail::Stored<T>>* core) : producer_(core), future_(core) {}

  // The consumer side; may be taken once.
  StateFuture<T> future() { return std::move(future_); }

  template <class... V>
  void setValue(V&&... value) {
    if constexpr (std::is_void_v<T>) {
      producer_.setValue(detail::Unit{});
    } else {
      producer_.setValue(T(std::forward<V>(value)...));
    }
  }
  void setError(AsyncError error) { producer_.setError(std::move(error)); }

 private:
  detail::Producer<detail::Stored<T>> producer_;
  StateFuture<T> future_;
};

class AsyncExecutionController;

namespace detail {

// Keeps the runtime alive after the controller when futures outlive it (reported).
class ControllerRuntime final : public Runtime {
 public:
  ControllerRuntime(AsyncExecutionController* owner, AllocationPolicy policy) : Runtime(policy), owner_(owner) {}
  inline void reportUnhandled(AsyncError error) override;
  inline void recordFinished(RecordContext* record) override;
  // The controller is gone but futures still live in this pool: the runtime frees
  // itself when the last of them is released.
  void orphan() noexcept { owner_ = nullptr; }

 private:
  void idle() noexcept override {
    if (owner_ == nullptr) delete this;
  }

  AsyncExecutionController* owner_;
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

// A record together with its processing callable.
template <class F>
class RecordOf final : public RecordContext {
 public:
  RecordOf(Runtime* runtime, std::string keyBytes, std::uint32_t keyGroup, KeyDescriber describe, F&& fn)
      : RecordContext(runtime, std::move(keyBytes), keyGroup, describe, sizeof(RecordOf)), fn_(std::move(fn)) {}
  void run() override { fn_(); }

 private:
  F fn_;
};

}  // namespace detail

// Identifies a registered state to the controller (states hold one).
struct StateHandle {
  std::uint32_t id = 0;
  std::string name;
  StateKind kind = StateKind::Value;
};

class AsyncExecutionController final : private CompletionSink {
 public:
  explicit AsyncExecutionController(StateBackend& backend, ControllerOptions options = {})
      : backend_(backend),
        options_(std::move(options)),
        runtime_(std::make_unique<detail::ControllerRuntime>(this, options_.allocationPolicy)) {
    if (!options_.errorHandler) options_.errorHandler = failTask();
    if (options_.batchSize == 0) options_.batchSize = 1;
    if (options_.inFlightLimit == 0) options_.inFlightLimit = 1;
    if (options_.log != nullptr) {
      *options_.log << "asyncstate: controller on backend " << backend_.describeConfiguration() << " (batch size "
                    << options_.batchSize << ", buffer timeout " << options_.bufferTimeout.count()
                    << " ms, in-flight limit " << options_.inFlightLimit << ", "
                    << (options_.allocationPolicy == AllocationPolicy::Pooled ? "pooled" : "heap")
                    << " future allocation)\n";
    }
  }

  AsyncExecutionController(const AsyncExecutionController&) = delete;
  AsyncExecutionController& operator=(const AsyncExecutionController&) = delete;

  ~AsyncExecutionController() override {
    try {
      detail::TaskThreadScope scope(runtime_.get());
      drainAll();
    } catch (const std::exception& e) {
      logLine(std::string("controller destroyed while draining failed: ") + e.what());
    }
    for (const AsyncError& error : failures_) {
      logLine("failure not rethrown before the controller was destroyed: " + error.message());
    }
    const std::size_t live = runtime_->poolStats().live;
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
  // completions) while the in-flight limit is reached; if the key has a record in
  // flight, the record is queued and runs after it, in arrival order.
  // fn is moved into the record and lives until the record's last continuation ran.
  template <class K, class F>
  void processRecord(const K& key, F&& fn, std::int64_t timestamp = 0) {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    std::string keyBytes = encode(key);
    while (metrics_.inFlightRecords >= options_.inFlightLimit) waitForProgress();
    admit(std::move(keyBytes), &describeKey<K>, std::forward<F>(fn), timestamp);
    pumpAndFlushOnTimeout();
  }

  // As processRecord, for a key that is already encoded (timers keep keys encoded).
  template <class K, class F>
  void processEncodedRecord(std::string keyBytes, F&& fn, std::int64_t timestamp = 0) {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    while (metrics_.inFlightRecords >= options_.inFlightLimit) waitForProgress();
    admit(std::move(keyBytes), &describeKey<K>, std::forward<F>(fn), timestamp);
    pumpAndFlushOnTimeout();
  }

  // Processes whatever completed and flushes a partial batch whose timeout expired.
  void poll() {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    backend_.poll();
    pumpAndFlushOnTimeout();
  }

  // Like poll(), but sleeps up to maxWait for completions when there is nothing to do.
  void pollFor(std::chrono::milliseconds maxWait) {
    detail::TaskThreadScope scope(runtime_.get());
    throwIfFailed();
    backend_.poll();
    if (!pump()) waitForCompletions(std::chrono::steady_clock::now() + maxWait);
    pumpAndFlushOnTimeout();
  }

  // Waits until every admitted record -- and every continuation and request derived
  // from it -- has finished; failures included. Watermarks and checkpoints call this.
  void drain() {
    detail::TaskThreadScope scope(runtime_.get());
    drainAll();
    throwIfFailed();
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
    m.bufferedRequests = buffer_.size();
    m.blockedKeys = 0;
    for (const auto& [key, waiting] : activeKeys_) m.blockedKeys += waiting.empty() ? 0 : 1;
    return m;
  }
  const PoolStats& poolStats() const noexcept { return runtime_->poolStats(); }
  // Admission-to-finish time of every finished record (including time blocked on its key).
  const LatencyHistogram& recordLatency() const noexcept { return latency_; }

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

  // Decoder turning the backend's answer into the future's value; may throw (corrupt data).
  template <class R>
  using Decoder = R (*)(StateResult&, const void* context);

  // Buffers one request for the current record and returns the future of its result.
  template <class R>
  StateFuture<R> submit(StateRequest request, const StateHandle& state, const char* operation, Decoder<R> decode,
                        const void* context = nullptr) {
    detail::RecordContext& record = currentRecord(operation);
    auto* core = detail::Core<detail::Stored<R>>::create(*runtime_);
    StateFuture<R> future(core);
    record.retain();
    const std::uint32_t slot = allocateSlot();
    Slot& s = slots_[slot];
    s.core = core;
    s.record = &record;
    s.state = &state;
    s.operation = operation;
    s.context = context;
    s.decode = reinterpret_cast<void (*)()>(decode);
    s.finish = &finishSlot<R>;
    s.fail = &failSlot<R>;
    request.ticket = (static_cast<std::uint64_t>(s.generation) << 32) | slot;
    request.stateId = state.id;
    request.keyGroup = record.keyGroup();
    request.key = record.keyBytes();
    if (buffer_.empty()) bufferDeadline_ = std::chrono::steady_clock::now() + options_.bufferTimeout;
    buffer_.push_back(std::move(request));
    if (buffer_.size() >= options_.batchSize) flushBuffer(FlushReason::Size);
    return future;
  }

  // Blocks the task thread until `future` completes: flushes what is buffered (so a
  // read sees this record's earlier writes) and processes completions meanwhile.
  // A failure is rethrown as AsyncStateException and counts as delivered.
  template <class T>
  detail::Stored<T> await(StateFuture<T>&& future) {
    detail::TaskThreadScope scope(runtime_.get());
    flushBuffer(FlushReason::Wait);
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
  friend class detail::ControllerRuntime;

  enum class FlushReason { Size, Timeout, Wait };

  struct Slot {
    detail::CoreBase* core = nullptr;
    detail::RecordContext* record = nullptr;
    const StateHandle* state = nullptr;
    const char* operation = nullptr;
    const void* context = nullptr;
    void (*decode)() = nullptr;
    void (*finish)(Slot&, StateResult&) = nullptr;
    void (*fail)(Slot&, AsyncError&&) = nullptr;
    std::uint32_t generation = 0;
    std::uint32_t nextFree = 0;
  };

  struct Completion {
    std::uint64_t ticket;
    StateResult result;
    std::exception_ptr error;
  };

  template <class K>
  static std::string describeKey(std::string_view bytes) {
    try {
      return keyToText(decode<K>(bytes));
    } catch (const SerializationError&) {
      return "<undecodable key>";
    }
  }

  template <class R>
  static void finishSlot(Slot& slot, StateResult& result) {
    auto decode = reinterpret_cast<Decoder<R>>(slot.decode);
    // Decode before taking the producer: a decoding failure must leave the future to failSlot.
    auto* core = static_cast<detail::Core<detail::Stored<R>>*>(slot.core);
    if constexpr (std::is_void_v<R>) {
      decode(result, slot.context);
      detail::Producer<detail::Unit>(core).setValue(detail::Unit{});
    } else {
      R value = decode(result, slot.context);
      detail::Producer<R>(core).setValue(std::move(value));
    }
  }

  template <class R>
  static void failSlot(Slot& slot, AsyncError&& error) {
    detail::Producer<detail::Stored<R>> producer(static_cast<detail::Core<detail::Stored<R>>*>(slot.core));
    producer.setError(std::move(error));
  }

  template <class F>
  void admit(std::string keyBytes, detail::RecordContext::KeyDescriber describe, F&& fn, std::int64_t timestamp) {
    using Record = detail::RecordOf<std::decay_t<F>>;
    ++metrics_.inFlightRecords;
    if (metrics_.inFlightRecords > metrics_.peakInFlightRecords)
      metrics_.peakInFlightRecords = metrics_.inFlightRecords;
    const std::uint32_t keyGroup = keyGroupOf(keyBytes);
    auto [it, inserted] = activeKeys_.try_emplace(keyBytes);
    void* memory = runtime_->allocate(sizeof(Record));
    auto* record = ::new (memory)
        Record(runtime_.get(), std::move(keyBytes), keyGroup, describe, std::decay_t<F>(std::forward<F>(fn)));
    record->setTimestamp(timestamp);
    if (!inserted) {
      it->second.push_back(record);
      ++metrics_.blockedRecords;
      return;
    }
    start(record);
  }

  void start(detail::RecordContext* record) {
    {
      detail::RecordScope scope(*runtime_, record);
      try {
        record->run();
      } catch (...) {
        reportUnhandled(AsyncError(std::current_exception(), "", record->keyText(), "processElement"));
      }
    }
    ++metrics_.recordsProcessed;
    record->release();
  }

  void finished(detail::RecordContext* record) {
    --metrics_.inFlightRecords;
    latency_.add(std::chrono::steady_clock::now() - record->admitted());
    auto it = activeKeys_.find(record->keyBytes());
    if (it->second.empty()) {
      activeKeys_.erase(it);
    } else {
      // The key stays active: its next record starts from the pump loop, not nested here.
      readyRecords_.push_back(it->second.front());
      it->second.pop_front();
      --metrics_.blockedRecords;
    }
    const std::size_t size = record->allocationSize();
    record->~RecordContext();
    runtime_->deallocate(record, size);
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

  std::uint32_t allocateSlot() {
    ++metrics_.pendingRequests;
    if (freeSlot_ != kNoSlot) {
      const std::uint32_t slot = freeSlot_;
      freeSlot_ = slots_[slot].nextFree;
      return slot;
    }
    slots_.emplace_back();
    return static_cast<std::uint32_t>(slots_.size() - 1);
  }

  void releaseSlot(std::uint32_t slot) {
    --metrics_.pendingRequests;
    Slot& s = slots_[slot];
    s.core = nullptr;
    ++s.generation;
    s.nextFree = freeSlot_;
    freeSlot_ = slot;
  }

  void flushBuffer(FlushReason reason) {
    if (buffer_.empty()) return;
    // Requests derived while draining may overdraw the batch size; keep batches bounded.
    std::vector<StateRequest> pending = std::exchange(buffer_, {});
    // The backend keeps the old buffer; the next batch is likely as large as this one.
    buffer_.reserve(std::min(pending.size(), options_.batchSize));
    const std::size_t batches = (pending.size() + options_.batchSize - 1) / options_.batchSize;
    (reason == FlushReason::Size      ? metrics_.sizeFlushes
     : reason == FlushReason::Timeout ? metrics_.timeoutFlushes
                                      : metrics_.drainFlushes) += batches;
    metrics_.batchesSent += batches;
    metrics_.requestsSent += pending.size();
    if (batches == 1) {
      backend_.executeBatch(std::move(pending), *this);
      return;
    }
    for (auto chunk : pending | ranges::views::move | ranges::views::chunk(options_.batchSize)) {
      backend_.executeBatch(chunk | ranges::to<std::vector<StateRequest>>(), *this);
    }
  }

  // CompletionSink: from the task thread (inline backends) straight into the local
  // queue; from backend threads through the locked mailbox.
  void complete(std::uint64_t ticket, StateResult result) override {
    enqueue(Completion{ticket, std::move(result), nullptr});
  }
  void fail(std::uint64_t ticket, std::exception_ptr error) override {
    enqueue(Completion{ticket, {}, std::move(error)});
  }
  void enqueue(Completion&& completion) {
    if (detail::tlsRuntime == runtime_.get()) {
      local_.push_back(std::move(completion));
      return;
    }
    // Notifying under the lock: once the task thread has taken this completion it may
    // destroy the controller, so this thread must be done with the condition variable.
    std::lock_guard lock(mailboxMutex_);
    mailbox_.push_back(std::move(completion));
    mailboxReady_.notify_one();
  }

  // Completes answered requests and starts unblocked records. Returns whether anything happened.
  bool pump() {
    bool progressed = false;
    for (;;) {
      if (local_.empty()) {
        std::lock_guard lock(mailboxMutex_);
        local_.swap(mailbox_);
      }
      if (local_.empty() && readyRecords_.empty()) return progressed;
      progressed = true;
      std::vector<Completion> batch = std::exchange(local_, std::move(spare_));
      for (Completion& completion : batch) deliver(completion);
      batch.clear();
      spare_ = std::move(batch);
      while (!readyRecords_.empty()) {
        detail::RecordContext* next = readyRecords_.front();
        readyRecords_.pop_front();
        start(next);
      }
    }
  }

  void deliver(Completion& completion) {
    const auto slotIndex = static_cast<std::uint32_t>(completion.ticket);
    const auto generation = static_cast<std::uint32_t>(completion.ticket >> 32);
    if (slotIndex >= slots_.size() || slots_[slotIndex].generation != generation || slots_[slotIndex].core == nullptr) {
      logLine("backend " + backend_.name() + " answered unknown or already answered request ticket " +
              std::to_string(completion.ticket) + "; ignored");
      return;
    }
    Slot slot = slots_[slotIndex];
    releaseSlot(slotIndex);
    detail::RecordContext* record = slot.record;
    {
      detail::RecordScope scope(*runtime_, record);
      std::exception_ptr error = completion.error;
      if (!error) {
        try {
          slot.finish(slot, completion.result);
        } catch (...) {
          error = std::current_exception();  // the answer could not be decoded
        }
      }
      if (error) slot.fail(slot, AsyncError(error, slot.state->name, record->keyText(), slot.operation));
    }
    record->release();
  }

  void pumpAndFlushOnTimeout() {
    pump();
    if (!buffer_.empty() && std::chrono::steady_clock::now() >= bufferDeadline_) {
      flushBuffer(FlushReason::Timeout);
      pump();
    }
  }

  // Blocks until a completion arrives or the buffer deadline passes.
  void waitForCompletions(std::chrono::steady_clock::time_point until) {
    if (!buffer_.empty() && bufferDeadline_ < until) until = bufferDeadline_;
    std::unique_lock lock(mailboxMutex_);
    mailboxReady_.wait_until(lock, until, [&] { return !mailbox_.empty(); });
  }

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
    if (metrics_.pendingRequests == 0 && buffer_.empty()) {
      throw AsyncStateException(
          {AsyncError(std::make_exception_ptr(std::logic_error(
                          std::to_string(metrics_.inFlightRecords) +
                          " records are in flight but no state request is outstanding: a future they wait on can never "
                          "complete (a StatePromise never completed?)")),
                      "", "", "wait for in-flight records")});
    }
    const auto deadline = std::chrono::steady_clock::now() + options_.stallTimeout;
    while (!pump()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        throw AsyncStateException({AsyncError(
            std::make_exception_ptr(std::runtime_error("backend " + backend_.name() + " answered none of " +
                                                       std::to_string(metrics_.pendingRequests) + " requests within " +
                                                       std::to_string(options_.stallTimeout.count()) + " ms")),
            "", "", "wait for backend")});
      }
      waitForCompletions(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
      backend_.poll();
    }
  }

  void drainAll() {
    for (;;) {
      flushBuffer(FlushReason::Wait);
      pump();
      if (metrics_.inFlightRecords == 0 && metrics_.pendingRequests == 0 && buffer_.empty()) return;
      waitForProgress();
    }
  }

  void logLine(const std::string& text) const {
    if (options_.log != nullptr) *options_.log << "asyncstate: " << text << '\n';
  }

  static constexpr std::uint32_t kNoSlot = 0xFFFFFFFFu;

  StateBackend& backend_;
  ControllerOptions options_;
  std::unique_ptr<detail::ControllerRuntime> runtime_;
  ControllerMetrics metrics_;
  std::vector<AsyncError> failures_;

  std::vector<StateRequest> buffer_;
  std::chrono::steady_clock::time_point bufferDeadline_;

  std::vector<Slot> slots_;
  std::uint32_t freeSlot_ = kNoSlot;

  std::vector<Completion> local_;
  std::vector<Completion> spare_;
  std::mutex mailboxMutex_;
  std::condition_variable mailboxReady_;
  std::vector<Completion> mailbox_;

  // Keys with a record in flight, each with the records waiting behind it.
  std::unordered_map<std::string, std::deque<detail::RecordContext*>> activeKeys_;
  std::deque<detail::RecordContext*> readyRecords_;
  LatencyHistogram latency_;
};

void detail::ControllerRuntime::reportUnhandled(AsyncError error) {
  if (owner_ != nullptr) {
    owner_->reportUnhandled(std::move(error));
  } else {
    std::cerr << "asyncstate: failure after its controller was destroyed: " << error.message() << '\n';
  }
}

void detail::ControllerRuntime::recordFinished(RecordContext* record) {
  if (owner_ != nullptr) owner_->finished(record);
}

}  // namespace asyncstate
