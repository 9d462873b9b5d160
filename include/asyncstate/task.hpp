#pragma once
// Coroutines over StateFuture: a function returning StateFuture<T> (Task<T> is an
// alias) may co_await state futures and reads as straight-line code. It starts
// eagerly, runs until its first co_await on a pending future, and resumes on the task
// thread under the same record (so the current key is right) when that completes. Its
// result is an ordinary StateFuture: chain it, await it, or drop it (a failure then
// reaches the error handler, like any dropped failed future).

#include <asyncstate/detail/future_core.hpp>
#include <asyncstate/detail/runtime.hpp>
#include <asyncstate/future.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <utility>

namespace asyncstate {

namespace detail {

// The failure an awaiter last rethrew into a coroutine, so that a coroutine that does
// not catch it fails with the original context (state, key, operation).
inline thread_local std::optional<AsyncError> lastAwaitedError;

// Frames come from the current controller's pool; the runtime pointer is kept in front
// of the frame so the frame returns to the right pool.
class PooledFrame {
 public:
  static void* operator new(std::size_t size) {
    Runtime& runtime = currentRuntime();
    void* raw = runtime.allocate(size + kHeader);
    *static_cast<Runtime**>(raw) = &runtime;
    return static_cast<std::byte*>(raw) + kHeader;
  }
  static void operator delete(void* frame, std::size_t size) noexcept {
    void* raw = static_cast<std::byte*>(frame) - kHeader;
    (*static_cast<Runtime**>(raw))->deallocate(raw, size + kHeader);
  }

 private:
  static constexpr std::size_t kHeader = alignof(std::max_align_t);
};

// The failure of a coroutine body: the one an awaiter rethrew keeps its context.
inline AsyncError coroutineFailure(std::exception_ptr error, const char* operation) {
  if (lastAwaitedError && lastAwaitedError->error() == error) {
    AsyncError original = std::move(*lastAwaitedError);
    lastAwaitedError.reset();
    return original;
  }
  return AsyncError(std::move(error), "", currentRuntime().currentKeyText(), operation);
}

template <class T>
class PromiseBase : public PooledFrame {
 public:
  // The outcome is published from the final suspension, after the body's locals are
  // destroyed and the frame is freed: an awaiting caller resumes only once this
  // coroutine is over, as after a plain call. Completing from return_value() instead
  // would let the caller run (and end, freeing what it lent us) while our locals live.
  class FinalAwaiter {
   public:
    bool await_ready() const noexcept { return false; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> coroutine) noexcept {
      PromiseBase& promise = coroutine.promise();
      Producer<Stored<T>> producer = std::move(promise.producer_);
      std::optional<Stored<T>> value = std::move(promise.value_);
      std::optional<AsyncError> error = std::move(promise.error_);
      coroutine.destroy();  // nothing below touches the frame (this awaiter lives in it)
      if (error) {
        producer.setError(std::move(*error));
      } else {
        producer.setValue(std::move(*value));
      }
    }
    void await_resume() const noexcept {}
  };

  std::suspend_never initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() { error_.emplace(coroutineFailure(std::current_exception(), "Task")); }

 protected:
  Core<Stored<T>>* makeCore() {
    auto* core = Core<Stored<T>>::create(currentRuntime());
    producer_ = Producer<Stored<T>>(core);
    return core;
  }

  Producer<Stored<T>> producer_;
  std::optional<Stored<T>> value_;   // set by co_return
  std::optional<AsyncError> error_;  // set by an exception leaving the body
};

}  // namespace detail

namespace detail {

template <class T>
class FuturePromise : public PromiseBase<T> {
 public:
  StateFuture<T> get_return_object() { return StateFuture<T>(this->makeCore()); }
  template <class V>
  void return_value(V&& value) {
    this->value_.emplace(T(std::forward<V>(value)));
  }
};

template <>
class FuturePromise<void> : public PromiseBase<void> {
 public:
  StateFuture<void> get_return_object() { return StateFuture<void>(this->makeCore()); }
  void return_void() { this->value_.emplace(); }
};

}  // namespace detail

// The coroutine type is the future type: a coroutine returning StateFuture<T> (or its
// alias Task<T>) can be chained, awaited, returned from thenCompose, or dropped.
template <class T = void>
using Task = StateFuture<T>;

namespace detail {

template <class T>
class FutureAwaiter {
 public:
  explicit FutureAwaiter(StateFuture<T>&& future) : future_(std::move(future)) {}

  bool await_ready() const { return future_.isDone(); }

  void await_suspend(std::coroutine_handle<> coroutine) {
    FutureAccess::observe(
        std::move(future_),
        [this, coroutine](StateFuture<T>&& ready) {
          future_ = std::move(ready);
          coroutine.resume();
        },
        "co_await");
  }

  // The value, or the failure rethrown into the coroutine (catchable there).
  T await_resume() {
    std::optional<Stored<T>> value;
    std::optional<AsyncError> error;
    FutureAccess::consumeReady(
        std::move(future_), [&](Stored<T>& v) { value.emplace(std::move(v)); },
        [&](AsyncError& e) { error.emplace(std::move(e)); });
    if (error) {
      std::exception_ptr original = error->error();
      lastAwaitedError = std::move(error);
      std::rethrow_exception(original);
    }
    if constexpr (!std::is_void_v<T>) return std::move(*value);
  }

 private:
  StateFuture<T> future_;
};

}  // namespace detail

template <class T>
detail::FutureAwaiter<T> operator co_await(StateFuture<T>&& future) {
  return detail::FutureAwaiter<T>(std::move(future));
}

// A future has one consumer, so awaiting a named one must say that it gives it away.
template <class T>
detail::FutureAwaiter<T> operator co_await(StateFuture<T>& future) {
  static_assert(detail::kAlwaysFalse<T>,
                "co_await on a named StateFuture: a future has exactly one consumer, so hand it over with "
                "`co_await std::move(f)` (or await the call directly: `co_await state.asyncValue()`)");
  return detail::FutureAwaiter<T>(std::move(future));
}

}  // namespace asyncstate

// A function returning StateFuture<T> may be a coroutine.
template <class T, class... Args>
struct std::coroutine_traits<asyncstate::StateFuture<T>, Args...> {
  using promise_type = asyncstate::detail::FuturePromise<T>;
};
