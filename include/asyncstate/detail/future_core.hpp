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

class CoreBase {
 public:
  enum class Status : std::uint8_t { Pending, Value, Failed };

  CoreBase(const CoreBase&) = delete;
  CoreBase& operator=(const CoreBase&) = delete;

  Runtime& runtime() const noexcept { return *runtime_; }
  Status status() const noexcept { return status_; }
  bool hasContinuation() const noexcept { return run_ != nullptr; }
  // The size of the pool block this core lives in (at least its own size).
  std::size_t blockBytes() const noexcept { return blockBytes_; }

  // Called by the consumer (a StateFuture going away without attaching a continuation).
  void dropConsumer() {
    consumerDropped_ = true;
    if (status_ == Status::Failed) reportError();
    release();
  }

  void release() {
    if (--refs_ == 0) destroy_(this);
  }

 protected:
  using RunFn = void (*)(CoreBase*, void* continuation);
  using DestroyFn = void (*)(CoreBase*);

  CoreBase(Runtime* runtime, std::size_t blockBytes, DestroyFn destroy) noexcept
      : runtime_(runtime), destroy_(destroy), blockBytes_(static_cast<std::uint32_t>(blockBytes)) {}

  // Runs the continuation (if any) after the producer set the outcome; if nobody will
  // ever look at a failure, it goes to the error handler now. The continuation clears
  // run_ itself once it is done, so that the slot reads as taken while it runs.
  void settled() {
    if (run_ != nullptr) {
      run_(this, continuation_);
      return;
    }
    if (consumerDropped_ && status_ == Status::Failed) reportError();
  }

  ASYNCSTATE_COLD void reportError() {
    if (error_) {
      runtime_->reportUnhandled(std::move(*error_));
      error_.reset();
    }
  }

  // The value lives right behind the header, at the same place for every T: that is
  // what lets a value step turn a Core<T> into a Core<U> within its block.
  void* valueBytes() noexcept { return reinterpret_cast<unsigned char*>(this) + sizeof(CoreBase); }

  static constexpr std::size_t kInlineContinuation = 48;
  template <class F>
  static constexpr bool kFitsInline = sizeof(F) <= kInlineContinuation && alignof(F) <= alignof(std::max_align_t);

  Runtime* runtime_;
  DestroyFn destroy_;
  RunFn run_ = nullptr;
  void* continuation_ = nullptr;  // points into inline_ or to a pool block
  std::unique_ptr<AsyncError> error_;
  // Set when the future of a value step that runs in this core got a continuation before
  // the step ran: the step's outcome then goes on to this core, which hosts that one.
  CoreBase* redirect_ = nullptr;
  std::uint32_t refs_ = 2;  // producer + consumer
  std::uint32_t blockBytes_;
  Status status_ = Status::Pending;
  bool consumerDropped_ = false;
  bool valueLive_ = false;
  alignas(std::max_align_t) unsigned char inline_[kInlineContinuation];
};

static_assert(sizeof(CoreBase) % alignof(std::max_align_t) == 0);

template <class T>
class Core final : public CoreBase {
  static_assert(alignof(T) <= alignof(std::max_align_t), "a StateFuture's value cannot be over-aligned");

 public:
  // Header and value: what a block must hold for a Core<T>.
  static constexpr std::size_t kBytes = sizeof(CoreBase) + sizeof(T);

  static Core* create(Runtime& runtime) {
    void* memory = runtime.allocate(kBytes);
    return ::new (memory) Core(&runtime, runtime.blockBytes(kBytes));
  }

  void setValue(T value) {
    ::new (valueBytes()) T(std::move(value));
    valueLive_ = true;
    publishValue();
  }

  // For a step that maps a value straight into this core: the value is built by fn()
  // (nothing changes if it throws), then published with publishValue(), so that
  // whatever the publication runs is outside the caller's error handling.
  template <class Fn>
  void emplaceValue(Fn&& fn) {
    ::new (valueBytes()) T(std::forward<Fn>(fn)());
    valueLive_ = true;
  }
  void publishValue() {
    status_ = Status::Value;
    settled();
  }

  void setError(AsyncError error) { setError(std::make_unique<AsyncError>(std::move(error))); }

  void setError(std::unique_ptr<AsyncError> error) {
    error_ = std::move(error);
    status_ = Status::Failed;
    settled();
  }

  // The value in place (only after the producer set one).
  T& value() noexcept { return *std::launder(static_cast<T*>(valueBytes())); }

  T takeValue() {
    T value = std::move(this->value());
    destroyValue();
    return value;
  }

  std::unique_ptr<AsyncError> takeError() { return std::move(error_); }

  // Installs `fn(Core&)` to run once the outcome is set, and returns the core it runs
  // on: this one, or -- if a value step of an earlier stage still occupies this core --
  // a new core that will receive that step's outcome. `Fn` owns whatever it captured
  // and is destroyed right after it ran; unless kStaysInCore, the consumer reference
  // it holds is released then too.
  template <bool kStaysInCore = false, class Fn>
  Core* setContinuation(Fn&& fn) {
    Core* host = run_ == nullptr ? this : redirect();
    host->template install<kStaysInCore>(std::forward<Fn>(fn));
    return host;
  }

  // Whether a value step from T to U can run in this core's block (see transform).
  template <class U>
  static bool canBecome(Runtime& runtime) noexcept {
    return runtime.blockBytes(kBytes) >= Core<U>::kBytes && alignof(U) <= alignof(std::max_align_t);
  }

  // One pool block per chain: replaces the value by call(value), or passes the failure
  // on, in this same block, which is a Core<U> from then on; then completes as one.
  // `failure(exception)` builds the error for a call that throws.
  template <class U, class Call, class Failure>
  void transform(Call& call, Failure&& failure) {
    // A continuation attached before the step ran has a core of its own: the result is
    // built right there, as a separate result core would be.
    if (redirect_ != nullptr) {
      forwardStep<U>(static_cast<Core<U>*>(std::exchange(redirect_, nullptr)), call, failure);
      return;
    }
    auto* next = static_cast<Core<U>*>(static_cast<CoreBase*>(this));
    const bool failed = status_ == Status::Failed;
    status_ = Status::Pending;  // mid-step: nobody may read the old value as the new one
    bool built = false;
    if (!failed) {
      T input = takeValue();
      destroy_ = &Core<U>::destroy;
      try {
        next->emplaceValue([&]() -> U { return call(input); });
        built = true;
      } catch (...) {
        error_ = std::make_unique<AsyncError>(failure(std::current_exception()));
      }
    } else {
      destroy_ = &Core<U>::destroy;
    }
    status_ = built ? Status::Value : Status::Failed;
    if (redirect_ != nullptr) {
      // A continuation attached while the step ran (from inside it).
      auto* target = static_cast<Core<U>*>(std::exchange(redirect_, nullptr));
      if (built) {
        target->setValue(next->takeValue());
      } else {
        target->setError(takeError());
      }
      target->release();
    } else if (consumerDropped_ && !built) {
      reportError();
    }
  }

  // The value step with its result in `target`: runs call(value) (or passes the failure
  // on) and completes `target`, this core keeping its own outcome until it goes.
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
      if (built) target->publishValue();
    }
    target->release();
  }

 private:
  template <class>
  friend class Core;

  Core(Runtime* runtime, std::size_t blockBytes) noexcept : CoreBase(runtime, blockBytes, &Core::destroy) {}

  static void destroy(CoreBase* base) {
    auto* self = static_cast<Core*>(base);
    Runtime& runtime = self->runtime();
    const std::size_t bytes = self->blockBytes();
    if (self->valueLive_) self->destroyValue();
    self->~Core();
    runtime.deallocate(self, bytes);
  }

  void destroyValue() noexcept {
    value().~T();
    valueLive_ = false;
  }

  // A new core takes over as this one's consumer side: the value step that occupies
  // this core will hand its outcome on to it (transform). The future that pointed here
  // now points there, so its reference here goes.
  Core* redirect() {
    Core* next = create(*runtime_);
    redirect_ = next;
    release();
    return next;
  }

  template <bool kStaysInCore, class Fn>
  void install(Fn&& fn) {
    using F = std::decay_t<Fn>;
    void* storage;
    if constexpr (kFitsInline<F>) {
      storage = inline_;
    } else {
      storage = runtime_->allocate(sizeof(F));
    }
    continuation_ = ::new (storage) F(std::forward<Fn>(fn));
    run_ = [](CoreBase* base, void* raw) {
      auto* self = static_cast<Core*>(base);
      F* f = static_cast<F*>(raw);
      struct Cleanup {
        Core* core;
        F* f;
        ~Cleanup() {
          f->~F();
          if constexpr (!kFitsInline<F>) {
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
      abandon();
      core_ = std::exchange(other.core_, nullptr);
    }
    return *this;
  }
  ~Producer() { abandon(); }

  explicit operator bool() const noexcept { return core_ != nullptr; }

  void setValue(T value) {
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
  void abandon() {
    if (core_ != nullptr) {
      setError(AsyncError(std::make_exception_ptr(FutureMisuseError("broken promise: the producer of a StateFuture "
                                                                    "was destroyed without completing it")),
                          "", "", "complete future"));
    }
  }
  Core<T>* core_ = nullptr;
};

}  // namespace asyncstate::detail
