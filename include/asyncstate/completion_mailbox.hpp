#pragma once
// The completion sink a controller hands to its backend. Answers given on the task
// thread (inline backends) are queued without a lock; answers from backend threads go
// through a locked inbox that wakes the waiting task thread.
//
// It is reference-counted apart from the controller: the controller holds one
// reference and every ticket sent and not yet answered holds one. A controller that
// goes away while a backend still owes answers (a stalled drain, a silent network)
// closes the mailbox; the late answers are then dropped and the last one frees it.

#include <asyncstate/detail/runtime.hpp>
#include <asyncstate/state_backend.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <utility>
#include <vector>

namespace asyncstate::detail {

struct Completion {
  std::uint64_t ticket = 0;
  StateResult result;
  std::exception_ptr error;  // set: the backend failed the request
};

template <class = void>
class BasicCompletionMailbox final : public CompletionSink {
 public:
  // `owner` identifies the task thread: answers given while it is the thread's runtime are inline.
  static BasicCompletionMailbox* open(const Runtime* owner) { return new BasicCompletionMailbox(owner); }

  BasicCompletionMailbox(const BasicCompletionMailbox&) = delete;
  BasicCompletionMailbox& operator=(const BasicCompletionMailbox&) = delete;

  // Task thread, before the batch goes to the backend: `tickets` more answers are owed.
  void expect(std::size_t tickets) noexcept { refs_.fetch_add(tickets, std::memory_order_relaxed); }

  void complete(std::uint64_t ticket, StateResult result) override {
    deliver(Completion{ticket, std::move(result), nullptr});
  }
  void fail(std::uint64_t ticket, std::exception_ptr error) override {
    deliver(Completion{ticket, {}, std::move(error)});
  }

  // Task thread: moves every answer received so far into `out` (which must be empty).
  void takeAll(std::vector<Completion>& out) {
    out.swap(inline_);
    if (!out.empty()) refs_.fetch_sub(out.size(), std::memory_order_relaxed);  // the controller's reference remains
    // Checked without the lock first: the task thread looks after every record.
    if (!inboxFilled_.load(std::memory_order_acquire)) return;
    std::lock_guard lock(mutex_);
    inboxFilled_.store(false, std::memory_order_relaxed);
    if (out.empty()) {
      out.swap(inbox_);
    } else {
      for (Completion& c : inbox_) out.push_back(std::move(c));
      inbox_.clear();
    }
  }

  // Task thread: blocks up to `maxWait` for an answer from another thread.
  void waitFor(std::chrono::nanoseconds maxWait) {
    if (!inline_.empty()) return;
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, maxWait, [&] { return !inbox_.empty(); });
  }

  // The controller goes away: later answers are dropped. Releases the controller's reference.
  void close() {
    const std::size_t taken = inline_.size() + 1;
    inline_.clear();
    {
      std::lock_guard lock(mutex_);
      closed_.store(true, std::memory_order_relaxed);
      inbox_.clear();
      inboxFilled_.store(false, std::memory_order_relaxed);
    }
    release(taken);
  }

 private:
  explicit BasicCompletionMailbox(const Runtime* owner) : owner_(owner) {}
  ~BasicCompletionMailbox() override = default;

  void deliver(Completion&& completion) {
    if (tlsRuntime == owner_ && !closed_.load(std::memory_order_relaxed)) {
      inline_.push_back(std::move(completion));  // released when the controller takes it
      return;
    }
    {
      std::lock_guard lock(mutex_);
      if (!closed_.load(std::memory_order_relaxed)) {
        inbox_.push_back(std::move(completion));
        inboxFilled_.store(true, std::memory_order_release);
        // Under the lock: once the task thread took this answer, it may close the mailbox.
        ready_.notify_one();
      }
    }
    release(1);
  }

  void release(std::size_t count) {
    if (refs_.fetch_sub(count, std::memory_order_acq_rel) == count) delete this;
  }

  const Runtime* owner_;
  std::atomic<std::size_t> refs_{1};  // the controller's
  std::atomic<bool> closed_{false};
  std::vector<Completion> inline_;  // task thread only
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<Completion> inbox_;
  std::atomic<bool> inboxFilled_{false};  // inbox_ is not empty
};
using CompletionMailbox = BasicCompletionMailbox<>;  // a template so its members compile only where used (include cost)

// Owns the controller's reference: closes the mailbox when the controller goes.
class MailboxHandle {
 public:
  explicit MailboxHandle(const Runtime* owner) : mailbox_(CompletionMailbox::open(owner)) {}
  ~MailboxHandle() { mailbox_->close(); }
  MailboxHandle(const MailboxHandle&) = delete;
  MailboxHandle& operator=(const MailboxHandle&) = delete;

  CompletionMailbox& operator*() const noexcept { return *mailbox_; }
  CompletionMailbox* operator->() const noexcept { return mailbox_; }

 private:
  CompletionMailbox* mailbox_;
};

}  // namespace asyncstate::detail
