#pragma once
// Drives a StateBackend directly: builds requests, runs a batch and waits (with a
// timeout, polling the backend) until every ticket is answered exactly once.

#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate::test {

struct Outcome {
  bool ok = false;
  StateResult result;
  std::string error;
};

class CollectingSink final : public CompletionSink {
 public:
  void complete(std::uint64_t ticket, StateResult result) override {
    std::lock_guard lock(mutex_);
    record(ticket, Outcome{true, std::move(result), {}});
  }
  void fail(std::uint64_t ticket, std::exception_ptr error) override {
    std::string what;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    }
    std::lock_guard lock(mutex_);
    record(ticket, Outcome{false, {}, what});
  }

  // Waits until `count` tickets are answered; polls the backend like the controller.
  bool waitFor(std::size_t count, StateBackend& backend, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      backend.poll();
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(5), [&] { return outcomes_.size() >= count; })) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
  }

  std::map<std::uint64_t, Outcome> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(outcomes_, {});
  }

  int duplicates() const {
    std::lock_guard lock(mutex_);
    return duplicates_;
  }

 private:
  void record(std::uint64_t ticket, Outcome outcome) {
    if (!outcomes_.emplace(ticket, std::move(outcome)).second) ++duplicates_;
    cv_.notify_all();
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::uint64_t, Outcome> outcomes_;
  int duplicates_ = 0;
};

inline StateRequest req(RequestType type, std::uint32_t state, std::string key, std::string userKey = {},
                        std::string value = {}) {
  StateRequest r;
  r.type = type;
  r.stateId = state;
  r.keyGroup = keyGroupOf(key);
  r.key = std::move(key);
  r.userKey = std::move(userKey);
  r.value = std::move(value);
  return r;
}

inline StateRequest get(std::uint32_t s, std::string k, std::string uk = {}) {
  return req(RequestType::Get, s, std::move(k), std::move(uk));
}
inline StateRequest put(std::uint32_t s, std::string k, std::string v) {
  return req(RequestType::Put, s, std::move(k), {}, std::move(v));
}
inline StateRequest putEntry(std::uint32_t s, std::string k, std::string uk, std::string v) {
  return req(RequestType::Put, s, std::move(k), std::move(uk), std::move(v));
}
inline StateRequest del(std::uint32_t s, std::string k, std::string uk = {}) {
  return req(RequestType::Delete, s, std::move(k), std::move(uk));
}
inline StateRequest append(std::uint32_t s, std::string k, std::string v) {
  return req(RequestType::Append, s, std::move(k), {}, std::move(v));
}
inline StateRequest clear(std::uint32_t s, std::string k) { return req(RequestType::Clear, s, std::move(k)); }
inline StateRequest scan(std::uint32_t s, std::string k, std::uint32_t limit, ScanCursor cursor = {}) {
  StateRequest r = req(RequestType::Scan, s, std::move(k));
  r.limit = limit;
  r.cursor = std::move(cursor);
  return r;
}

// Runs one batch; outcomes in request order. Fails the test on a timeout or a ticket
// answered twice.
inline std::vector<Outcome> run(StateBackend& backend, std::vector<StateRequest> batch,
                                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  CollectingSink sink;
  const std::size_t n = batch.size();
  for (std::size_t i = 0; i < n; ++i) batch[i].ticket = 1000 + i;
  backend.executeBatch(std::move(batch), sink);
  if (!sink.waitFor(n, backend, timeout))
    throw std::runtime_error("backend " + backend.name() + " did not answer in time");
  EXPECT_EQ(sink.duplicates(), 0) << "a ticket was answered twice";
  auto outcomes = sink.take();
  std::vector<Outcome> ordered;
  for (std::size_t i = 0; i < n; ++i) ordered.push_back(outcomes.at(1000 + i));
  return ordered;
}

// The value a Get answered, or "<absent>"/"<error: ...>", so that one EXPECT shows it all.
inline std::string shown(const Outcome& o) {
  if (!o.ok) return "<error: " + o.error + ">";
  return o.result.found ? o.result.value : "<absent>";
}

// Reads a whole map through Scan chunks of `chunk`.
inline std::vector<std::pair<std::string, std::string>> scanAll(StateBackend& backend, std::uint32_t state,
                                                                const std::string& key, std::uint32_t chunk) {
  std::vector<std::pair<std::string, std::string>> all;
  ScanCursor cursor;
  for (int guard = 0; guard < 100000; ++guard) {
    Outcome o = run(backend, {scan(state, key, chunk, cursor)}).at(0);
    if (!o.ok) throw std::runtime_error("scan failed: " + o.error);
    all.insert(all.end(), o.result.entries.begin(), o.result.entries.end());
    if (!o.result.more) return all;
    cursor = o.result.nextCursor;
  }
  throw std::runtime_error("scan did not terminate");
}

inline std::string savepointBytes(StateBackend& backend) {
  Savepoint sp;
  backend.snapshot(sp);
  return sp.serialize();
}

}  // namespace asyncstate::test
