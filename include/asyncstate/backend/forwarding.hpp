#pragma once
// ForwardingBackend: the base of backends that wrap another one (latency injection,
// retries, a cache), as RocksDB's StackableDB is for wrapped databases. It forwards every
// call to the inner backend, so a wrapper overrides only what it changes; and it
// serialises the calls into the inner backend, because wrappers call it from threads of
// their own too (a timer releasing held batches, a dispatcher resending failed requests)
// while backends are called from one thread at a time.

#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate {

class ForwardingBackend : public StateBackend {
 public:
  // `wrapper` names the wrapper in name(): "<wrapper>(<inner name>)".
  ForwardingBackend(StateBackend& inner, std::string wrapper) : inner_(inner), wrapper_(std::move(wrapper)) {}
  ForwardingBackend(const ForwardingBackend&) = delete;
  ForwardingBackend& operator=(const ForwardingBackend&) = delete;

  std::string name() const override { return wrapper_ + "(" + inner_.name() + ")"; }
  std::string describeConfiguration() const override { return inner_.describeConfiguration(); }

  std::uint32_t registerState(const std::string& stateName, StateKind kind) override {
    std::lock_guard lock(innerMutex_);
    return inner_.registerState(stateName, kind);
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    forwardBatch(std::move(batch), sink);
  }

  void poll() override {
    std::lock_guard lock(innerMutex_);
    inner_.poll();
  }

  void snapshot(Savepoint& out) override {
    std::lock_guard lock(innerMutex_);
    inner_.snapshot(out);
  }

  void restore(const Savepoint& in) override {
    std::lock_guard lock(innerMutex_);
    inner_.restore(in);
  }

  BackendStats stats() const override {
    std::lock_guard lock(innerMutex_);
    return inner_.stats();
  }

 protected:
  // The wrapped backend, for what does not call into it (its name, its configuration).
  const StateBackend& inner() const noexcept { return inner_; }

  // Hands `batch` to the inner backend, answering to `sink` (usually the wrapper itself,
  // which passes the answers on). Never call while holding a lock an answer may take:
  // the inner backend may answer before this returns.
  void forwardBatch(std::vector<StateRequest> batch, CompletionSink& sink) {
    std::lock_guard lock(innerMutex_);
    inner_.executeBatch(std::move(batch), sink);
  }

 private:
  StateBackend& inner_;
  std::string wrapper_;
  mutable std::mutex innerMutex_;  // serialises every call into inner_
};

}  // namespace asyncstate
