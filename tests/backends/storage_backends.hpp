#pragma once
// The real storage backends as plain StateBackends, for the lead's state and runner
// suites (tests/support/backends.hpp appends them to allBackends()).

#include "backend_factories.hpp"

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate::test {

// A backend that owns its whole stack (temp directory, wrapped backends) and forwards.
class OwningBackend final : public StateBackend {
 public:
  explicit OwningBackend(std::unique_ptr<BackendStack> stack) : stack_(std::move(stack)), b_(stack_->backend()) {}
  std::string name() const override { return b_.name(); }
  std::uint32_t registerState(const std::string& n, StateKind kind) override { return b_.registerState(n, kind); }
  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    b_.executeBatch(std::move(batch), sink);
  }
  void poll() override { b_.poll(); }
  void snapshot(Savepoint& out) override { b_.snapshot(out); }
  void restore(const Savepoint& in) override { b_.restore(in); }
  std::string describeConfiguration() const override { return b_.describeConfiguration(); }
  BackendStats stats() const override { return b_.stats(); }

 private:
  std::unique_ptr<BackendStack> stack_;
  StateBackend& b_;
};

inline std::vector<std::pair<std::string, std::function<std::unique_ptr<StateBackend>()>>> storageBackends() {
  std::vector<std::pair<std::string, std::function<std::unique_ptr<StateBackend>()>>> out;
  for (BackendFactory& f : backendFactories()) {
    // The embedded and the remote store; the other configurations are covered by
    // backend_suite_test, and the runner suites are too slow to run over all of them.
    if (f.name != "rocksdb" && f.name != "cached_redis") continue;
    out.emplace_back(f.name, [make = f.make] { return std::unique_ptr<StateBackend>(new OwningBackend(make())); });
  }
  return out;
}

}  // namespace asyncstate::test
