#pragma once
// StateFuture<T>: the result of an async state request, and the return type of
// coroutines (Task<T> is an alias). Move-only, single consumer. A future that is
// already complete holds its value inline (no allocation); a pending one points to a
// pooled Core. Continuations on a complete future run inline; on a pending one they
// run on the task thread when the controller completes the request.
//
// Dropping a read's value is a compile-time warning (StateFuture<T> is [[nodiscard]]);
// a write's StateFuture<void> may be dropped: its failure still reaches the error
// handler, exactly once.

#include <asyncstate/detail/config.hpp>
#include <asyncstate/detail/future_core.hpp>
#include <asyncstate/error.hpp>

#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace asyncstate {

template <class T>
class StateFuture;
template <>
class StateFuture<void>;
struct FutureAccess;

namespace detail {

template <class T>
class FutureBody;

template <class X>
struct IsStateFuture : std::false_type {};
template <class X>
struct IsStateFuture<StateFuture<X>> : std::true_type {};

template <class X>
concept FutureLike = IsStateFuture<std::remove_cvref_t<X>>::value;

template <class>
inline constexpr bool kAlwaysFalse = false;

template <class T, class F>
decltype(auto) invokeWithValue(F& f, Stored<T>& value) {
  if constexpr (std::is_void_v<T>) {
    return std::invoke(f);
  } else {
    return std::invoke(f, std::move(value));
  }
}

// Whether a continuation can take the value of a StateFuture<T> (nothing for void).
template <class T, class F>
concept TakesValue =
    (std::is_void_v<T> && std::is_invocable_v<F&>) || (!std::is_void_v<T> && std::is_invocable_v<F&, T>);

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

// What handle() hands its function: the value, or the failure (delivered here and
// nowhere else). Outcome<void> carries no value.
template <class T>
class Outcome {
 public:
  explicit Outcome(detail::Stored<T>&& value) : value_(std::move(value)) {}
  explicit Outcome(AsyncError error) : error_(std::move(error)) {}

  bool failed() const noexcept { return error_.has_value(); }
  explicit operator bool() const noexcept { return !failed(); }
  // The value; for a failure, the original exception is rethrown.
  template <class U = T>
    requires(!std::is_void_v<U>)
  U& value() {
    if (error_) error_->rethrow();
    return *value_;
  }
  // The failure; only for a failed outcome.
  const AsyncError& error() const {
    if (!error_) throw FutureMisuseError("Outcome::error() on a successful outcome");
    return *error_;
  }

 private:
  std::optional<detail::Stored<T>> value_;
  std::optional<AsyncError> error_;
};

template <class T>
StateFuture<T> completedFuture(T value);
StateFuture<void> completedVoidFuture();
template <class T>
StateFuture<T> failedFuture(AsyncError error);

// A continuation must take the future's value (nothing for StateFuture<void>); said
// first, in words, instead of deep inside std::invoke.
#define ASYNCSTATE_CHECK_CONTINUATION(F)                                                                         \
  static_assert(!std::is_void_v<T> || TakesValue<T, F>,                                                          \
                "a continuation of a StateFuture<void> takes no argument: write [] { ... }");                    \
  static_assert(std::is_void_v<T> || TakesValue<T, F>,                                                           \
                "the continuation cannot take this future's value. A state read gives a std::optional: "         \
                "ValueState<V>::asyncValue() and MapState<K, V>::asyncGet() call f(std::optional<V>), so write " \
                "[](std::optional<V> v) { ... v.value_or(0) ... }, not [](V v)")

namespace detail {

// Everything a StateFuture is and does. StateFuture<T> only adds [[nodiscard]] for
// futures that carry a value.
template <class T>
class FutureBody {
  using StoredT = Stored<T>;
  using Self = StateFuture<T>;
  // Spelled through T so that they are looked at when a FutureBody is instantiated,
  // after StateFuture<void> and StateFuture<bool> are complete.
  using VoidFuture = StateFuture<std::conditional_t<kAlwaysFalse<T>, T, void>>;
  using BoolFuture = StateFuture<std::conditional_t<kAlwaysFalse<T>, T, bool>>;

 public:
  using value_type = T;

  FutureBody(FutureBody&& other) noexcept : mode_(other.mode_) { takeOver(other); }
  FutureBody& operator=(FutureBody&& other) noexcept {
    if (this != &other) {
      if (mode_ == Mode::Failed || mode_ == Mode::Pending) {
        discard();
      } else if (mode_ == Mode::Ready) {
        destroyValue();
      }
      mode_ = other.mode_;
      takeOver(other);
    }
    return *this;
  }
  FutureBody(const FutureBody&) = delete;
  FutureBody& operator=(const FutureBody&) = delete;
// g++ 12 inlines this destructor into std::optional<StateFuture<T>>'s and then warns that
// mode_ "may be used uninitialized" on the disengaged path it cannot rule out (GCC PR 80635);
// a user's -Werror build must not fail on it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
  ASYNCSTATE_ALWAYS_INLINE ~FutureBody() {
    // Inline, so that on a ready future it folds down to a test of the mode and a
    // dropped pending one (a write's future) releases its core without a call. No path
    // takes the future's address (the failure's is a static function given the error), so
    // a local future can live in registers (see StatePromise::dropUntakenFuture).
    if (mode_ == Mode::Pending) {
      core_->dropConsumer();
    } else if (mode_ == Mode::Failed) [[unlikely]] {
      reportDropped(error_);
    } else if (mode_ == Mode::Ready) {
      destroyValue();
    }
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  // --- queries -----------------------------------------------------------------
  bool isDone() const {
    requireUsable("isDone()");
    return mode_ != Mode::Pending || core_->status() != CoreBase::Status::Pending;
  }
  bool isFailed() const {
    requireUsable("isFailed()");
    return mode_ == Mode::Failed || (mode_ == Mode::Pending && core_->status() == CoreBase::Status::Failed);
  }
  // False once the future was moved from or consumed by a continuation.
  bool valid() const noexcept { return mode_ != Mode::Empty; }

  // --- continuations (each consumes *this) -------------------------------------

  // f(value) -> void.
  template <class F>
  VoidFuture thenAccept(F&& f) && {
    ASYNCSTATE_CHECK_CONTINUATION(F);
    return std::move(self()).template map<void>(
        [fn = std::forward<F>(f)](StoredT& value) mutable { invokeWithValue<T>(fn, value); }, "thenAccept");
  }

  // f(value) -> U.
  template <class F>
  auto thenApply(F&& f) && {
    ASYNCSTATE_CHECK_CONTINUATION(F);
    return std::move(self()).applyAs(std::forward<F>(f), "thenApply");
  }

  // f(value) -> StateFuture<U>; the result completes when the inner future does.
  template <class F>
  auto thenCompose(F&& f) && {
    ASYNCSTATE_CHECK_CONTINUATION(F);
    static_assert(FutureLike<ValueResultT<T, F>>,
                  "thenCompose: the function must return a StateFuture (use thenApply for a plain value)");
    return std::move(self()).composeAs(std::forward<F>(f), "thenCompose");
  }

  // f(a, b) once both futures are complete (a value is left out for a StateFuture<void>).
  // If f returns a StateFuture, the result completes when that one does. Failures of
  // both are both reported: the first reaches the result, the second the error handler.
  template <class U, class F>
  auto thenCombine(StateFuture<U>&& other, F&& f) && {
    return std::move(self()).composeAs(
        [other = std::move(other), fn = std::forward<F>(f)](auto&&... mine) mutable {
          auto call = [fn = std::move(fn), ... mine = std::move(mine)](auto&&... theirs) mutable -> decltype(auto) {
            return std::invoke(fn, std::move(mine)..., std::move(theirs)...);
          };
          if constexpr (FutureLike<ValueResultT<U, decltype(call)>>) {
            return std::move(other).composeAs(std::move(call), "thenCombine");
          } else {
            return std::move(other).applyAs(std::move(call), "thenCombine");
          }
        },
        "thenCombine");
  }

  // Runs ifTrue(value) or ifFalse(value) depending on pred(value); the result tells
  // which branch ran. Without ifFalse, nothing runs when pred is false.
  template <class P, class FT, class FF>
  BoolFuture thenConditionallyAccept(P&& pred, FT&& ifTrue, FF&& ifFalse) && {
    return std::move(self()).applyAs(
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
  template <class P, class FT>
  BoolFuture thenConditionallyAccept(P&& pred, FT&& ifTrue) && {
    return std::move(self()).thenConditionallyAccept(std::forward<P>(pred), std::forward<FT>(ifTrue), [](auto&&...) {});
  }

  // pred(value) ? ifTrue(value) : ifFalse(value), each returning a plain value: a
  // StateFuture<std::pair<bool, R>> (R the branches' common type; which branch ran,
  // and its result), or StateFuture<bool> when both branches return void.
  template <class P, class FT, class FF>
  auto thenConditionallyApply(P&& pred, FT&& ifTrue, FF&& ifFalse) && {
    using R = std::common_type_t<ValueResultT<T, FT>, ValueResultT<T, FF>>;
    return std::move(self()).applyAs(
        [p = std::forward<P>(pred), t = std::forward<FT>(ifTrue),
         e = std::forward<FF>(ifFalse)](auto&&... value) mutable {
          const bool taken = static_cast<bool>(std::invoke(p, std::as_const(value)...));
          if constexpr (std::is_void_v<R>) {
            taken ? std::invoke(t, std::move(value)...) : std::invoke(e, std::move(value)...);
            return taken;
          } else {
            return std::pair<bool, R>(
                taken, taken ? R(std::invoke(t, std::move(value)...)) : R(std::invoke(e, std::move(value)...)));
          }
        },
        "thenConditionallyApply");
  }

  // As thenConditionallyApply, with branches returning StateFutures; the result
  // completes when the branch's future does.
  template <class P, class FT, class FF>
  auto thenConditionallyCompose(P&& pred, FT&& ifTrue, FF&& ifFalse) && {
    using BT = std::remove_cvref_t<ValueResultT<T, FT>>;
    using BF = std::remove_cvref_t<ValueResultT<T, FF>>;
    static_assert(FutureLike<BT> && FutureLike<BF>,
                  "thenConditionallyCompose: both branches must return a StateFuture (use thenConditionallyApply "
                  "for plain values)");
    using R = std::common_type_t<typename BT::value_type, typename BF::value_type>;
    return std::move(self()).composeAs(
        [p = std::forward<P>(pred), t = std::forward<FT>(ifTrue),
         e = std::forward<FF>(ifFalse)](auto&&... value) mutable {
          const bool taken = static_cast<bool>(std::invoke(p, std::as_const(value)...));
          auto branch = [&]() -> StateFuture<R> {
            if (taken) return std::invoke(t, std::move(value)...).thenApply(Widen<R>{});
            return std::invoke(e, std::move(value)...).thenApply(Widen<R>{});
          };
          if constexpr (std::is_void_v<R>) {
            return branch().thenApply([taken] { return taken; });
          } else {
            return branch().thenApply([taken](R result) { return std::pair<bool, R>(taken, std::move(result)); });
          }
        },
        "thenConditionallyCompose");
  }

  // Recovers from a failure: f(const AsyncError&) -> T. A success passes through.
  template <class F>
  Self exceptionally(F&& f) && {
    return std::move(self()).template then<T>(
        [fn = std::forward<F>(f)](Self&& ready) mutable -> Self {
          if (ready.mode_ != Mode::Failed) return std::move(ready);
          // The error is delivered here and nowhere else, even if fn throws.
          const AsyncError error = ready.releaseError();
          if constexpr (std::is_void_v<T>) {
            std::invoke(fn, error);
            return readyVoid();
          } else {
            return completedFuture<T>(std::invoke(fn, error));
          }
        },
        "exceptionally");
  }

  // Sees either outcome: f(Outcome<T>) -> U, the value or the error in one object. The
  // earlier form f(std::optional<T> value, const AsyncError* error) (for void:
  // f(const AsyncError* error)), error null on success, is still accepted.
  template <class F>
  auto handle(F&& f) && {
    using U = HandleResult<F>;
    return std::move(self()).template then<U>(
        [fn = std::forward<F>(f)](Self&& ready) mutable -> StateFuture<U> {
          auto call = [&]() -> decltype(auto) {
            if constexpr (std::is_invocable_v<F&, Outcome<T>>) {
              if (ready.mode_ == Mode::Failed) return std::invoke(fn, Outcome<T>(ready.releaseError()));
              return std::invoke(fn, Outcome<T>(std::move(ready.value_)));
            } else {
              std::optional<AsyncError> failure;
              if (ready.mode_ == Mode::Failed) failure.emplace(ready.releaseError());
              const AsyncError* error = failure ? &*failure : nullptr;
              if constexpr (std::is_void_v<T>) {
                return std::invoke(fn, error);
              } else {
                std::optional<T> value;
                if (error == nullptr) value.emplace(std::move(ready.value_));
                return std::invoke(fn, std::move(value), error);
              }
            }
          };
          if constexpr (std::is_void_v<U>) {
            call();
            return readyVoid();
          } else {
            return completedFuture<U>(call());
          }
        },
        "handle");
  }

  // Internal: wraps a pending core (the controller and coroutines create these).
  explicit FutureBody(Core<StoredT>* core) noexcept : mode_(Mode::Pending), core_(core) {}

 protected:
  FutureBody() noexcept : mode_(Mode::Empty), consumedBy_("default construction") {}

 private:
  template <class X>
  friend class FutureBody;
  template <class X>
  friend StateFuture<X> asyncstate::completedFuture(X value);
  friend StateFuture<void> asyncstate::completedVoidFuture();
  template <class X>
  friend StateFuture<X> asyncstate::failedFuture(AsyncError error);
  friend struct asyncstate::FutureAccess;

  enum class Mode : std::uint8_t { Empty, Ready, Failed, Pending };

  template <class R>
  struct Widen {
    template <class... V>
    R operator()(V&&... value) const {
      if constexpr (!std::is_void_v<R>) return R(std::forward<V>(value)...);
    }
  };

  template <class F>
  struct HandleResultImpl {
    using type = std::invoke_result_t<F&, std::optional<T>, const AsyncError*>;
  };
  template <class F>
    requires(std::is_void_v<T> && !std::is_invocable_v<F&, Outcome<T>>)
  struct HandleResultImpl<F> {
    using type = std::invoke_result_t<F&, const AsyncError*>;
  };
  template <class F>
    requires std::is_invocable_v<F&, Outcome<T>>
  struct HandleResultImpl<F> {
    using type = std::invoke_result_t<F&, Outcome<T>>;
  };
  template <class F>
  using HandleResult = typename HandleResultImpl<F>::type;

  Self& self() noexcept { return static_cast<Self&>(*this); }

  // thenApply under the name of the combinator the user called, so that a throwing
  // function is reported as that combinator's continuation.
  template <class F>
  auto applyAs(F&& f, const char* operation) && {
    using U = ValueResultT<T, F>;
    return std::move(self()).template map<U>(
        [fn = std::forward<F>(f)](StoredT& value) mutable -> decltype(auto) { return invokeWithValue<T>(fn, value); },
        operation);
  }

  // The value-to-value step behind thenAccept and thenApply: call(StoredT&) -> U. It
  // runs on the value where it lies (inline, or in the source's core) and writes its
  // result straight into the result's core: no intermediate futures. A failure
  // bypasses call and travels on as the same boxed error.
  template <class U, class Call>
  StateFuture<U> map(Call&& call, const char* operation) && {
    requireUsable(operation);
    if (mode_ == Mode::Pending) [[unlikely]] {
      if (core_->status() == CoreBase::Status::Pending) return mapPending<U>(std::forward<Call>(call), operation);
      Self ready = takeReady();
      consumedBy_ = operation;
      return ready.template mapReady<U>(call, operation);
    }
    return mapReady<U>(call, operation);
  }

  template <class U, class Call>
  StateFuture<U> mapReady(Call& call, const char* operation) {
    if (mode_ == Mode::Failed) [[unlikely]] {
      std::unique_ptr<AsyncError> error = releaseErrorBox();
      consumedBy_ = operation;
      return StateFuture<U>::failedFrom(std::move(error));
    }
    try {
      // The value is gone once the call returned or threw.
      Consume consume{*this, operation};
      if constexpr (std::is_void_v<U>) {
        call(value_);
        return readyVoid();
      } else {
        return completedFuture<U>(call(value_));
      }
    } catch (...) {
      return failedFuture<U>(continuationError(std::current_exception(), operation));
    }
  }

  // call(value) as a step that yields the stored result (Unit for void).
  template <class U, class Call>
  static auto valueStep(Call& call) {
    return [&call](StoredT& value) -> Stored<U> {
      if constexpr (std::is_void_v<U>) {
        call(value);
        return Unit{};
      } else {
        return call(value);
      }
    };
  }

  // A pending source: the step runs in the source's core when it completes and, when
  // U's core fits its block (known at compile time), leaves its result there, so the
  // whole step costs one core (Seastar's one allocation per continuation). Otherwise
  // the result gets a core of its own.
  template <class U, class Call>
  StateFuture<U> mapPending(Call&& call, const char* operation) {
    using SU = Stored<U>;
    Core<StoredT>* source = core_;
    mode_ = Mode::Empty;
    consumedBy_ = operation;
    Runtime& runtime = source->runtime();
    RecordContext* record = runtime.currentRecord();
    if (record != nullptr) record->retain();
    auto step = [c = std::forward<Call>(call), record, operation](Core<StoredT>& completed) mutable {
      {
        RecordScope scope(completed.runtime(), record);
        auto valueCall = valueStep<U>(c);
        completed.template transform<SU>(valueCall, [operation](std::exception_ptr error) {
          return continuationError(std::move(error), operation);
        });
      }
      if (record != nullptr) record->release();
    };
    if constexpr (Core<StoredT>::template kCanBecome<SU>) {
      Core<StoredT>* host = source->template setContinuation<true, SU>(std::move(step));
      return StateFuture<U>(static_cast<Core<SU>*>(static_cast<CoreBase*>(host)));
    } else {
      auto* result = Core<SU>::create(runtime);
      source->setContinuation(std::move(step), result);
      return StateFuture<U>(result);
    }
  }

  template <class F>
  auto composeAs(F&& f, const char* operation) && {
    using Inner = std::remove_cvref_t<ValueResultT<T, F>>;
    using U = typename Inner::value_type;
    return std::move(self()).template then<U>(
        [fn = std::forward<F>(f)](Self&& ready) mutable -> StateFuture<U> {
          if (ready.mode_ == Mode::Failed) return StateFuture<U>::failedFrom(ready.releaseErrorBox());
          StateFuture<U> inner(invokeWithValue<T>(fn, ready.value_));
          // Checked here, not only in forward(): on a complete source the step's result is
          // handed to the caller as is, and an empty future would drop the mistake silently.
          if (!inner.valid()) throw FutureMisuseError("thenCompose: the function returned a consumed StateFuture");
          return inner;
        },
        operation);
  }

  ASYNCSTATE_ALWAYS_INLINE void requireUsable(const char* what) const {
    if (mode_ == Mode::Empty) [[unlikely]]
      throwConsumed(what, consumedBy_);
  }

  [[noreturn]] ASYNCSTATE_COLD static void throwConsumed(const char* what, const char* consumedBy) {
    throw FutureMisuseError(std::string("StateFuture::") + what + " on a future that was already consumed by " +
                            (consumedBy != nullptr ? consumedBy : "an earlier call") +
                            ": a StateFuture has exactly one consumer");
  }

  // Kept out of line and cold so that the success path pays nothing for the reporting.
  // Takes the box raw and owns it only in here: a std::unique_ptr argument is destroyed
  // by the caller, so its delete was inlined into every future's destructor, where g++
  // cannot tell the box from the consumer's name sharing its storage and warned
  // (-Wfree-nonheap-object, on by default) in whichever user code inlined it so.
  ASYNCSTATE_COLD static void reportDropped(AsyncError* box) noexcept {
    std::unique_ptr<AsyncError> error(box);
    if (error) currentRuntime().reportUnhandled(std::move(*error));
  }

  // Drops this future's interest: a failure nobody will look at goes to the handler.
  ASYNCSTATE_NOINLINE void discard() noexcept {
    switch (mode_) {
      case Mode::Failed: reportDropped(error_); break;
      case Mode::Pending: core_->dropConsumer(); break;
      case Mode::Ready: destroyValue(); break;
      case Mode::Empty: break;
    }
    mode_ = Mode::Empty;
    consumedBy_ = "destruction";
  }

  // Moves a completed core's outcome into an inline future.
  static Self fromCore(Core<StoredT>& core) {
    Self ready;
    if (core.status() == CoreBase::Status::Value) {
      ready.emplaceValue(core.takeValue());
    } else {
      ready.holdError(core.takeError());
    }
    return ready;
  }

  template <class U, class Step>
  ASYNCSTATE_ALWAYS_INLINE static StateFuture<U> runStep(Step& step, Self&& ready, const char* operation) noexcept {
    try {
      return step(std::move(ready));
    } catch (...) {
      return failedFuture<U>(continuationError(std::current_exception(), operation));
    }
  }

  // Feeds `source` (a step's result) into `target`; waits for it if it is pending.
  template <class U>
  static void forward(StateFuture<U>&& source, Core<Stored<U>>* target) {
    using SU = Stored<U>;
    using Source = FutureBody<U>;
    switch (source.mode_) {
      case Source::Mode::Ready: target->setValue(std::move(source.value_)); break;
      case Source::Mode::Failed: target->setError(source.releaseErrorBox()); break;
      case Source::Mode::Pending: {
        Core<SU>* inner = source.core_;
        source.mode_ = Source::Mode::Empty;
        source.consumedBy_ = "thenCompose";
        if (inner->status() != CoreBase::Status::Pending) {
          StateFuture<U> done = Source::fromCore(*inner);
          inner->release();
          forward(std::move(done), target);
          return;
        }
        inner->setContinuation([target](Core<SU>& completed) { forward(Source::fromCore(completed), target); });
        return;
      }
      case Source::Mode::Empty:
        target->setError(continuationError(
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
    if (mode_ == Mode::Pending && core_->status() == CoreBase::Status::Pending) {
      Core<StoredT>* source = core_;
      mode_ = Mode::Empty;
      consumedBy_ = operation;
      Runtime& runtime = source->runtime();
      auto* result = Core<Stored<U>>::create(runtime);
      RecordContext* record = runtime.currentRecord();
      if (record != nullptr) record->retain();
      source->setContinuation(
          [s = std::forward<Step>(step), record, operation](Core<StoredT>& completed) mutable {
            Core<Stored<U>>* target = completed.template takeNext<Stored<U>>();
            {
              RecordScope scope(completed.runtime(), record);
              forward(runStep<U>(s, fromCore(completed), operation), target);
            }
            if (record != nullptr) record->release();
          },
          result);
      return StateFuture<U>(result);
    }
    if (mode_ == Mode::Pending) {
      Self ready = takeReady();
      consumedBy_ = operation;
      return runStep<U>(step, std::move(ready), operation);
    }
    // Inline outcome: the step reads it in place, so a ready continuation builds no
    // intermediate future.
    StateFuture<U> out = runStep<U>(step, std::move(self()), operation);
    clear(operation);
    return out;
  }

  // As releaseError(), keeping the allocation: a failure travels down a chain without
  // being copied or re-boxed at each stage.
  std::unique_ptr<AsyncError> releaseErrorBox() {
    std::unique_ptr<AsyncError> error(error_);
    mode_ = Mode::Empty;
    consumedBy_ = "error delivery";
    return error;
  }

  // completedVoidFuture(), spelled through T (StateFuture<void> is completed later).
  static VoidFuture readyVoid() {
    VoidFuture future;
    future.emplaceValue();
    return future;
  }

  static Self failedFrom(std::unique_ptr<AsyncError> error) {
    Self future;
    future.holdError(std::move(error));
    return future;
  }

  // Hands the error to exactly one new owner; this future no longer reports it.
  AsyncError releaseError() { return std::move(*releaseErrorBox()); }

  // Only for a future that is complete (inline or in its core).
  Self takeReady() {
    if (mode_ == Mode::Pending) {
      Core<StoredT>* core = core_;
      mode_ = Mode::Empty;
      consumedBy_ = nullptr;
      Self ready = fromCore(*core);
      core->release();
      return ready;
    }
    Self ready(std::move(self()));
    return ready;
  }

  // Calls fn(ready future) once this future is complete: inline if it already is,
  // otherwise from the core under the current record. Creates no result future, which
  // is what combineAll and co_await need.
  template <class Fn>
  void observe(Fn&& fn, const char* operation) && {
    requireUsable(operation);
    if (mode_ == Mode::Pending && core_->status() == CoreBase::Status::Pending) {
      Core<StoredT>* source = core_;
      mode_ = Mode::Empty;
      consumedBy_ = operation;
      RecordContext* record = source->runtime().currentRecord();
      if (record != nullptr) record->retain();
      source->setContinuation([f = std::forward<Fn>(fn), record](Core<StoredT>& completed) mutable {
        {
          RecordScope scope(completed.runtime(), record);
          f(fromCore(completed));
        }
        if (record != nullptr) record->release();
      });
      return;
    }
    Self ready = takeReady();
    consumedBy_ = operation;
    fn(std::move(ready));
  }

  // The outcome in place, as the mode says; what a future holds in one mode it does
  // not hold in another, so a StateFuture<int> is two words.
  void emplaceValue(auto&&... value) {
    ::new (static_cast<void*>(&value_)) StoredT(std::forward<decltype(value)>(value)...);
    mode_ = Mode::Ready;
  }
  void holdError(std::unique_ptr<AsyncError> error) noexcept {
    error_ = error.release();
    mode_ = Mode::Failed;
  }
  void destroyValue() noexcept {
    if constexpr (!std::is_trivially_destructible_v<StoredT>) value_.~StoredT();
  }

  // Moves `other`'s outcome into this future, whose mode_ is already other's; `other`
  // reads as consumed by the move.
  void takeOver(FutureBody& other) noexcept {
    switch (mode_) {
      case Mode::Empty: consumedBy_ = other.consumedBy_; break;
      case Mode::Ready:
        ::new (static_cast<void*>(&value_)) StoredT(std::move(other.value_));
        other.destroyValue();
        break;
      case Mode::Failed: error_ = other.error_; break;
      case Mode::Pending: core_ = other.core_; break;
    }
    other.mode_ = Mode::Empty;
    other.consumedBy_ = "a move";
  }

  // After a step read this future in place: whatever it left goes, unreported.
  void clear(const char* operation) noexcept {
    switch (mode_) {
      case Mode::Ready: destroyValue(); break;
      case Mode::Failed: delete error_; break;
      case Mode::Pending: core_->dropConsumer(); break;
      case Mode::Empty: break;
    }
    mode_ = Mode::Empty;
    consumedBy_ = operation;
  }

  // Ends a value step on a ready future: the value is destroyed, the future consumed.
  struct Consume {
    FutureBody& future;
    const char* operation;
    ~Consume() {
      future.destroyValue();
      future.mode_ = Mode::Empty;
      future.consumedBy_ = operation;
    }
  };

  Mode mode_;
  union {
    const char* consumedBy_;  // Empty: what consumed it, for the misuse message
    StoredT value_;           // Ready
    AsyncError* error_;       // Failed: owned
    Core<StoredT>* core_;     // Pending: the consumer's reference
  };
};

}  // namespace detail

// A future that carries a value: dropping it unread is a compile-time warning.
template <class T>
class [[nodiscard]] StateFuture : public detail::FutureBody<T> {
 public:
  using detail::FutureBody<T>::FutureBody;
  StateFuture() noexcept = default;
  StateFuture(StateFuture&&) noexcept = default;
  StateFuture& operator=(StateFuture&&) noexcept = default;
  // Inlined so that on a ready future it folds down to a test of the mode.
  ASYNCSTATE_ALWAYS_INLINE ~StateFuture() = default;
};

// A write's future: may be dropped; a failure then reaches the error handler.
template <>
class StateFuture<void> : public detail::FutureBody<void> {
 public:
  using detail::FutureBody<void>::FutureBody;
  StateFuture() noexcept = default;
  StateFuture(StateFuture&&) noexcept = default;
  StateFuture& operator=(StateFuture&&) noexcept = default;
  ASYNCSTATE_ALWAYS_INLINE ~StateFuture() = default;
};

template <class T>
StateFuture<T> completedFuture(T value) {
  StateFuture<T> future;
  future.emplaceValue(std::move(value));
  return future;
}

inline StateFuture<void> completedVoidFuture() {
  StateFuture<void> future;
  future.emplaceValue();
  return future;
}

template <class T>
StateFuture<T> failedFuture(AsyncError error) {
  return StateFuture<T>::failedFrom(std::make_unique<AsyncError>(std::move(error)));
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

// Reads a complete future's outcome (for the library's own combinators).
struct FutureAccess {
  template <class T, class OnValue, class OnError>
  static void consumeReady(StateFuture<T>&& ready, OnValue&& onValue, OnError&& onError) {
    StateFuture<T> done = ready.takeReady();
    if (done.mode_ == StateFuture<T>::Mode::Ready) {
      onValue(done.value_);
    } else {
      AsyncError error = done.releaseError();
      onError(error);
    }
  }

  template <class T, class Fn>
  static void observe(StateFuture<T>&& future, Fn&& fn, const char* operation) {
    std::move(future).observe(std::forward<Fn>(fn), operation);
  }

  // A complete future's value (it must have one), or its boxed failure (null on success).
  template <class T>
  static std::unique_ptr<AsyncError> takeErrorBox(StateFuture<T>& ready) {
    if (ready.mode_ != StateFuture<T>::Mode::Failed) return nullptr;
    return ready.releaseErrorBox();
  }
  template <class T>
  static detail::Stored<T>& valueOf(StateFuture<T>& ready) {
    return ready.value_;
  }

  // The same outcome as `future`, after fn() ran once `future` completed (either way).
  template <class T, class Fn>
  static StateFuture<T> afterwards(StateFuture<T>&& future, Fn&& fn, const char* operation) {
    return std::move(future).template then<T>(
        [f = std::forward<Fn>(fn)](StateFuture<T>&& ready) mutable -> StateFuture<T> {
          f();
          return std::move(ready);
        },
        operation);
  }
};

namespace detail {

template <class T>
using TupleSlot = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// combineAll's bookkeeping, in one pool block: the inputs themselves hold their values
// as they arrive (a complete future keeps its value inline), so nothing else is
// allocated until the result is built. The first failure fails the result; any
// further failures go to the error handler, so each one is seen exactly once.
template <class Result, class Inputs>
class Combination {
 public:
  // Runs once per combineAll, so a call costs little here; inlined into the caller it
  // had g++ call the continuation below, which runs once per input, out of line instead
  // (combineAll of 8: 151 against 171 ns, bench/analysis.md, ninth round).
  ASYNCSTATE_NOINLINE static StateFuture<Result> start(Inputs inputs, std::size_t count) {
    Runtime& runtime = currentRuntime();
    void* memory = runtime.allocate(sizeof(Combination));
    auto* self = ::new (memory) Combination(runtime, std::move(inputs), count);
    StateFuture<Result> result(self->result_);
    self->observeAll();
    // The extra count held during registration keeps inline completions from finishing early.
    self->arrived();
    return result;
  }

 private:
  Combination(Runtime& runtime, Inputs inputs, std::size_t count)
      : runtime_(runtime), inputs_(std::move(inputs)), remaining_(count + 1) {
    result_ = Core<Stored<Result>>::create(runtime_);
  }

  void observeAll() {
    if constexpr (kIsVector) {
      for (auto& slot : inputs_) observeOne(slot);
    } else {
      std::apply([this](auto&... slot) { (this->observeOne(slot), ...); }, inputs_);
    }
  }

  template <class T>
  void observeOne(StateFuture<T>& slot) {
    // The slot is emptied now and receives the ready input back when it settles.
    StateFuture<T> input = std::exchange(slot, StateFuture<T>());
    FutureAccess::observe(
        std::move(input),
        [this, &slot](StateFuture<T>&& ready) {
          if (std::unique_ptr<AsyncError> error = FutureAccess::takeErrorBox(ready)) [[unlikely]] {
            failed(error.release());
          } else {
            slot = std::move(ready);
          }
          arrived();
        },
        "combineAll");
  }

  // An input failed: the first failure fails the result, later ones go to the handler.
  // Cold and given the box raw, so that the continuation observing each input stays
  // small enough to be inlined into its runner.
  ASYNCSTATE_COLD void failed(AsyncError* box) {
    std::unique_ptr<AsyncError> error(box);
    if (firstError_) {
      runtime_.reportUnhandled(std::move(*error));
    } else {
      firstError_ = std::move(error);
    }
  }

  void arrived() {
    if (--remaining_ > 0) return;
    Core<Stored<Result>>* target = result_;
    if (firstError_) {
      target->setError(std::move(firstError_));
    } else {
      std::optional<Stored<Result>> out;
      try {
        out.emplace(collect());
      } catch (...) {
        target->setError(continuationError(std::current_exception(), "combineAll"));
      }
      if (out) target->setValue(std::move(*out));
    }
    Runtime& runtime = runtime_;
    this->~Combination();
    runtime.deallocate(this, sizeof(Combination));
    target->release();
  }

  Stored<Result> collect() {
    if constexpr (std::is_void_v<Result>) {
      return Unit{};
    } else if constexpr (kIsVector) {
      Result out;
      out.reserve(inputs_.size());
      for (auto& slot : inputs_) out.push_back(std::move(FutureAccess::valueOf(slot)));
      return out;
    } else {
      return std::apply([](auto&... slot) { return Result(takeSlot(slot)...); }, inputs_);
    }
  }

  template <class T>
  static TupleSlot<T> takeSlot(StateFuture<T>& slot) {
    if constexpr (std::is_void_v<T>) {
      return std::monostate{};
    } else {
      return std::move(FutureAccess::valueOf(slot));
    }
  }

  static constexpr bool kIsVector = requires(Inputs& inputs) { inputs.size(); };

  Runtime& runtime_;
  Inputs inputs_;
  std::size_t remaining_;
  std::unique_ptr<AsyncError> firstError_;
  Core<Stored<Result>>* result_ = nullptr;
};

template <class T>
void requireUnconsumed(const std::vector<StateFuture<T>>& futures) {
  // Refuse before anything is observed: a throw half-way would leave the inputs already
  // registered pointing at a state nobody finishes.
  for (const StateFuture<T>& future : futures) {
    if (!future.valid()) throw FutureMisuseError("combineAll: an input StateFuture was already consumed");
  }
}

}  // namespace detail

// Completes when every future has; values keep the input order. For
// StateFuture<void> inputs the result is a StateFuture<void>.
// The return type is spelled out, not deduced: a deduced one would compile the whole
// combination wherever a template merely mentions a call (MapState::asyncPutAll).
template <class T>
StateFuture<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> combineAll(
    std::vector<StateFuture<T>> futures) {
  using Result = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;
  if (futures.empty()) {
    if constexpr (std::is_void_v<T>) {
      return completedVoidFuture();
    } else {
      return completedFuture(std::vector<T>{});
    }
  }
  detail::requireUnconsumed(futures);
  const std::size_t count = futures.size();
  return detail::Combination<Result, std::vector<StateFuture<T>>>::start(std::move(futures), count);
}

namespace detail {

template <class T>
struct BracedCombineAll {
  static_assert(kAlwaysFalse<T>,
                "combineAll({f1, f2}) would copy the futures, and a StateFuture has exactly one consumer: write "
                "combineAll(std::move(f1), std::move(f2)) (a future of a tuple), or build a "
                "std::vector<StateFuture<T>> with push_back(std::move(f)) and pass std::move(vector)");
  using type = void;
};

// What a braced list of futures would convert to; converting says what to write instead.
struct BracedFuture {
  template <class T, class = typename BracedCombineAll<T>::type>
  BracedFuture(StateFuture<T>&) {}  // NOLINT(google-explicit-constructor): only to explain a mistake
  template <class T, class = typename BracedCombineAll<T>::type>
  BracedFuture(StateFuture<T>&&) {}  // NOLINT(google-explicit-constructor): only to explain a mistake
};

}  // namespace detail

// combineAll({f1, f2}): refused at compile time with the fix (see BracedCombineAll).
inline StateFuture<void> combineAll(std::initializer_list<detail::BracedFuture>) { return completedVoidFuture(); }

// Futures of different types: a future of the tuple of their values (std::monostate
// for a StateFuture<void>), e.g. combineAll(name.asyncValue(), visits.asyncGet(day)).
template <class... T>
  requires(sizeof...(T) >= 2)
StateFuture<std::tuple<detail::TupleSlot<T>...>> combineAll(StateFuture<T>&&... futures) {
  if ((!futures.valid() || ...)) throw FutureMisuseError("combineAll: an input StateFuture was already consumed");
  return detail::Combination<std::tuple<detail::TupleSlot<T>...>, std::tuple<StateFuture<T>...>>::start(
      std::tuple<StateFuture<T>...>(std::move(futures)...), sizeof...(T));
}

}  // namespace asyncstate

#undef ASYNCSTATE_CHECK_CONTINUATION
