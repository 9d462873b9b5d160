#pragma once
// StatePromise: a pooled pending future completed later on the task thread (by a
// timer, an external event source, a benchmark). Obtained from the controller
// (AsyncExecutionController::newPromise); completed exactly once.

#include <asyncstate/detail/config.hpp>
#include <asyncstate/detail/future_core.hpp>
#include <asyncstate/error.hpp>
#include <asyncstate/future.hpp>

#include <string>
#include <type_traits>
#include <utility>

namespace asyncstate {

template <class T>
class StatePromise {
  using Core = detail::Core<detail::Stored<T>>;

 public:
  StatePromise() = default;
  explicit StatePromise(Core* core) noexcept : producer_(core), untaken_(core) {}
  StatePromise(StatePromise&& other) noexcept
      : producer_(std::move(other.producer_)), untaken_(std::exchange(other.untaken_, nullptr)) {}
  StatePromise& operator=(StatePromise&& other) noexcept {
    if (this != &other) {
      if (untaken_ != nullptr) dropUntakenFuture(std::exchange(untaken_, nullptr));
      producer_ = std::move(other.producer_);
      untaken_ = std::exchange(other.untaken_, nullptr);
    }
    return *this;
  }
  StatePromise(const StatePromise&) = delete;
  StatePromise& operator=(const StatePromise&) = delete;
  // A future never taken lets go of its core here; the producer's own destructor then
  // fails the core if nobody completed it, and that failure reaches the error handler.
  ASYNCSTATE_ALWAYS_INLINE ~StatePromise() {
    if (untaken_ != nullptr) [[unlikely]]
      dropUntakenFuture(untaken_);
  }

  // The consumer side; taken once (like std::promise::get_future).
  StateFuture<T> future() {
    if (untaken_ == nullptr) [[unlikely]]
      throwMisuse("future", "the future was already taken");
    return StateFuture<T>(std::exchange(untaken_, nullptr));
  }

  template <class... V>
  ASYNCSTATE_ALWAYS_INLINE void setValue(V&&... value) {
    requireUncompleted("setValue");
    if constexpr (std::is_void_v<T>) {
      producer_.setValue(detail::Unit{});
    } else {
      producer_.setValue(T(std::forward<V>(value)...));
    }
  }
  void setError(AsyncError error) {
    requireUncompleted("setError");
    producer_.setError(std::move(error));
  }

 private:
  ASYNCSTATE_ALWAYS_INLINE void requireUncompleted(const char* operation) const {
    if (!producer_) [[unlikely]]
      throwMisuse(operation, "the promise was already completed");
  }
  // Either misuse may also be a promise that never came from newPromise(): said once, here.
  [[noreturn]] ASYNCSTATE_COLD static void throwMisuse(const char* operation, const char* what) {
    throw FutureMisuseError(std::string("StatePromise::") + operation + ": " + what +
                            ", or the promise was default-constructed instead of taken from "
                            "AsyncExecutionController::newPromise()");
  }
  // The consumer reference a promise holds until future() is called goes the way a
  // dropped pending future's goes. Static, as are the cold paths of Producer and
  // StateFuture, and the hot paths are inlined: a member function called out of line
  // takes the object's address, and a promise or future whose address escapes lives on
  // the stack instead of in registers. That cost a pending continuation 7.2 ns instead
  // of 5.4 (bench/analysis.md, eighth round).
  ASYNCSTATE_COLD static void dropUntakenFuture(Core* untaken) noexcept { untaken->dropConsumer(); }

  // A promise is two pointers, not a producer and a whole future: with many promises
  // waiting (a batch of requests, a benchmark's in-flight set) that is a third less
  // memory to walk.
  detail::Producer<detail::Stored<T>> producer_;
  Core* untaken_ = nullptr;
};

}  // namespace asyncstate
