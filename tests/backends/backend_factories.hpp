#pragma once
// Every backend configuration the shared suite runs against. A stack owns its backend
// and whatever it wraps (a temp directory, an inner backend); `backend()` is the top.

#include <asyncstate/state_backend.hpp>

#if ASYNCSTATE_TEST_WITH_REDIS
#include <asyncstate/backend/redis_options.hpp>

#include "../support/redis_server.hpp"
#endif

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace asyncstate::test {

class BackendStack {
 public:
  virtual ~BackendStack() = default;
  virtual StateBackend& backend() = 0;
};

struct BackendFactory {
  std::string name;
  std::function<std::unique_ptr<BackendStack>()> make;
};

inline void PrintTo(const BackendFactory& factory, std::ostream* os) { *os << factory.name; }

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/asyncstate-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string uniqueJobName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

#if ASYNCSTATE_TEST_WITH_REDIS
// One server for the whole test binary; every stack uses its own job namespace.
RedisServer& sharedRedis();
RedisOptions redisOptionsFor(const std::vector<std::string>& seeds);
#endif

template <class Top>
class OwnedStack final : public BackendStack {
 public:
  ~OwnedStack() override {
    // Outermost first: a wrapper's threads may still call what it wraps.
    top.reset();
    while (!keepAlive.empty()) keepAlive.pop_back();
  }
  StateBackend& backend() override { return *top; }
  std::vector<std::shared_ptr<void>> keepAlive;  // innermost first
  std::unique_ptr<Top> top;
};

// Every configuration, RocksDB and Redis included when the build has them. Defined once
// in backend_factories.cpp: compiling the storage backends into every test that only
// iterates over them made each such test take half again as long to build.
std::vector<BackendFactory> backendFactories();

}  // namespace asyncstate::test
