#pragma once
// Backends for controller tests: one that answers from its own thread in shuffled
// order (effects still applied in submission order, as the interface requires), one
// that fails chosen requests, and one that holds its answers until the test releases them.

#include <asyncstate/backend/memory.hpp>
#include <asyncstate/state_backend.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace asyncstate::testing {

// Applies each batch to a MemoryBackend at once, then answers its requests from a
// worker thread in random order after a short random delay.
class ShufflingBackend final : public StateBackend, private CompletionSink {
 public:
  explicit ShufflingBackend(std::uint64_t seed = 1)
      : rng_(seed), workerRng_(seed + 1), worker_([this] { deliverLoop(); }) {}
  ~ShufflingBackend() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  std::string name() const override { return "shuffling(memory)"; }
  std::uint32_t registerState(const std::string& n, StateKind kind) override { return inner_.registerState(n, kind); }
  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    std::lock_guard lock(mutex_);
    target_ = &sink;
    inner_.executeBatch(std::move(batch), *this);
    std::shuffle(ready_.begin(), ready_.end(), rng_);
    wake_.notify_all();
  }
  void snapshot(Savepoint& out) override { inner_.snapshot(out); }
  void restore(const Savepoint& in) override { inner_.restore(in); }
  std::size_t delivered() const { return delivered_.load(); }

 private:
  struct Answer {
    std::uint64_t ticket;
    StateResult result;
  };
  void complete(std::uint64_t ticket, StateResult result) override { ready_.push_back({ticket, std::move(result)}); }
  void fail(std::uint64_t, std::exception_ptr) override {}

  void deliverLoop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || !ready_.empty(); });
      if (ready_.empty() && stopping_) return;
      const std::size_t take = std::min<std::size_t>(ready_.size(), 1 + workerRng_() % 8);
      std::vector<Answer> now(std::make_move_iterator(ready_.end() - static_cast<std::ptrdiff_t>(take)),
                              std::make_move_iterator(ready_.end()));
      ready_.resize(ready_.size() - take);
      CompletionSink* sink = target_;
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(workerRng_() % 50));
      // Counted first: the controller may finish draining as soon as the last answer lands.
      delivered_ += now.size();
      for (Answer& a : now) sink->complete(a.ticket, std::move(a.result));
      lock.lock();
    }
  }

  MemoryBackend inner_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Answer> ready_;
  CompletionSink* target_ = nullptr;
  bool stopping_ = false;
  std::atomic<std::size_t> delivered_{0};
  std::mt19937_64 rng_;        // shuffles, under mutex_
  std::mt19937_64 workerRng_;  // paces delivery, worker thread only
  std::thread worker_;
};

class InjectedFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A MemoryBackend that fails the requests `shouldFail` picks (and does not apply them).
class FailingBackend final : public StateBackend {
 public:
  std::function<bool(const StateRequest&)> shouldFail = [](const StateRequest&) { return true; };

  std::string name() const override { return "failing(memory)"; }
  std::uint32_t registerState(const std::string& n, StateKind kind) override { return inner_.registerState(n, kind); }
  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    std::vector<StateRequest> pass;
    for (StateRequest& r : batch) {
      if (shouldFail(r)) {
        sink.fail(r.ticket,
                  std::make_exception_ptr(InjectedFailure(std::string("injected ") + toString(r.type) + " failure")));
      } else {
        pass.push_back(std::move(r));
      }
    }
    if (!pass.empty()) inner_.executeBatch(std::move(pass), sink);
  }
  void snapshot(Savepoint& out) override { inner_.snapshot(out); }
  void restore(const Savepoint& in) override { inner_.restore(in); }

 private:
  MemoryBackend inner_;
};

// Holds every request unanswered until the test releases them: on the test's thread
// (answerAll), from another thread (a network that comes back after its client gave up),
// or at once when answerAtOnce is set.
class HoldingBackend final : public StateBackend {
 public:
  std::string name() const override { return "holding"; }
  std::uint32_t registerState(const std::string&, StateKind) override { return 0; }
  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    {
      std::lock_guard lock(mutex_);
      for (const StateRequest& r : batch) held_.emplace_back(r.ticket, &sink);
    }
    if (answerAtOnce) answerAll();
  }
  void snapshot(Savepoint&) override {}
  void restore(const Savepoint&) override {}

  std::size_t held() {
    std::lock_guard lock(mutex_);
    return held_.size();
  }
  void answerAll() {
    std::vector<std::pair<std::uint64_t, CompletionSink*>> answers;
    {
      std::lock_guard lock(mutex_);
      answers = std::exchange(held_, {});
    }
    for (auto& [ticket, sink] : answers) sink->complete(ticket, StateResult{});
  }
  void answerAllFromAnotherThread() {
    std::thread([this] { answerAll(); }).join();
  }
  bool answerAtOnce = false;

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::uint64_t, CompletionSink*>> held_;
};

}  // namespace asyncstate::testing
