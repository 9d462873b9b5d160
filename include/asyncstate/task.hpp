#pragma once
// Task<T>: the coroutine type for straight-line async UDF code. A Task starts eagerly,
// runs until its first co_await on a pending StateFuture, and resumes on the task
// thread under the same record (so the current key is right) when that completes.
// A Task is a StateFuture<T>: chain it, await it, or drop it (a failure then reaches
// the error handler, like any dropped failed future).

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

template <class T>
class PromiseBase {
 public:
  // Frames come from the current controller's pool; the runtime pointer is kept in
  // front of the frame so the frame returns to the right pool.
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

  void unhandled_exception() {
    std::exception_ptr error = std::current_exception();
    if (lastAwaitedError && lastAwaitedError->error() == error) {
      error_.emplace(std::move(*lastAwaitedError));
      lastAwaitedError.reset();
      return;
    }
    error_.emplace(AsyncError(error, "", currentRuntime().currentKeyText(), "Task"));
  }

 protected:
  static constexpr std::size_t kHeader = alignof(std::max_align_t);

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

template <class T = void>
class [[nodiscard]] Task : public StateFuture<T> {
 public:
  class promise_type;

  Task(Task&&) noexcept = default;
  Task& operator=(Task&&) noexcept = default;

 private:
  explicit Task(detail::Core<detail::Stored<T>>* core) : StateFuture<T>(core) {}
};

template <class T>
class Task<T>::promise_type : public detail::PromiseBase<T> {
 public:
  Task get_return_object() { return Task(this->makeCore()); }
  template <class V>
  void return_value(V&& value) {
    this->value_.emplace(T(std::forward<V>(value)));
  }
};

template <>
class Task<void>::promise_type : public detail::PromiseBase<void> {
 public:
  Task get_return_object() { return Task(this->makeCore()); }
  void return_void() { this->value_.emplace(); }
};

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

template <class T>
detail::FutureAwaiter<T> operator co_await(Task<T>&& task) {
  return detail::FutureAwaiter<T>(std::move(task));
}

}  // namespace asyncstate
