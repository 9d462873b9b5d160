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

  explicit CoreBase(Runtime* runtime) noexcept : runtime_(runtime) {}
  CoreBase(const CoreBase&) = delete;
  CoreBase& operator=(const CoreBase&) = delete;

  Runtime& runtime() const noexcept { return *runtime_; }
  Status status() const noexcept { return status_; }
  bool hasContinuation() const noexcept { return run_ != nullptr; }

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

  // Runs the continuation (if any) after the producer set the outcome; if nobody will
  // ever look at a failure, it goes to the error handler now.
  void settled() {
    if (run_ != nullptr) {
      RunFn run = run_;
      run_ = nullptr;
      run(this, continuation_);
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

  static constexpr std::size_t kInlineContinuation = 48;
  template <class F>
  static constexpr bool kFitsInline = sizeof(F) <= kInlineContinuation && alignof(F) <= alignof(std::max_align_t);

  Runtime* runtime_;
  DestroyFn destroy_ = nullptr;
  RunFn run_ = nullptr;
  void* continuation_ = nullptr;  // points into inline_ or to a pool block
  std::unique_ptr<AsyncError> error_;
  std::uint32_t refs_ = 2;  // producer + consumer
  Status status_ = Status::Pending;
  bool consumerDropped_ = false;
  alignas(std::max_align_t) unsigned char inline_[kInlineContinuation];
};

template <class T>
class Core final : public CoreBase {
 public:
  static Core* create(Runtime& runtime) {
    void* memory = runtime.allocate(sizeof(Core));
    return ::new (memory) Core(&runtime);
  }

  void setValue(T value) {
    value_.emplace(std::move(value));
    status_ = Status::Value;
    settled();
  }

  void setError(AsyncError error) { setError(std::make_unique<AsyncError>(std::move(error))); }

  void setError(std::unique_ptr<AsyncError> error) {
    error_ = std::move(error);
    status_ = Status::Failed;
    settled();
  }

  // For a step that maps this value straight into another core: the value is built
  // by fn() (nothing changes if it throws), then published with publishValue(), so
  // that whatever the publication runs is outside the caller's error handling.
  template <class Fn>
  void emplaceValue(Fn&& fn) {
    value_.emplace(std::forward<Fn>(fn)());
  }
  void publishValue() {
    status_ = Status::Value;
    settled();
  }

  // The value in place (only after the producer set one).
  T& value() noexcept { return *value_; }

  T takeValue() {
    T value = std::move(*value_);
    value_.reset();
    return value;
  }

  std::unique_ptr<AsyncError> takeError() { return std::move(error_); }

  // Installs `fn(Core&)` to run once the outcome is set. `Fn` owns whatever it captured
  // and is destroyed right after it ran.
  template <class Fn>
  void setContinuation(Fn&& fn) {
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
          core->release();  // the consumer reference the continuation held
        }
      } cleanup{self, f};
      (*f)(*self);
    };
  }

 private:
  explicit Core(Runtime* runtime) noexcept : CoreBase(runtime) {
    destroy_ = [](CoreBase* base) {
      auto* self = static_cast<Core*>(base);
      Runtime& rt = self->runtime();
      self->~Core();
      rt.deallocate(self, sizeof(Core));
    };
  }

  std::optional<T> value_;
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
