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
 public:
  StatePromise() = default;
  explicit StatePromise(detail::Core<detail::Stored<T>>* core) : producer_(core), future_(core) {}

  // The consumer side; may be taken once.
  StateFuture<T> future() { return std::move(future_); }

  template <class... V>
  void setValue(V&&... value) {
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
      throwCompleted(operation);
  }
  [[noreturn]] ASYNCSTATE_COLD static void throwCompleted(const char* operation) {
    throw FutureMisuseError(std::string("StatePromise::") + operation +
                            ": the promise was already completed, or was default-constructed instead of taken "
                            "from AsyncExecutionController::newPromise()");
  }

  detail::Producer<detail::Stored<T>> producer_;
  StateFuture<T> future_;
};

}  // namespace asyncstate
