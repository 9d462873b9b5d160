#pragma once
// The UDF side: KeyedProcessFunction, its Context, Collector, and RuntimeContext,
// which hands out states by Flink's names and owns them for the function's lifetime.
// processElement and onTimer may be coroutines (co_await in the body): the record
// then finishes when the coroutine and everything it started have finished.

#include <asyncstate/controller.hpp>
#include <asyncstate/detail/printable_bytes.hpp>
#include <asyncstate/serializer.hpp>
#include <asyncstate/state.hpp>
#include <asyncstate/task.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate {

template <class Out>
class Collector {
 public:
  virtual ~Collector() = default;
  virtual void collect(Out value) = 0;
};

namespace detail {

template <class X>
struct IsCollectorRef : std::false_type {};
template <class Out>
struct IsCollectorRef<Collector<Out>&> : std::true_type {};

// The promise of a `void` member taking a Collector<Out>& written as a coroutine
// (processElement, onTimer, or a helper of the same shape). It holds the current
// record until the body has finished, so the record's key stays blocked and its
// watermark waits; a failure escaping the body goes to the error handler once.
class RecordCoroutinePromise : public PooledFrame {
 public:
  RecordCoroutinePromise() : record_(currentRuntime().currentRecord()) {
    if (record_ != nullptr) record_->retain();
  }

  void get_return_object() noexcept {}
  // NOLINTNEXTLINE(readability-convert-member-functions-to-static): the coroutine protocol calls it on the promise
  std::suspend_never initial_suspend() noexcept { return {}; }

  // Frees the frame (locals first), then lets the record go: releasing it may finish
  // the record, and nothing of the body may outlive that.
  class FinalAwaiter {
   public:
    // NOLINTNEXTLINE(readability-convert-member-functions-to-static): called on the awaiter object
    bool await_ready() const noexcept { return false; }
    // NOLINTNEXTLINE(readability-convert-member-functions-to-static): called on the awaiter object
    void await_suspend(std::coroutine_handle<RecordCoroutinePromise> coroutine) noexcept {
      RecordContext* record = coroutine.promise().record_;
      coroutine.destroy();
      if (record != nullptr) record->release();
    }
    void await_resume() const noexcept {}
  };
  // NOLINTNEXTLINE(readability-convert-member-functions-to-static): the coroutine protocol calls it on the promise
  FinalAwaiter final_suspend() noexcept { return {}; }

  void return_void() noexcept {}
  // NOLINTNEXTLINE(readability-convert-member-functions-to-static): the coroutine protocol calls it on the promise
  void unhandled_exception() {
    currentRuntime().reportUnhandled(coroutineFailure(std::current_exception(), "processElement coroutine"));
  }

 private:
  RecordContext* record_;
};

}  // namespace detail

// Event-time timers, one set per function, keyed by (timestamp, encoded key). A class
// template only so that its code is compiled by the translation units that run a
// function; the name to use is TimerService.
template <class = void>
class BasicTimerService {
 public:
  static constexpr std::int64_t kNoWatermark = std::numeric_limits<std::int64_t>::min();

  void registerTimer(std::int64_t timestamp, std::string keyBytes) { timers_.emplace(timestamp, std::move(keyBytes)); }
  void deleteTimer(std::int64_t timestamp, const std::string& keyBytes) {
    timers_.erase(std::pair<std::int64_t, std::string>(timestamp, keyBytes));
  }
  std::int64_t currentWatermark() const noexcept { return watermark_; }
  void setWatermark(std::int64_t watermark) noexcept { watermark_ = watermark; }

  // Removes and returns the timers due at `watermark`, in timestamp order.
  std::vector<std::pair<std::int64_t, std::string>> takeDue(std::int64_t watermark) {
    std::vector<std::pair<std::int64_t, std::string>> due;
    while (!timers_.empty() && timers_.begin()->first <= watermark) {
      due.push_back(timers_.extract(timers_.begin()).value());
    }
    return due;
  }

  std::string encodeAll() const {
    return encode(std::vector<std::pair<std::int64_t, std::string>>(timers_.begin(), timers_.end()));
  }
  void restoreAll(std::string_view bytes) {
    // encodeAll() lists each timer once: a repeat means the bytes are corrupt.
    std::set<std::pair<std::int64_t, std::string>> restored;
    for (auto& timer : decode<std::vector<std::pair<std::int64_t, std::string>>>(bytes)) {
      if (!restored.insert(timer).second) {
        throw SerializationError("corrupt timers: the timer of key " + detail::printableBytes(timer.second) + " at " +
                                 std::to_string(timer.first) + " is listed twice");
      }
    }
    timers_ = std::move(restored);
  }
  std::size_t size() const noexcept { return timers_.size(); }

 private:
  std::set<std::pair<std::int64_t, std::string>> timers_;
  std::int64_t watermark_ = kNoWatermark;
};

using TimerService = BasicTimerService<>;

class RuntimeContext {
 public:
  RuntimeContext(AsyncExecutionController& controller, TimerService& timers)
      : controller_(controller), timers_(timers) {}
  RuntimeContext(const RuntimeContext&) = delete;
  RuntimeContext& operator=(const RuntimeContext&) = delete;

  template <class V>
  ValueState<V>& getState(const ValueStateDescriptor<V>& descriptor) {
    return obtain<ValueState<V>>(descriptor.name, descriptor);
  }
  template <class V>
  ListState<V>& getListState(const ListStateDescriptor<V>& descriptor) {
    return obtain<ListState<V>>(descriptor.name, descriptor);
  }
  template <class UK, class UV>
  MapState<UK, UV>& getMapState(const MapStateDescriptor<UK, UV>& descriptor) {
    return obtain<MapState<UK, UV>>(descriptor.name, descriptor);
  }
  template <class V>
  ReducingState<V>& getReducingState(const ReducingStateDescriptor<V>& descriptor) {
    return obtain<ReducingState<V>>(descriptor.name, descriptor);
  }
  template <class In, class Acc, class Out>
  AggregatingState<In, Acc, Out>& getAggregatingState(const AggregatingStateDescriptor<In, Acc, Out>& descriptor) {
    return obtain<AggregatingState<In, Acc, Out>>(descriptor.name, descriptor);
  }

  AsyncExecutionController& controller() noexcept { return controller_; }
  TimerService& timers() noexcept { return timers_; }

 private:
  struct Holder {
    virtual ~Holder() = default;
  };
  template <class S>
  struct HolderOf final : Holder {
    template <class D>
    HolderOf(AsyncExecutionController& c, const D& d) : state(c, d) {}
    S state;
  };

  // The same name returns the same state; the same name with another type is an error.
  template <class S, class D>
  S& obtain(const std::string& name, const D& descriptor) {
    auto it = states_.find(name);
    if (it == states_.end()) {
      it = states_.emplace(name, std::make_unique<HolderOf<S>>(controller_, descriptor)).first;
    }
    auto* holder = dynamic_cast<HolderOf<S>*>(it->second.get());
    if (holder == nullptr) {
      throw std::invalid_argument("state '" + name + "' was already created with a different state or value type");
    }
    return holder->state;
  }

  AsyncExecutionController& controller_;
  TimerService& timers_;
  std::map<std::string, std::unique_ptr<Holder>> states_;
};

template <class K, class In, class Out>
class KeyedProcessFunction {
 public:
  using KeyType = K;
  using InputType = In;
  using OutputType = Out;

  // What a UDF knows about the record it is processing. It reads the current record
  // from the controller, so inside a continuation it answers for that continuation's
  // record, never for a later one.
  class Context {
   public:
    Context(AsyncExecutionController& controller, TimerService& timers) : controller_(controller), timers_(timers) {}

    K currentKey() const { return decode<K>(controller_.currentRecord("Context::currentKey").keyBytes()); }
    std::int64_t timestamp() const { return controller_.currentRecord("Context::timestamp").timestamp(); }
    std::int64_t currentWatermark() const { return timers_.currentWatermark(); }

    // Fires onTimer(timestamp) for the current key once the watermark passes timestamp.
    void registerEventTimeTimer(std::int64_t timestamp) {
      timers_.registerTimer(timestamp, controller_.currentRecord("registerEventTimeTimer").keyBytes());
    }
    void deleteEventTimeTimer(std::int64_t timestamp) {
      timers_.deleteTimer(timestamp, controller_.currentRecord("deleteEventTimeTimer").keyBytes());
    }

   private:
    AsyncExecutionController& controller_;
    TimerService& timers_;
  };

  virtual ~KeyedProcessFunction() = default;
  virtual void open(RuntimeContext&) {}
  virtual void processElement(const In& value, Context& ctx, Collector<Out>& out) = 0;
  virtual void onTimer(std::int64_t, Context&, Collector<Out>&) {}
  virtual void close() {}
};

}  // namespace asyncstate

// `void processElement(const In&, Context&, Collector<Out>&)` (and onTimer) may be a
// coroutine: a void member whose parameters include a Collector<Out>& gets the
// record-holding promise above.
template <class Self, class... Args>
  requires(asyncstate::detail::IsCollectorRef<Args>::value || ...)
struct std::coroutine_traits<void, Self&, Args...> {
  using promise_type = asyncstate::detail::RecordCoroutinePromise;
};
