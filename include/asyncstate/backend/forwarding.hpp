#pragma once
// ForwardingBackend: the base of backends that wrap another one (latency injection,
// retries, a cache), as RocksDB's StackableDB is for wrapped databases. It forwards every
// call to the inner backend, so a wrapper overrides only what it changes; and it
// serialises the calls into the inner backend, because wrappers call it from threads of
// their own too (a timer releasing held batches, a dispatcher resending failed requests)
// while backends are called from one thread at a time. It also remembers the states
// registered through it (the inner backend's ids and their names), which is all of the
// inner backend's state registry a wrapper needs: names for its error messages, and
// which ids it may treat as known states.
//
// Lightweight checkpoints (lightweight_checkpoint.hpp) are forwarded too, so that a
// wrapped Redis keeps them: a wrapper is enabled exactly when its inner backend is. A
// wrapper that keeps state of its own (the cache) drops it after a rollback.

#include <asyncstate/lightweight_checkpoint.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace asyncstate {

// A class template only so that its code is compiled by the translation units that
// construct a wrapper, not by every one that includes the umbrella header; the name to
// use is ForwardingBackend.
template <class = void>
class BasicForwardingBackend : public StateBackend, public LightweightCheckpoints {
 public:
  // `wrapper` names the wrapper in name(): "<wrapper>(<inner name>)".
  BasicForwardingBackend(StateBackend& inner, std::string wrapper) : inner_(inner), wrapper_(std::move(wrapper)) {}
  BasicForwardingBackend(const BasicForwardingBackend&) = delete;
  BasicForwardingBackend& operator=(const BasicForwardingBackend&) = delete;

  std::string name() const override { return wrapper_ + "(" + inner_.name() + ")"; }
  std::string describeConfiguration() const override { return inner_.describeConfiguration(); }
  std::size_t preferredBatchSize() const override { return inner_.preferredBatchSize(); }

  std::uint32_t registerState(const std::string& stateName, StateKind kind) override {
    std::uint32_t id = 0;
    {
      std::lock_guard lock(innerMutex_);
      id = inner_.registerState(stateName, kind);
    }
    std::lock_guard lock(namesMutex_);
    names_.insert_or_assign(id, stateName);
    return id;
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

  bool lightweightCheckpointsEnabled() const override {
    const auto* lightweight = dynamic_cast<const LightweightCheckpoints*>(&inner_);
    return lightweight != nullptr && lightweight->lightweightCheckpointsEnabled();
  }

  std::uint64_t commitCheckpoint(const std::map<std::string, std::string>& metadata) override {
    std::lock_guard lock(innerMutex_);
    return innerCheckpoints("commitCheckpoint()").commitCheckpoint(metadata);
  }

  LightweightCheckpoint lastCheckpoint() override {
    std::lock_guard lock(innerMutex_);
    return innerCheckpoints("lastCheckpoint()").lastCheckpoint();
  }

  std::vector<LightweightCheckpoint> retainedCheckpoints() override {
    std::lock_guard lock(innerMutex_);
    return innerCheckpoints("retainedCheckpoints()").retainedCheckpoints();
  }

  void rollBackTo(std::uint64_t id) override {
    std::lock_guard lock(innerMutex_);
    innerCheckpoints("rollBackTo()").rollBackTo(id);
  }

 protected:
  // The wrapped backend, for what does not call into it (its name, its configuration).
  const StateBackend& inner() const noexcept { return inner_; }

  // Whether `id` was returned by registerState through this wrapper. Any thread; takes
  // only a lock of its own, so it may be called while holding any other.
  bool registeredHere(std::uint32_t id) const {
    std::lock_guard lock(namesMutex_);
    return names_.contains(id);
  }

  // The name of a state registered through this wrapper, "#<id>" for any other id.
  std::string stateName(std::uint32_t id) const {
    std::lock_guard lock(namesMutex_);
    const auto it = names_.find(id);
    return it != names_.end() ? it->second : "#" + std::to_string(id);
  }

  // Hands `batch` to the inner backend, answering to `sink` (usually the wrapper itself,
  // which passes the answers on). Never call while holding a lock an answer may take:
  // the inner backend may answer before this returns.
  void forwardBatch(std::vector<StateRequest> batch, CompletionSink& sink) {
    std::lock_guard lock(innerMutex_);
    inner_.executeBatch(std::move(batch), sink);
  }

 private:
  LightweightCheckpoints& innerCheckpoints(const char* call) {
    auto* lightweight = dynamic_cast<LightweightCheckpoints*>(&inner_);
    if (lightweight == nullptr || !lightweight->lightweightCheckpointsEnabled()) {
      throw std::logic_error(name() + ": " + call + " needs lightweight checkpoints, which " + inner_.name() +
                             " does not have enabled");
    }
    return *lightweight;
  }

  StateBackend& inner_;
  std::string wrapper_;
  mutable std::mutex innerMutex_;  // serialises every call into inner_
  mutable std::mutex namesMutex_;  // names_ only; never held while taking another lock
  std::unordered_map<std::uint32_t, std::string> names_;
};

using ForwardingBackend = BasicForwardingBackend<>;

}  // namespace asyncstate
