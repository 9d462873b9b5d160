#pragma once
// The shared state behind a pending StateFuture. Lives in the controller's pool, is
// touched only on the task thread, and holds at most one continuation (futures are
// single-consumer), stored inline when it is small enough.

#include <asyncstate/detail/config.hpp>
#include <asyncstate/detail/runtime.hpp>
#include <asyncstate/error.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace asyncstate::detail {

// `void` futures store this so that one implementation serves both.
struct Unit {
  friend bool operator==(Unit, Unit) { return true; }
};

template <class T>
using Stored = std::conditional_t<std::is_void_v<T>, Unit, T>;

// Layout of a block: the 32-byte header below, then the value slot -- at the same
// offset for every T, holding the value or, once failed, the boxed error -- and behind
// it the continuation, when it fits the block. A pending Core<int> with a value step
// whose function captures up to 24 bytes (a reference, the record and the operation's
// name) fills exactly one 64-byte block.
class CoreBase {
 public:
  enum class Status : std::uint8_t { Pending, Value, Failed };

  CoreBase(const CoreBase&) = delete;
  CoreBase& operator=(const CoreBase&) = delete;

  Runtime& runtime() const noexcept { return *runtime_; }
  Status status() const noexcept { return status_; }

  void release() {
    if (--refs_ == 0) destroy();
  }

 protected:
  // Runs the installed continuation, which knows its own type and place in the block.
  using RunFn = void (*)(CoreBase*);

  static constexpr std::size_t kHeaderBytes = 32;
  static constexpr std::uint8_t kConsumerDropped = 1;
  static constexpr std::uint8_t kValueLive = 2;

  CoreBase(Runtime* runtime, std::uint8_t sizeClass) noexcept : runtime_(runtime), sizeClass_(sizeClass) {}

  bool consumerDropped() const noexcept { return (flags_ & kConsumerDropped) != 0; }

  // Runs the continuation (if any) after the producer set a failure; if nobody will
  // ever look at it, it goes to the error handler now. The continuation clears run_
  // itself once it is done, so that the slot reads as taken while it runs.
  void settledFailure() {
    if (run_ != nullptr) {
      run_(this);
      return;
    }
    if (consumerDropped()) reportError();
  }

  ASYNCSTATE_COLD void reportError() {
    if (std::unique_ptr<AsyncError> error = takeError()) runtime_->reportUnhandled(std::move(*error));
  }

  // The value lives right behind the header, at the same place for every T: that is
  // what lets a value step turn a Core<T> into a Core<U> within its block. A failed
  // core keeps its boxed error there instead (a failure has no value).
  void* valueBytes() noexcept { return reinterpret_cast<unsigned char*>(this) + kHeaderBytes; }
  AsyncError*& errorSlot() noexcept { return *std::launder(static_cast<AsyncError**>(valueBytes())); }
  void holdError(std::unique_ptr<AsyncError> error) noexcept { ::new (valueBytes()) AsyncError*(error.release()); }

 public:
  std::unique_ptr<AsyncError> takeError() noexcept {
    return std::unique_ptr<AsyncError>(std::exchange(errorSlot(), nullptr));
  }

 protected:
  Runtime* runtime_;
  RunFn run_ = nullptr;
  // The core the continuation's outcome goes to when it is not this one: a step's
  // result core of its own (set with the continuation), or -- set by redirect() -- the
  // core hosting a continuation attached to a value step's future before the step ran.
  // Kept here rather than in the continuation, so that the continuation fits the block.
  CoreBase* next_ = nullptr;
  std::uint32_t refs_ = 2;  // producer + consumer
  Status status_ = Status::Pending;
  std::uint8_t flags_ = 0;
  std::uint8_t sizeClass_;  // of the block, whatever type the core has become since

  // No value is left by now (whoever saw the core last destroyed it, knowing its type),
  // so no indirect call is needed: an error box nobody took, then the block.
  void destroy() noexcept {
    if (status_ == Status::Failed) [[unlikely]]
      delete errorSlot();
    runtime_->deallocateClass(this, sizeClass_);
  }
};

static_assert(sizeof(CoreBase) == 32);

template <class T>
class Core final : public CoreBase {
  static_assert(alignof(T) <= alignof(std::max_align_t), "a StateFuture's value cannot be over-aligned");

  static constexpr std::size_t alignUp(std::size_t n, std::size_t alignment) noexcept {
    return (n + alignment - 1) / alignment * alignment;
  }

 public:
  // The value slot (it holds a boxed error just as well).
  static constexpr std::size_t kValueSlot = alignUp(sizeof(T) > sizeof(void*) ? sizeof(T) : sizeof(void*), 8);
  // What a block must hold for a Core<T>: header, value, and room for at least the
  // pointer to a continuation too large for the block.
  static constexpr std::size_t kBytes = kHeaderBytes + kValueSlot + sizeof(void*);
  // Fixed at compile time; a Core<T> is in a block of at least this many bytes.
  static constexpr std::uint8_t kSizeClass = FuturePool::sizeClassOf(kBytes);
  static constexpr std::size_t kBlockBytes = FuturePool::blockBytes(kBytes);

  static Core* create(Runtime& runtime) {
    std::uint8_t sizeClass = kSizeClass;
    void* memory = runtime.allocateClass(sizeClass, kBlockBytes);
    return ::new (memory) Core(&runtime, sizeClass);
  }

  void setValue(T value) {
    emplaceValue([&]() -> T { return std::move(value); });
    publishValue();
  }

  // For a step that maps a value straight into this core: the value is built by fn()
  // (nothing changes if it throws), then published with publishValue(), so that
  // whatever the publication runs is outside the caller's error handling.
  template <class Fn>
  void emplaceValue(Fn&& fn) {
    ::new (valueBytes()) T(std::forward<Fn>(fn)());
    if constexpr (kTracksValue) flags_ |= kValueLive;
  }
  void publishValue() {
    status_ = Status::Value;
    if (run_ != nullptr) {
      run_(this);
      return;
    }
    // Nobody will take it: it goes now, while its type is known.
    if constexpr (kTracksValue) {
      if (consumerDropped()) destroyValue();
    }
  }

  void setError(AsyncError error) { setError(std::make_unique<AsyncError>(std::move(error))); }

  void setError(std::unique_ptr<AsyncError> error) {
    holdError(std::move(error));
    status_ = Status::Failed;
    settledFailure();
  }

  // The value in place (only after the producer set one).
  T& value() noexcept { return *std::launder(static_cast<T*>(valueBytes())); }

  T takeValue() {
    T value = std::move(this->value());
    destroyValue();
    return value;
  }

  // The consumer (a StateFuture going away without attaching a continuation) lets go;
  // it knows the type, so a value nobody took is destroyed here. Out of line: a dropped
  // future's destructor stays a test and a call.
  ASYNCSTATE_NOINLINE void dropConsumer() {
    if (status_ == Status::Failed) [[unlikely]] {
      reportError();
    } else if constexpr (kTracksValue) {
      if ((flags_ & kValueLive) != 0) destroyValue();
    }
    // The last reference needs no note that the consumer went.
    if (refs_ == 1) {
      destroy();
      return;
    }
    flags_ |= kConsumerDropped;
    --refs_;
  }

  // Installs `fn(Core&)` to run once the outcome is set, and returns the core it runs
  // on: this one, or -- if a value step of an earlier stage still occupies this core --
  // a new core that will receive that step's outcome. `Fn` owns whatever it captured
  // and is destroyed right after it ran; unless kStaysInCore, the consumer reference
  // it holds is released then too. A step that stays leaves a `Result` in this block;
  // one with a core of its own for the result passes it as `next` (see takeNext).
  template <bool kStaysInCore = false, class Result = T, class Fn>
  Core* setContinuation(Fn&& fn, CoreBase* next = nullptr) {
    Core* host = run_ == nullptr ? this : redirect();
    host->template install<kStaysInCore, Result>(std::forward<Fn>(fn));
    if (next != nullptr) host->next_ = next;
    return host;
  }

  // The `next` the running continuation was installed with.
  template <class U>
  Core<U>* takeNext() noexcept {
    return static_cast<Core<U>*>(std::exchange(next_, nullptr));
  }

  // Whether a value step from T to U can run in this core's block (see transform).
  template <class U>
  static constexpr bool kCanBecome = Core<U>::kBytes <= kBlockBytes;

  // One pool block per chain: replaces the value by call(value), or passes the failure
  // on, in this same block, which is a Core<U> from then on; then completes as one.
  // `failure(exception)` builds the error for a call that throws.
  template <class U, class Call, class Failure>
  void transform(Call& call, Failure&& failure) {
    // A result core of its own (U does not fit this block), or a continuation attached
    // before the step ran: the result is built right there.
    if (next_ != nullptr) {
      forwardStep<U>(takeNext<U>(), call, failure);
      return;
    }
    if constexpr (kCanBecome<U>) stepInPlace<U>(call, failure);
  }

 private:
  template <class U, class Call, class Failure>
  void stepInPlace(Call& call, Failure& failure) {
    auto* next = static_cast<Core<U>*>(static_cast<CoreBase*>(this));
    const bool failed = status_ == Status::Failed;
    status_ = Status::Pending;  // mid-step: nobody may read the old value as the new one
    bool built = false;
    if (!failed) {
      T input = takeValue();
      try {
        next->emplaceValue([&]() -> U { return call(input); });
        built = true;
      } catch (...) {
        holdError(std::make_unique<AsyncError>(failure(std::current_exception())));
      }
    }
    status_ = built ? Status::Value : Status::Failed;
    if (next_ != nullptr) {
      // A continuation attached while the step ran (from inside it).
      Core<U>* target = takeNext<U>();
      if (built) {
        target->setValue(next->takeValue());
      } else {
        target->setError(takeError());
      }
      target->release();
    } else if (consumerDropped()) {
      if (!built) {
        reportError();
      } else if constexpr (Core<U>::kTracksValue) {
        next->destroyValue();
      }
    }
  }

  // The value step with its result in `target`: runs call(value) (or passes the failure
  // on) and completes `target`; this core's value, which nobody else reads, goes.
  template <class U, class Call, class Failure>
  void forwardStep(Core<U>* target, Call& call, Failure&& failure) {
    if (status_ == Status::Failed) [[unlikely]] {
      target->setError(takeError());
    } else {
      bool built = false;
      try {
        target->emplaceValue([&]() -> U { return call(value()); });
        built = true;
      } catch (...) {
        target->setError(failure(std::current_exception()));
      }
      destroyValue();
      if (built) target->publishValue();
    }
    target->release();
  }

  template <class>
  friend class Core;

  Core(Runtime* runtime, std::uint8_t sizeClass) noexcept : CoreBase(runtime, sizeClass) {}

  // Whether a value needs destroying is tracked only where destroying does something.
  static constexpr bool kTracksValue = !std::is_trivially_destructible_v<T>;

  void destroyValue() noexcept {
    if constexpr (kTracksValue) {
      value().~T();
      flags_ &= static_cast<std::uint8_t>(~kValueLive);
    }
  }

  // A new core takes over as this one's consumer side: the value step that occupies
  // this core will hand its outcome on to it (transform). The future that pointed here
  // now points there, so its reference here goes.
  Core* redirect() {
    Core* next = create(*runtime_);
    next_ = next;
    release();
    return next;
  }

  // Where a continuation goes: behind the value slot, and behind the slot of the value
  // a step that stays in the block will leave there.
  template <class Result, class F>
  static constexpr std::size_t kContinuationOffset =
      alignUp(kHeaderBytes + (kValueSlot > Core<Result>::kValueSlot ? kValueSlot : Core<Result>::kValueSlot),
              alignof(F) > alignof(void*) ? alignof(F) : alignof(void*));
  template <class Result, class F>
  static constexpr bool kFitsInline =
      kContinuationOffset<Result, F> + sizeof(F) <= kBlockBytes && alignof(F) <= alignof(std::max_align_t);

  template <bool kStaysInCore, class Result, class Fn>
  void install(Fn&& fn) {
    using F = std::decay_t<Fn>;
    static_assert(!kStaysInCore || kCanBecome<Result>);
    constexpr bool kInline = kFitsInline<Result, F>;
    // Too large for the block: the continuation gets a block of its own, and the
    // place behind the value holds the pointer to it.
    constexpr std::size_t kOffset = kInline ? kContinuationOffset<Result, F> : kContinuationOffset<Result, F*>;
    void* place = reinterpret_cast<unsigned char*>(this) + kOffset;
    if constexpr (kInline) {
      ::new (place) F(std::forward<Fn>(fn));
    } else {
      void* storage = runtime_->allocate(sizeof(F));
      ::new (place) F*(::new (storage) F(std::forward<Fn>(fn)));
    }
    run_ = [](CoreBase* base) {
      auto* self = static_cast<Core*>(base);
      void* place = reinterpret_cast<unsigned char*>(self) + kOffset;
      F* f;
      if constexpr (kInline) {
        f = std::launder(static_cast<F*>(place));
      } else {
        f = *std::launder(static_cast<F**>(place));
      }
      struct Cleanup {
        Core* core;
        F* f;
        ~Cleanup() {
          f->~F();
          if constexpr (!kInline) {
            core->runtime_->deallocate(f, sizeof(F));
          }
          core->run_ = nullptr;
          if constexpr (!kStaysInCore) core->release();  // the consumer reference the continuation held
        }
      } cleanup{self, f};
      (*f)(*self);
    };
  }
};

// The producing side of a pending future: the controller completes it when a backend
// answers. A producer destroyed without an outcome fails its future, so no
// continuation can wait forever.
template <class T>
class Producer {
 public:
  Producer() = default;
  explicit Producer(Core<T>* core) noexcept : core_(core) {}
  Producer(Producer&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  Producer& operator=(Producer&& other) noexcept {
    if (this != &other) {
      if (core_ != nullptr) abandon(core_);
      core_ = std::exchange(other.core_, nullptr);
    }
    return *this;
  }
  // The test stays inline, so that a producer the compiler sees completed costs nothing
  // on the way out; breaking the promise is the rare, out-of-line case.
  ASYNCSTATE_ALWAYS_INLINE ~Producer() {
    if (core_ != nullptr) [[unlikely]]
      abandon(core_);
  }

  explicit operator bool() const noexcept { return core_ != nullptr; }

  ASYNCSTATE_ALWAYS_INLINE void setValue(T value) {
    Core<T>* core = std::exchange(core_, nullptr);
    core->setValue(std::move(value));
    core->release();
  }

  void setError(AsyncError error) {
    Core<T>* core = std::exchange(core_, nullptr);
    core->setError(std::move(error));
    core->release();
  }

 private:
  ASYNCSTATE_COLD static void abandon(Core<T>* core) {
    core->setError(AsyncError(std::make_exception_ptr(FutureMisuseError("broken promise: the producer of a StateFuture "
                                                                        "was destroyed without completing it")),
                              "", "", "complete future"));
    core->release();
  }
  Core<T>* core_ = nullptr;
};

}  // namespace asyncstate::detail
