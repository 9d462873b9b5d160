#pragma once
// AsyncError (a failure plus where it happened), AsyncStateException and the error
// handler type. The rule the library enforces: every failure reaches exactly one
// place -- a downstream exceptionally()/handle(), or the controller's ErrorHandler.

#include <asyncstate/detail/config.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate {

namespace detail {

// A failure travels down a chain of futures as one boxed AsyncError. The boxes come from
// a small per-thread cache of returned ones, so that failing in steady state takes
// nothing from the heap (the controller's pool cannot serve them: a box may outlive
// the controller, or be freed outside its thread's scope).
class ErrorBoxCache {
 public:
  static void* take(std::size_t size) {
    if (head_ != nullptr) {
      Block* block = head_;
      head_ = block->next;
      --kept_;
      return block;
    }
    return ::operator new(size);
  }

  static void give(void* box, std::size_t size) noexcept {
    if (closed_ || kept_ == kKept) {
      ::operator delete(box, size);
      return;
    }
    // Constructed with the first box kept on this thread; its destructor frees them all
    // when the thread ends. Boxes freed after that go straight back to the heap.
    static thread_local Drain drain;
    auto* block = static_cast<Block*>(box);
    block->next = head_;
    head_ = block;
    ++kept_;
  }

 private:
  struct Block {
    Block* next;
  };
  struct Drain {
    Drain() = default;
    Drain(const Drain&) = delete;
    Drain& operator=(const Drain&) = delete;
    ~Drain() {
      closed_ = true;
      while (head_ != nullptr) ::operator delete(std::exchange(head_, head_->next));
      kept_ = 0;
    }
  };
  static constexpr std::size_t kKept = ASYNCSTATE_ADDRESS_SANITIZER ? 0 : 64;
  // Trivially destructible, so they stay usable until the thread is gone.
  static inline thread_local Block* head_ = nullptr;
  static inline thread_local std::size_t kept_ = 0;
  static inline thread_local bool closed_ = false;
};

}  // namespace detail

class AsyncError {
 public:
  AsyncError() = default;
  AsyncError(std::exception_ptr error, std::string stateName, std::string key, std::string operation)
      : error_(std::move(error)),
        stateName_(std::move(stateName)),
        key_(std::move(key)),
        operation_(std::move(operation)) {}

  const std::exception_ptr& error() const noexcept { return error_; }
  const std::string& stateName() const noexcept { return stateName_; }
  const std::string& key() const noexcept { return key_; }
  const std::string& operation() const noexcept { return operation_; }

  // The original exception's what(), or a placeholder for non-std exceptions.
  std::string what() const {
    if (!error_) return "no exception";
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "non-standard exception";
    }
  }

  // "operation on state 'name' for key 'k' failed: what"
  std::string message() const {
    std::string text = operation_.empty() ? std::string("async operation") : operation_;
    if (!stateName_.empty()) text += " on state '" + stateName_ + "'";
    if (!key_.empty()) text += " for key '" + key_ + "'";
    return text + " failed: " + what();
  }

  [[noreturn]] void rethrow() const { std::rethrow_exception(error_); }

  // Where a boxed AsyncError (std::make_unique<AsyncError>) lives: see ErrorBoxCache.
  // (A class derived from AsyncError has boxes of another size: those use the heap.)
  static void* operator new(std::size_t size) {
    return size == sizeof(AsyncError) ? detail::ErrorBoxCache::take(size) : ::operator new(size);
  }
  static void operator delete(void* box, std::size_t size) noexcept {
    if (size == sizeof(AsyncError)) {
      detail::ErrorBoxCache::give(box, size);
    } else {
      ::operator delete(box, size);
    }
  }

 private:
  std::exception_ptr error_;
  std::string stateName_;
  std::string key_;
  std::string operation_;
};

// Thrown from the controller's next call on the task thread after a failure reached
// the default (fail-the-task) handler.
class AsyncStateException : public std::runtime_error {
 public:
  explicit AsyncStateException(std::vector<AsyncError> errors)
      : std::runtime_error(describe(errors)), errors_(std::move(errors)) {}

  const std::vector<AsyncError>& errors() const noexcept { return errors_; }
  const AsyncError& first() const { return errors_.front(); }

 private:
  static std::string describe(const std::vector<AsyncError>& errors) {
    if (errors.empty()) return "asyncstate: task failed";
    std::string text = "asyncstate: task failed: " + errors.front().message();
    if (errors.size() > 1) text += " (and " + std::to_string(errors.size() - 1) + " more failures)";
    return text;
  }
  std::vector<AsyncError> errors_;
};

// Misuse of a future: consumed twice, used after move, awaited outside a Task.
class FutureMisuseError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

enum class ErrorAction {
  FailTask,  // keep the error; the controller's next call throws AsyncStateException
  Continue,  // the handler dealt with it (logged, counted, ...); keep processing
};

using ErrorHandler = std::function<ErrorAction(const AsyncError&)>;

// The default: the task fails with the error at the next controller call.
inline ErrorHandler failTask() {
  return [](const AsyncError&) { return ErrorAction::FailTask; };
}

// Logs every failure to `out` and keeps going.
inline ErrorHandler logAndContinue(std::ostream& out = std::cerr) {
  return [&out](const AsyncError& error) {
    out << "asyncstate: " << error.message() << '\n';
    return ErrorAction::Continue;
  };
}

}  // namespace asyncstate
