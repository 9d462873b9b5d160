#pragma once
// The backends every state and controller suite runs against. Backend-specific
// factories (RocksDB, Redis) are appended when those tests are built.

#include "test_backends.hpp"

#if ASYNCSTATE_TEST_WITH_ROCKSDB || ASYNCSTATE_TEST_WITH_REDIS
#include "../backends/storage_backends.hpp"
#endif

#include <asyncstate/backend/memory.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace asyncstate::testing {

struct BackendFactory {
  std::string name;
  std::function<std::unique_ptr<StateBackend>()> make;
};

inline std::vector<BackendFactory> allBackends() {
  std::vector<BackendFactory> factories{
      {"memory", [] { return std::make_unique<MemoryBackend>(); }},
      {"shuffled", [] { return std::make_unique<ShufflingBackend>(7); }},
  };
#if ASYNCSTATE_TEST_WITH_ROCKSDB || ASYNCSTATE_TEST_WITH_REDIS
  for (auto& [name, make] : test::storageBackends()) factories.push_back({name, make});
#endif
  return factories;
}

}  // namespace asyncstate::testing
