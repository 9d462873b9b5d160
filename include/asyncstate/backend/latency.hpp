#pragma once
// LatencyInjectingBackend: makes any backend behave like remote storage, reproducibly.
// Each batch gets a latency (fixed, exponential or lognormal, from a seeded generator);
// its completions are delivered by a timer thread no earlier than that. Requests can
// fail at random (error rate) and in outage windows, always with InjectedFault, a
// TransientBackendError: an injected failure never reaches the wrapped backend, so a
// retry cannot apply a request twice. The error rate is drawn once per (state, key)
// and batch, and all of that key's requests in the batch fail together, like a lost
// sub-batch of a remote store; a retry then resends them in order (RetryingBackend
// relies on failed requests being a per-key suffix of the batch).
//
// Outage modes: Fail answers every request submitted in the window with InjectedFault;
// Stall holds them and runs them, in order, when the window ends (later batches queue
// behind them so that order holds).
//
// The wrapped backend is only ever called under one mutex, from the task thread or the
// timer thread, so a backend that is not thread-safe (memory) can be wrapped.

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/backend/forwarding.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace asyncstate {

enum class LatencyDistribution { Fixed, Exponential, LogNormal };
enum class OutageMode { Fail, Stall };

struct OutageWindow {
  std::chrono::milliseconds start{0};  // offsets from the wrapper's construction
  std::chrono::milliseconds end{0};
  OutageMode mode = OutageMode::Fail;
};

struct LatencyOptions {
  LatencyDistribution distribution = LatencyDistribution::Fixed;
  // Fixed: the latency. Exponential: its mean. LogNormal: its median.
  std::chrono::microseconds latency{1000};
  double logNormalSigma = 0.5;  // LogNormal shape; 0.5 gives a p99 of about 3.2x the median
  double errorRate = 0.0;       // probability that a key's requests in a batch fail with InjectedFault
  std::uint64_t seed = 1;
  std::vector<OutageWindow> outages;
};

struct LatencyStats {
  std::uint64_t batches = 0;
  std::uint64_t injectedErrors = 0;    // requests failed by the error rate
  std::uint64_t outageFailures = 0;    // requests failed in a Fail window
  std::uint64_t stalledBatches = 0;    // batches held by a Stall window
  std::uint64_t answersDelivered = 0;  // completions and failures handed to a sink by the timer thread
  std::chrono::microseconds totalInjectedLatency{0};
};

// A class template only so that its code is compiled by the translation units that use it,
// not by every UDF that includes the umbrella header; use it by its plain name below.
template <class = void>
class BasicLatencyInjectingBackend final : public ForwardingBackend, private CompletionSink {
 public:
  using Clock = std::chrono::steady_clock;

  BasicLatencyInjectingBackend(StateBackend& inner, LatencyOptions options)
      : ForwardingBackend(inner, "latency"), options_(std::move(options)), rng_(options_.seed), created_(Clock::now()) {
    for (const OutageWindow& w : options_.outages) addOutage(created_ + w.start, created_ + w.end, w.mode);
    timer_ = std::thread([this] { timerLoop(); });
  }

  // Every request is answered exactly once, also now: answers still scheduled are
  // delivered, and held (stalled) requests fail. A sink that outlives its controller
  // (the controller's completion mailbox) is released by these answers.
  ~BasicLatencyInjectingBackend() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    timer_.join();
    for (auto& [due, d] : deliveries_) deliver(d);
    for (Stalled& s : stalled_) {
      for (const StateRequest& r : s.batch) {
        s.sink->fail(r.ticket, std::make_exception_ptr(BackendError(
                                   "latency injection: " + detail::describeRequest(r, stateName(r.stateId)) +
                                   " was held by an outage when the backend was destroyed")));
      }
    }
  }

  BasicLatencyInjectingBackend(const BasicLatencyInjectingBackend&) = delete;
  BasicLatencyInjectingBackend& operator=(const BasicLatencyInjectingBackend&) = delete;

  void addOutage(Clock::time_point from, Clock::time_point to, OutageMode mode) {
    std::lock_guard lock(mutex_);
    outages_.push_back(Outage{from, to, mode});
  }

  // It stands for a remote store, where a batch pays for its round trip, whatever the
  // store it wraps would prefer.
  std::size_t preferredBatchSize() const override { return 0; }

  std::string describeConfiguration() const override {
    static const char* const names[] = {"fixed", "exponential", "lognormal"};
    std::string text = std::string("latency injection (") + names[static_cast<int>(options_.distribution)] + " " +
                       std::to_string(options_.latency.count()) + " us";
    if (options_.distribution == LatencyDistribution::LogNormal)
      text += ", sigma " + std::to_string(options_.logNormalSigma);
    text += ", error rate " + std::to_string(options_.errorRate) + ", seed " + std::to_string(options_.seed) + ", " +
            std::to_string(options_.outages.size()) + " outage windows) over " +
            detail::withoutNoCacheWarning(inner().describeConfiguration()) + "\n" + std::string(kNoLocalCacheWarning);
    return text;
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    const Clock::time_point now = Clock::now();
    std::vector<StateRequest> forward;
    std::vector<std::pair<std::uint64_t, std::exception_ptr>> failures;
    Clock::time_point due;
    {
      std::lock_guard lock(mutex_);
      ++stats_.batches;
      const auto latency = sampleLatency();
      stats_.totalInjectedLatency += latency;
      due = now + latency;
      const Outage* outage = activeOutage(now);
      if ((outage != nullptr && outage->mode == OutageMode::Stall) || !stalled_.empty()) {
        ++stats_.stalledBatches;
        const Clock::time_point release = outage != nullptr && outage->mode == OutageMode::Stall
                                              ? std::max(outage->to, stalled_.empty() ? now : stalled_.back().release)
                                              : stalled_.back().release;
        stalled_.push_back(Stalled{release, latency, std::move(batch), &sink});
        wake_.notify_all();
        return;
      }
      // One draw per (state, key) and batch: the key's requests fail together.
      std::map<std::pair<std::uint32_t, std::string>, bool> keyFails;
      std::bernoulli_distribution error(options_.errorRate);
      for (StateRequest& r : batch) {
        std::string why;
        auto [draw, first] = keyFails.try_emplace({r.stateId, r.key}, false);
        if (first && options_.errorRate > 0) draw->second = error(rng_);
        if (outage != nullptr) {
          ++stats_.outageFailures;
          why =
              "injected outage: " + detail::describeRequest(r, stateName(r.stateId)) +
              " rejected (backend unavailable for " +
              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(outage->to - outage->from).count()) +
              " ms)";
        } else if (draw->second) {
          ++stats_.injectedErrors;
          why = "injected fault: " + detail::describeRequest(r, stateName(r.stateId)) + " failed (error rate " +
                std::to_string(options_.errorRate) + ")";
        }
        if (why.empty()) {
          pending_[nextTicket_] = Pending{&sink, r.ticket, due};
          r.ticket = nextTicket_++;
          forward.push_back(std::move(r));
        } else {
          failures.emplace_back(r.ticket, std::make_exception_ptr(InjectedFault(why)));
        }
      }
      for (auto& [ticket, error] : failures) schedule(Delivery{due, &sink, ticket, std::move(error)});
    }
    if (!forward.empty()) forwardBatch(std::move(forward), *this);
  }

  LatencyStats latencyStats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  struct Outage {
    Clock::time_point from, to;
    OutageMode mode;
  };
  struct Pending {
    CompletionSink* sink;
    std::uint64_t ticket;
    Clock::time_point due;
  };
  struct Delivery {
    Clock::time_point due;
    CompletionSink* sink;
    std::uint64_t ticket;
    std::variant<StateResult, std::exception_ptr> outcome;
  };
  struct Stalled {
    Clock::time_point release;
    std::chrono::microseconds latency;
    std::vector<StateRequest> batch;
    CompletionSink* sink;
  };

  std::chrono::microseconds sampleLatency() {
    const auto base = static_cast<double>(options_.latency.count());
    double us = base;
    if (options_.distribution == LatencyDistribution::Exponential && base > 0) {
      us = std::exponential_distribution<double>(1.0 / base)(rng_);
    } else if (options_.distribution == LatencyDistribution::LogNormal && base > 0) {
      us = std::lognormal_distribution<double>(std::log(base), options_.logNormalSigma)(rng_);
    }
    return std::chrono::microseconds(static_cast<std::int64_t>(us));
  }

  const Outage* activeOutage(Clock::time_point now) const {
    for (const Outage& o : outages_) {
      if (now >= o.from && now < o.to) return &o;
    }
    return nullptr;
  }

  void schedule(Delivery d) {
    deliveries_.emplace(d.due, std::move(d));
    wake_.notify_all();
  }

  // CompletionSink for the wrapped backend (any thread).
  void complete(std::uint64_t ticket, StateResult result) override { forwardOutcome(ticket, std::move(result)); }
  void fail(std::uint64_t ticket, std::exception_ptr error) override { forwardOutcome(ticket, std::move(error)); }

  void forwardOutcome(std::uint64_t ticket, std::variant<StateResult, std::exception_ptr> outcome) {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(ticket);
    if (it == pending_.end()) return;
    schedule(Delivery{it->second.due, it->second.sink, it->second.ticket, std::move(outcome)});
    pending_.erase(it);
  }

  static void deliver(Delivery& d) {
    if (auto* result = std::get_if<StateResult>(&d.outcome)) {
      d.sink->complete(d.ticket, std::move(*result));
    } else {
      d.sink->fail(d.ticket, std::get<std::exception_ptr>(d.outcome));
    }
  }

  void timerLoop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      const Clock::time_point now = Clock::now();
      if (!stalled_.empty() && stalled_.front().release <= now) {
        Stalled s = std::move(stalled_.front());
        stalled_.pop_front();
        const Clock::time_point due = now + s.latency;
        for (StateRequest& r : s.batch) {
          pending_[nextTicket_] = Pending{s.sink, r.ticket, due};
          r.ticket = nextTicket_++;
        }
        lock.unlock();
        forwardBatch(std::move(s.batch), *this);
        lock.lock();
        continue;
      }
      if (!deliveries_.empty() && deliveries_.begin()->first <= now) {
        Delivery d = std::move(deliveries_.begin()->second);
        deliveries_.erase(deliveries_.begin());
        lock.unlock();
        deliver(d);
        lock.lock();
        ++stats_.answersDelivered;
        continue;
      }
      Clock::time_point next = now + std::chrono::seconds(1);
      if (!deliveries_.empty()) next = std::min(next, deliveries_.begin()->first);
      if (!stalled_.empty()) next = std::min(next, stalled_.front().release);
      wake_.wait_until(lock, next);
    }
  }

  LatencyOptions options_;
  std::mt19937_64 rng_;
  const Clock::time_point created_;

  mutable std::mutex mutex_;  // everything below
  std::condition_variable wake_;
  std::vector<Outage> outages_;
  std::unordered_map<std::uint64_t, Pending> pending_;  // our ticket -> caller's sink and ticket
  std::multimap<Clock::time_point, Delivery> deliveries_;
  std::deque<Stalled> stalled_;
  std::uint64_t nextTicket_ = 1;
  bool stopping_ = false;
  LatencyStats stats_;
  std::thread timer_;
};

using LatencyInjectingBackend = BasicLatencyInjectingBackend<>;

}  // namespace asyncstate
