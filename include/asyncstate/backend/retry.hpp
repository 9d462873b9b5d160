#pragma once
// RetryingBackend: resends requests that failed with a TransientBackendError (which
// promises the request took no effect) with bounded exponential backoff, so that an
// outage of the storage delays a job instead of failing it. The controller itself
// treats every failure as final; retrying is a property of the storage stack.
//
// Order. Requests of one (state, key) must take effect in submission order even when
// an earlier one is being retried. So a key with an unresolved request (in flight in
// an earlier batch, or waiting for its retry) holds its later requests back; they go
// out, in order, behind the retried ones. This needs the wrapped backend to fail
// per-key suffixes (once a key's request fails, its later requests in the same batch
// fail too), which LatencyInjectingBackend does and RocksDB does.
//
// Retries and released requests are sent by a dispatcher thread; the wrapped backend
// is only ever called under one mutex, so a backend that is not thread-safe (memory)
// can be wrapped. A request that exhausts its attempts fails with BackendError naming
// the attempts, the time spent and the last error.

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/backend/forwarding.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace asyncstate {

struct RetryOptions {
  int maxAttempts = 100;                          // per request, the first try included
  std::chrono::milliseconds maxRetryTime{30000};  // per request, from its first try
  std::chrono::milliseconds initialBackoff{5};
  std::chrono::milliseconds maxBackoff{250};
  // Which failures are retried; the default: those that promise no effect.
  std::function<bool(const std::exception_ptr&)> retryable = [](const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const TransientBackendError&) {
      return true;
    } catch (...) {
      return false;
    }
  };
};

struct RetryStats {
  std::uint64_t retries = 0;   // requests resent
  std::uint64_t heldBack = 0;  // requests that waited behind an unresolved one of their key
  std::uint64_t gaveUp = 0;
};

// A class template only so that its code is compiled by the translation units that use it,
// not by every UDF that includes the umbrella header; use it by its plain name below.
template <class = void>
class BasicRetryingBackend final : public ForwardingBackend, private CompletionSink {
 public:
  using Clock = std::chrono::steady_clock;

  BasicRetryingBackend(StateBackend& inner, RetryOptions options = {})
      : ForwardingBackend(inner, "retrying"), options_(std::move(options)) {
    dispatcher_ = std::thread([this] { dispatchLoop(); });
  }

  ~BasicRetryingBackend() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    dispatcher_.join();
  }

  BasicRetryingBackend(const BasicRetryingBackend&) = delete;
  BasicRetryingBackend& operator=(const BasicRetryingBackend&) = delete;

  std::string describeConfiguration() const override {
    // The inner description goes first so that its warnings still start a line.
    return inner().describeConfiguration() + "\nretrying transient failures: up to " +
           std::to_string(options_.maxAttempts) + " attempts within " + std::to_string(options_.maxRetryTime.count()) +
           " ms, backoff " + std::to_string(options_.initialBackoff.count()) + ".." +
           std::to_string(options_.maxBackoff.count()) + " ms";
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    std::vector<StateRequest> forward;
    {
      std::lock_guard lock(mutex_);
      const Clock::time_point now = Clock::now();
      std::set<KeyId> sentNow;
      for (StateRequest& r : batch) {
        Item item{std::move(r), &sink, 0, nextSeq_++, 1, now};
        item.originalTicket = item.request.ticket;
        KeyId id{item.request.stateId, item.request.key};
        KeyState& key = keys_[id];
        if (!key.waiting.empty() || (key.inFlight > 0 && !sentNow.contains(id))) {
          ++stats_.heldBack;
          key.waiting.push_back(std::move(item));
          continue;
        }
        sentNow.insert(id);
        forward.push_back(launch(key, std::move(item)));
      }
    }
    send(std::move(forward));
  }

  RetryStats retryStats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  using KeyId = std::pair<std::uint32_t, std::string>;

  struct Item {
    StateRequest request;  // its ticket is ours while in flight
    CompletionSink* sink;
    std::uint64_t originalTicket;
    std::uint64_t seq;
    int attempts;
    Clock::time_point firstTry;
  };

  struct KeyState {
    int inFlight = 0;
    std::deque<Item> waiting;  // ascending seq
    Clock::time_point notBefore;
  };

  // Registers an item as in flight and returns the request to send.
  StateRequest launch(KeyState& key, Item item) {
    ++key.inFlight;
    StateRequest copy = item.request;
    copy.ticket = item.seq;
    inFlight_.emplace(item.seq, std::move(item));
    return copy;
  }

  void send(std::vector<StateRequest> requests) {
    if (requests.empty()) return;
    forwardBatch(std::move(requests), *this);
  }

  void complete(std::uint64_t ticket, StateResult result) override {
    CompletionSink* sink;
    std::uint64_t original;
    {
      std::lock_guard lock(mutex_);
      auto it = inFlight_.find(ticket);
      if (it == inFlight_.end()) return;
      sink = it->second.sink;
      original = it->second.originalTicket;
      settle(it->second);
      inFlight_.erase(it);
    }
    sink->complete(original, std::move(result));
  }

  void fail(std::uint64_t ticket, std::exception_ptr error) override {
    CompletionSink* sink;
    std::uint64_t original;
    std::string why;
    {
      std::lock_guard lock(mutex_);
      auto it = inFlight_.find(ticket);
      if (it == inFlight_.end()) return;
      Item& item = it->second;
      const Clock::time_point now = Clock::now();
      if (item.attempts < options_.maxAttempts && now - item.firstTry < options_.maxRetryTime &&
          options_.retryable(error)) {
        ++stats_.retries;
        KeyState& key = keys_[KeyId{item.request.stateId, item.request.key}];
        --key.inFlight;
        auto backoff = options_.initialBackoff * (1 << std::min(item.attempts - 1, 16));
        key.notBefore = std::max(key.notBefore, now + std::min<Clock::duration>(backoff, options_.maxBackoff));
        ++item.attempts;
        auto pos =
            std::find_if(key.waiting.begin(), key.waiting.end(), [&](const Item& w) { return w.seq > item.seq; });
        key.waiting.insert(pos, std::move(item));
        inFlight_.erase(it);
        wake_.notify_all();
        return;
      }
      ++stats_.gaveUp;
      sink = item.sink;
      original = item.originalTicket;
      why = "gave up after " + std::to_string(item.attempts) + " attempts over " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - item.firstTry).count()) +
            " ms: " + describe(error);
      settle(item);
      inFlight_.erase(it);
    }
    sink->fail(original, std::make_exception_ptr(BackendError(why)));
  }

  static std::string describe(const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "non-standard exception";
    }
  }

  // A request resolved for good: its key may release the requests it held back.
  void settle(const Item& item) {
    auto it = keys_.find(KeyId{item.request.stateId, item.request.key});
    if (it == keys_.end()) return;
    --it->second.inFlight;
    if (it->second.inFlight == 0 && it->second.waiting.empty()) {
      keys_.erase(it);
    } else if (it->second.inFlight == 0) {
      wake_.notify_all();
    }
  }

  void dispatchLoop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      const Clock::time_point now = Clock::now();
      Clock::time_point next = now + std::chrono::seconds(1);
      std::vector<StateRequest> out;
      for (auto& [id, key] : keys_) {
        if (key.inFlight > 0 || key.waiting.empty()) continue;
        if (key.notBefore > now) {
          next = std::min(next, key.notBefore);
          continue;
        }
        while (!key.waiting.empty()) {
          out.push_back(launch(key, std::move(key.waiting.front())));
          key.waiting.pop_front();
        }
      }
      if (!out.empty()) {
        lock.unlock();
        send(std::move(out));
        lock.lock();
        continue;
      }
      wake_.wait_until(lock, next);
    }
  }

  RetryOptions options_;

  mutable std::mutex mutex_;  // everything below
  std::condition_variable wake_;
  std::map<KeyId, KeyState> keys_;  // keys with unresolved requests
  std::unordered_map<std::uint64_t, Item> inFlight_;
  std::uint64_t nextSeq_ = 1;
  bool stopping_ = false;
  RetryStats stats_;
  std::thread dispatcher_;
};

using RetryingBackend = BasicRetryingBackend<>;

}  // namespace asyncstate
