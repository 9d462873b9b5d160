#pragma once
// StateFuture<T>: the result of an async state request. Move-only, single consumer.
// A future that is already complete holds its value inline (no allocation); a pending
// one points to a pooled Core. Continuations on a complete future run inline; on a
// pending one they run on the task thread when the controller completes the request.

#include <asyncstate/detail/config.hpp>
#include <asyncstate/detail/future_core.hpp>
#include <asyncstate/error.hpp>

#include <concepts>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace asyncstate {

template <class T>
class StateFuture;

namespace detail {

template <class X>
struct IsStateFuture : std::false_type {};
template <class X>
struct IsStateFuture<StateFuture<X>> : std::true_type {};

// Derived classes (Task) count as futures of their value type.
template <class X>
concept FutureLike = requires { typename std::decay_t<X>::value_type; } &&
                     std::derived_from<std::decay_t<X>, StateFuture<typename std::decay_t<X>::value_type>>;

template <class T, class F>
decltype(auto) invokeWithValue(F& f, Stored<T>& value) {
  if constexpr (std::is_void_v<T>) {
    return std::invoke(f);
  } else {
    return std::invoke(f, std::move(value));
  }
}

template <class T, class F>
struct ValueResult {
  using type = std::invoke_result_t<F&, T>;
};
template <class F>
struct ValueResult<void, F> {
  using type = std::invoke_result_t<F&>;
};
template <class T, class F>
using ValueResultT = typename ValueResult<T, F>::type;

AsyncError continuationError(std::exception_ptr error, const char* operation);

}  // namespace detail

template <class T>
StateFuture<T> completedFuture(T value);
StateFuture<void> completedVoidFuture();
template <class T>
StateFuture<T> failedFuture(AsyncError error);

template <class T>
class [[nodiscard]] StateFuture {
  using StoredT = detail::Stored<T>;

 public:
  using value_type = T;

  StateFuture() noexcept : mode_(Mode::Empty), consumedBy_("default construction") {}
  StateFuture(StateFuture&& other) noexcept
      : mode_(std::exchange(other.mode_, Mode::Empty)),
        consumedBy_(mode_ == Mode::Empty ? other.consumedBy_ : nullptr),
        value_(std::move(other.value_)),
        error_(std::move(other.error_)),
        core_(std::exchange(other.core_, nullptr)) {
    other.value_.reset();
    other.consumedBy_ = "a move";
  }
  StateFuture& operator=(StateFuture&& other) noexcept {
    if (this != &other) {
      discard();
      mode_ = std::exchange(other.mode_, Mode::Empty);
      consumedBy_ = mode_ == Mode::Empty ? other.consumedBy_ : nullptr;
      value_ = std::move(other.value_);
      other.value_.reset();
      error_ = std::move(other.error_);
      core_ = std::exchange(other.core_, nullptr);
      other.consumedBy_ = "a move";
    }
    return *this;
  }
  StateFuture(const StateFuture&) = delete;
  StateFuture& operator=(const StateFuture&) = delete;
  ~StateFuture() {
    // Only a failed or pending future has anything to report or release; keeping the
    // common case inline makes a ready continuation cost little more than a call.
    if (mode_ == Mode::Failed || mode_ == Mode::Pending) [[unlikely]]
      discard();
  }

  // --- queries -----------------------------------------------------------------
  bool isDone() const {
    requireUsable("isDone()");
    return mode_ != Mode::Pending || core_->status() != detail::CoreBase::Status::Pending;
  }
  bool isFailed() const {
    requireUsable("isFailed()");
    return mode_ == Mode::Failed || (mode_ == Mode::Pending && core_->status() == detail::CoreBase::Status::Failed);
  }
  // False once the future was moved from or consumed by a continuation.
  bool valid() const noexcept { return mode_ != Mode::Empty; }

  // --- continuations (each consumes *this) -------------------------------------

  // f(value) -> void.
  template <class F>
  StateFuture<void> thenAccept(F&& f) && {
    return std::move(*this).template then<void>(
        [fn = std::forward<F>(f)](StateFuture<T>&& ready) mutable -> StateFuture<void> {
          if (ready.mode_ == Mode::Failed) return StateFuture<void>::failedFrom(ready.releaseErrorBox());
          detail::invokeWithValue<T>(fn, *ready.value_);
          return completedVoidFuture();
        },
        "thenAccept");
  }

  // f(value) -> U.
  template <class F>
  auto thenApply(F&& f) && {
    return std::move(*this).applyAs(std::forward<F>(f), "thenApply");
  }

 private:
  // thenApply under the name of the combinator the user called, so that a throwing
  // function is reported as that combinator's continuation.
  template <class F>
  auto applyAs(F&& f, const char* operation) && {
    using U = detail::ValueResultT<T, F>;
    return std::move(*this).template then<U>(
        [fn = std::forward<F>(f)](StateFuture<T>&& ready) mutable -> StateFuture<U> {
          if (ready.mode_ == Mode::Failed) return StateFuture<U>::failedFrom(ready.releaseErrorBox());
          if constexpr (std::is_void_v<U>) {
            detail::invokeWithValue<T>(fn, *ready.value_);
            return completedVoidFuture();
          } else {
            return completedFuture<U>(detail::invokeWithValue<T>(fn, *ready.value_));
          }
        },
        operation);
  }

 public:
  // f(value) -> StateFuture<U>; the result completes when the inner future does.
  template <class F>
  auto thenCompose(F&& f) && {
    using Inner = std::decay_t<detail::ValueResultT<T, F>>;
    static_assert(detail::FutureLike<Inner>, "thenCompose: the function must return a StateFuture");
    using U = typename Inner::value_type;
    return std::move(*this).template then<U>(
        [fn = std::forward<F>(f)](StateFuture<T>&& ready) mutable -> StateFuture<U> {
          if (ready.mode_ == Mode::Failed) return StateFuture<U>::failedFrom(ready.releaseErrorBox());
          StateFuture<U> inner(detail::invokeWithValue<T>(fn, *ready.value_));
          // Checked here, not only in forward(): on a complete source the step's result is
          // handed to the caller as is, and an empty future would drop the mistake silently.
          if (!inner.valid()) throw FutureMisuseError("thenCompose: the function returned a consumed StateFuture");
          return inner;
        },
        "thenCompose");
  }

  // f(a, b) -> R once both futures are complete. Failures of both are both reported:
  // the first reaches the result, the second the error handler.
  template <class U, class F>
  auto thenCombine(StateFuture<U>&& other, F&& f) && {
    return std::move(*this).thenCompose([other = std::move(other), fn = std::forward<F>(f)](auto&&... mine) mutable {
      return std::move(other).applyAs(
          [fn = std::move(fn), ... mine = std::move(mine)](auto&&... theirs) mutable {
            return std::invoke(fn, std::move(mine)..., std::move(theirs)...);
          },
          "thenCombine");
    });
  }

  // Runs ifTrue(value) or ifFalse(value) depending on pred(value); the result tells
  // which branch ran.
  template <class P, class FT, class FF>
  StateFuture<bool> thenConditionallyAccept(P&& pred, FT&& ifTrue, FF&& ifFalse) && {
    return std::move(*this).applyAs(
        [p = std::forward<P>(pred), t = std::forward<FT>(ifTrue),
         e = std::forward<FF>(ifFalse)](auto&&... value) mutable {
          const bool taken = static_cast<bool>(std::invoke(p, std::as_const(value)...));
          if (taken) {
            std::invoke(t, std::move(value)...);
          } else {
            std::invoke(e, std::move(value)...);
          }
          return taken;
        },
        "thenConditionallyAccept");
  }

  // Recovers from a failure: f(const AsyncError&) -> T. A success passes through.
  template <class F>
  StateFuture<T> exceptionally(F&& f) && {
    return std::move(*this).template then<T>(
        [fn = std::forward<F>(f)](StateFuture<T>&& ready) mutable -> StateFuture<T> {
          if (ready.mode_ != Mode::Failed) return std::move(ready);
          // The error is delivered here and nowhere else, even if fn throws.
          const AsyncError error = ready.releaseError();
          if constexpr (std::is_void_v<T>) {
            std::invoke(fn, error);
            return completedVoidFuture();
          } else {
            return completedFuture<T>(std::invoke(fn, error));
          }
        },
        "exceptionally");
  }

  // Sees either outcome: f(std::optional<T> value, const AsyncError* error) -> U, or for
  // StateFuture<void>: f(const AsyncError* error) -> U. `error` is null on success.
  template <class F>
  auto handle(F&& f) && {
    using U = HandleResult<F>;
    return std::move(*this).template then<U>(
        [fn = std::forward<F>(f)](StateFuture<T>&& ready) mutable -> StateFuture<U> {
          std::optional<AsyncError> failure;
          if (ready.mode_ == Mode::Failed) failure.emplace(ready.releaseError());
          const AsyncError* error = failure ? &*failure : nullptr;
          auto call = [&]() -> decltype(auto) {
            if constexpr (std::is_void_v<T>) {
              return std::invoke(fn, error);
            } else {
              std::optional<T> value;
              if (error == nullptr) value.emplace(std::move(*ready.value_));
              return std::invoke(fn, std::move(value), error);
            }
          };
          if constexpr (std::is_void_v<U>) {
            call();
            return completedVoidFuture();
          } else {
            return completedFuture<U>(call());
          }
        },
        "handle");
  }

 private:
  template <class X>
  friend class StateFuture;
  template <class X>
  friend StateFuture<X> completedFuture(X value);
  friend StateFuture<void> completedVoidFuture();
  template <class X>
  friend StateFuture<X> failedFuture(AsyncError error);
  template <class X>
  friend class Task;
  friend struct FutureAccess;

  enum class Mode : std::uint8_t { Empty, Ready, Failed, Pending };

  struct ReadyTag {};
  StateFuture(ReadyTag, StoredT value) : mode_(Mode::Ready), value_(std::move(value)) {}

  template <class F>
  struct HandleResultImpl {
    using type = std::invoke_result_t<F&, std::optional<T>, const AsyncError*>;
  };
  template <class F>
    requires std::is_void_v<T>
  struct HandleResultImpl<F> {
    using type = std::invoke_result_t<F&, const AsyncError*>;
  };
  template <class F>
  using HandleResult = typename HandleResultImpl<F>::type;

 public:
  // Internal: wraps a pending core (the controller and Task create these).
  explicit StateFuture(detail::Core<StoredT>* core) noexcept : mode_(Mode::Pending), core_(core) {}

  // Internal: a future derived from StateFuture (Task) converts to its base.
  template <class D>
    requires(std::derived_from<D, StateFuture> && !std::same_as<D, StateFuture>)
  StateFuture(D&& derived) noexcept : StateFuture(static_cast<StateFuture&&>(derived)) {}

 private:
  void requireUsable(const char* what) const {
    if (mode_ == Mode::Empty) {
      throw FutureMisuseError(std::string("StateFuture::") + what + " on a future that was already consumed by " +
                              (consumedBy_ != nullptr ? consumedBy_ : "an earlier call") +
                              ": a StateFuture has exactly one consumer");
    }
  }

  // Kept out of line and cold so that the success path pays nothing for the reporting.
  ASYNCSTATE_COLD static void reportDropped(std::unique_ptr<AsyncError>& error) noexcept {
    if (error) detail::currentRuntime().reportUnhandled(std::move(*error));
    error.reset();
  }

  // Drops this future's interest: a failure nobody will look at goes to the handler.
  ASYNCSTATE_NOINLINE void discard() noexcept {
    switch (mode_) {
      case Mode::Failed: reportDropped(error_); break;
      case Mode::Pending:
        core_->dropConsumer();
        core_ = nullptr;
        break;
      case Mode::Ready: value_.reset(); break;
      case Mode::Empty: break;
    }
    mode_ = Mode::Empty;
    consumedBy_ = "destruction";
  }

  // Moves a completed core's outcome into an inline future.
  static StateFuture fromCore(detail::Core<StoredT>& core) {
    StateFuture ready;
    if (core.status() == detail::CoreBase::Status::Value) {
      ready.mode_ = Mode::Ready;
      ready.value_.emplace(core.takeValue());
    } else {
      ready.mode_ = Mode::Failed;
      ready.error_ = core.takeError();
    }
    ready.consumedBy_ = nullptr;
    return ready;
  }

  template <class U, class Step>
  ASYNCSTATE_ALWAYS_INLINE static StateFuture<U> runStep(Step& step, StateFuture&& ready,
                                                         const char* operation) noexcept {
    try {
      return step(std::move(ready));
    } catch (...) {
      return failedFuture<U>(detail::continuationError(std::current_exception(), operation));
    }
  }

  // Feeds `source` (a step's result) into `target`; waits for it if it is pending.
  template <class U>
  static void forward(StateFuture<U>&& source, detail::Core<detail::Stored<U>>* target) {
    using SU = detail::Stored<U>;
    switch (source.mode_) {
      case StateFuture<U>::Mode::Ready: target->setValue(std::move(*source.value_)); break;
      case StateFuture<U>::Mode::Failed: target->setError(source.releaseErrorBox()); break;
      case StateFuture<U>::Mode::Pending: {
        detail::Core<SU>* inner = std::exchange(source.core_, nullptr);
        source.mode_ = StateFuture<U>::Mode::Empty;
        if (inner->status() != detail::CoreBase::Status::Pending) {
          StateFuture<U> done = StateFuture<U>::fromCore(*inner);
          inner->release();
          forward(std::move(done), target);
          return;
        }
        inner->setContinuation(
            [target](detail::Core<SU>& completed) { forward(StateFuture<U>::fromCore(completed), target); });
        return;
      }
      case StateFuture<U>::Mode::Empty:
        target->setError(detail::continuationError(
            std::make_exception_ptr(FutureMisuseError("a continuation returned a consumed StateFuture")),
            "thenCompose"));
        break;
    }
    target->release();
  }

  // The one mechanism behind every continuation: `step` maps the completed outcome of
  // this future to a future of U. Complete futures run the step inline; pending ones
  // store it in the core together with the current record, whose key is restored
  // when the step runs.
  template <class U, class Step>
  StateFuture<U> then(Step&& step, const char* operation) && {
    requireUsable(operation);
    consumedBy_ = operation;
    if (mode_ == Mode::Pending && core_->status() == detail::CoreBase::Status::Pending) {
      detail::Core<StoredT>* source = std::exchange(core_, nullptr);
      mode_ = Mode::Empty;
      detail::Runtime& runtime = source->runtime();
      auto* result = detail::Core<detail::Stored<U>>::create(runtime);
      detail::RecordContext* record = runtime.currentRecord();
      if (record != nullptr) record->retain();
      source->setContinuation(
          [s = std::forward<Step>(step), result, record, operation](detail::Core<StoredT>& completed) mutable {
            detail::Runtime& rt = completed.runtime();
            {
              detail::RecordScope scope(rt, record);
              forward(runStep<U>(s, fromCore(completed), operation), result);
            }
            if (record != nullptr) record->release();
          });
      return StateFuture<U>(result);
    }
    if (mode_ == Mode::Pending) {
      StateFuture ready = takeReady();
      consumedBy_ = operation;
      return runStep<U>(step, std::move(ready), operation);
    }
    // Inline outcome: the step reads it in place, so a ready continuation builds no
    // intermediate future.
    StateFuture<U> out = runStep<U>(step, std::move(*this), operation);
    mode_ = Mode::Empty;
    consumedBy_ = operation;
    return out;
  }

  // As releaseError(), keeping the allocation: a failure travels down a chain without
  // being copied or re-boxed at each stage.
  std::unique_ptr<AsyncError> releaseErrorBox() {
    mode_ = Mode::Empty;
    consumedBy_ = "error delivery";
    return std::move(error_);
  }

  static StateFuture failedFrom(std::unique_ptr<AsyncError> error) {
    StateFuture future;
    future.mode_ = Mode::Failed;
    future.consumedBy_ = nullptr;
    future.error_ = std::move(error);
    return future;
  }

  // Hands the error to exactly one new owner; this future no longer reports it.
  AsyncError releaseError() {
    AsyncError error = std::move(*error_);
    error_.reset();
    mode_ = Mode::Empty;
    consumedBy_ = "error delivery";
    return error;
  }

  // Only for a future that is complete (inline or in its core).
  StateFuture takeReady() {
    if (mode_ == Mode::Pending) {
      detail::Core<StoredT>* core = std::exchange(core_, nullptr);
      mode_ = Mode::Empty;
      StateFuture ready = fromCore(*core);
      core->release();
      return ready;
    }
    StateFuture ready(std::move(*this));
    return ready;
  }

  // Calls fn(ready future) once this future is complete: inline if it already is,
  // otherwise from the core under the current record. Creates no result future, which
  // is what combineAll and co_await need.
  template <class Fn>
  void observe(Fn&& fn, const char* operation) && {
    requireUsable(operation);
    if (mode_ == Mode::Pending && core_->status() == detail::CoreBase::Status::Pending) {
      detail::Core<StoredT>* source = std::exchange(core_, nullptr);
      mode_ = Mode::Empty;
      consumedBy_ = operation;
      detail::RecordContext* record = source->runtime().currentRecord();
      if (record != nullptr) record->retain();
      source->setContinuation([f = std::forward<Fn>(fn), record](detail::Core<StoredT>& completed) mutable {
        {
          detail::RecordScope scope(completed.runtime(), record);
          f(fromCore(completed));
        }
        if (record != nullptr) record->release();
      });
      return;
    }
    StateFuture ready = takeReady();
    consumedBy_ = operation;
    fn(std::move(ready));
  }

  Mode mode_;
  const char* consumedBy_ = nullptr;
  std::optional<StoredT> value_;
  std::unique_ptr<AsyncError> error_;
  detail::Core<StoredT>* core_ = nullptr;
};

template <class T>
StateFuture<T> completedFuture(T value) {
  return StateFuture<T>(typename StateFuture<T>::ReadyTag{}, std::move(value));
}

inline StateFuture<void> completedVoidFuture() {
  return StateFuture<void>(StateFuture<void>::ReadyTag{}, detail::Unit{});
}

template <class T>
StateFuture<T> failedFuture(AsyncError error) {
  StateFuture<T> future;
  future.mode_ = StateFuture<T>::Mode::Failed;
  future.consumedBy_ = nullptr;
  future.error_ = std::make_unique<AsyncError>(std::move(error));
  return future;
}

// An exception thrown by user code becomes a failed future that names the record's key.
inline AsyncError detail::continuationError(std::exception_ptr error, const char* operation) {
  return AsyncError(std::move(error), "", currentRuntime().currentKeyText(), std::string(operation) + " continuation");
}

// A failed future from a plain exception, e.g. failedFuture<int>(std::runtime_error("x")).
template <class T, class E>
  requires std::derived_from<std::decay_t<E>, std::exception>
StateFuture<T> failedFuture(E&& exception) {
  return failedFuture<T>(AsyncError(std::make_exception_ptr(std::forward<E>(exception)), "",
                                    detail::currentRuntime().currentKeyText(), "failedFuture"));
}

// Completes when every future has; values keep the input order. The first failure
// (in input order of completion) fails the result; any further failures are
// reported to the error handler, so each one is seen exactly once.
// Reads a complete future's outcome (for the library's own combinators).
struct FutureAccess {
  template <class T, class OnValue, class OnError>
  static void consumeReady(StateFuture<T>&& ready, OnValue&& onValue, OnError&& onError) {
    StateFuture<T> done = ready.takeReady();
    if (done.mode_ == StateFuture<T>::Mode::Ready) {
      onValue(*done.value_);
    } else {
      AsyncError error = done.releaseError();
      onError(error);
    }
  }

  template <class T, class Fn>
  static void observe(StateFuture<T>&& future, Fn&& fn, const char* operation) {
    std::move(future).observe(std::forward<Fn>(fn), operation);
  }
};

namespace detail {

template <class T>
struct CombineState {
  Core<std::vector<T>>* result;
  std::vector<std::optional<T>> values;
  std::size_t remaining;
  std::unique_ptr<AsyncError> firstError;

  void arrived(StateFuture<T>&& ready, std::size_t index) {
    FutureAccess::consumeReady(
        std::move(ready), [&](T& value) { values[index].emplace(std::move(value)); },
        [&](AsyncError& error) {
          if (firstError) {
            currentRuntime().reportUnhandled(std::move(error));
          } else {
            firstError = std::make_unique<AsyncError>(std::move(error));
          }
        });
    if (--remaining == 0) finish();
  }

  void finish() {
    Core<std::vector<T>>* target = result;
    if (firstError) {
      target->setError(std::move(*firstError));
    } else {
      std::vector<T> out;
      out.reserve(values.size());
      for (auto& value : values) out.push_back(std::move(*value));
      target->setValue(std::move(out));
    }
    target->release();
    delete this;
  }
};

}  // namespace detail

template <class T>
  requires(!std::is_void_v<T>)
StateFuture<std::vector<T>> combineAll(std::vector<StateFuture<T>> futures) {
  if (futures.empty()) return completedFuture(std::vector<T>{});
  // Refuse before anything is observed: a throw half-way would leave the inputs already
  // registered pointing at a state nobody finishes.
  for (const StateFuture<T>& future : futures) {
    if (!future.valid()) throw FutureMisuseError("combineAll: an input StateFuture was already consumed");
  }
  auto* state =
      new detail::CombineState<T>{nullptr, std::vector<std::optional<T>>(futures.size()), futures.size() + 1, nullptr};
  state->result = detail::Core<std::vector<T>>::create(detail::currentRuntime());
  StateFuture<std::vector<T>> result(state->result);
  for (std::size_t i = 0; i < futures.size(); ++i) {
    FutureAccess::observe(
        std::move(futures[i]), [state, i](StateFuture<T>&& ready) { state->arrived(std::move(ready), i); },
        "combineAll");
  }
  // The extra count held during registration keeps inline completions from finishing early.
  if (--state->remaining == 0) state->finish();
  return result;
}

// All of `futures` complete; the first failure fails the result.
inline StateFuture<void> combineAll(std::vector<StateFuture<void>> futures) {
  std::vector<StateFuture<detail::Unit>> units;
  units.reserve(futures.size());
  for (auto& future : futures) {
    units.push_back(std::move(future).thenApply([] { return detail::Unit{}; }));
  }
  return combineAll(std::move(units)).thenAccept([](std::vector<detail::Unit>&&) {});
}

}  // namespace asyncstate
