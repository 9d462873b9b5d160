#pragma once
// Every backend configuration the shared suite runs against. A stack owns its backend
// and whatever it wraps (a temp directory, an inner backend); `backend()` is the top.

#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/latency.hpp>
#include <asyncstate/backend/memory.hpp>
#include <asyncstate/backend/retry.hpp>

#if ASYNCSTATE_TEST_WITH_ROCKSDB
#include <asyncstate/backend/rocksdb.hpp>
#endif
#if ASYNCSTATE_TEST_WITH_REDIS
#include <asyncstate/backend/redis.hpp>

#include "../support/redis_server.hpp"
#endif

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
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
inline RedisServer& sharedRedis() {
  static RedisServer server;
  return server;
}

inline RedisOptions redisOptionsFor(const std::vector<std::string>& seeds) {
  RedisOptions options;
  options.seeds = seeds;
  options.job = uniqueJobName("t");
  return options;
}
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

inline std::vector<BackendFactory> backendFactories() {
  std::vector<BackendFactory> factories;
  factories.push_back({"memory", [] {
                         auto s = std::make_unique<OwnedStack<MemoryBackend>>();
                         s->top = std::make_unique<MemoryBackend>();
                         return std::unique_ptr<BackendStack>(std::move(s));
                       }});
  factories.push_back({"latency_memory", [] {
                         auto s = std::make_unique<OwnedStack<LatencyInjectingBackend>>();
                         auto inner = std::make_shared<MemoryBackend>();
                         s->keepAlive.push_back(inner);
                         LatencyOptions options;
                         options.distribution = LatencyDistribution::Exponential;
                         options.latency = std::chrono::microseconds(300);
                         options.seed = 7;
                         s->top = std::make_unique<LatencyInjectingBackend>(*inner, options);
                         return std::unique_ptr<BackendStack>(std::move(s));
                       }});
  factories.push_back({"retrying_faulty_memory", [] {
                         auto s = std::make_unique<OwnedStack<RetryingBackend>>();
                         auto inner = std::make_shared<MemoryBackend>();
                         LatencyOptions options;
                         options.latency = std::chrono::microseconds(100);
                         options.errorRate = 0.2;
                         options.seed = 11;
                         auto faulty = std::make_shared<LatencyInjectingBackend>(*inner, options);
                         s->keepAlive = {inner, faulty};
                         RetryOptions retry;
                         retry.initialBackoff = std::chrono::milliseconds(1);
                         retry.maxBackoff = std::chrono::milliseconds(5);
                         s->top = std::make_unique<RetryingBackend>(*faulty, retry);
                         return std::unique_ptr<BackendStack>(std::move(s));
                       }});
  factories.push_back({"cached_memory", [] {
                         auto s = std::make_unique<OwnedStack<CachingBackend>>();
                         auto inner = std::make_shared<MemoryBackend>();
                         s->keepAlive.push_back(inner);
                         s->top = std::make_unique<CachingBackend>(*inner, 4096);
                         return std::unique_ptr<BackendStack>(std::move(s));
                       }});
#if ASYNCSTATE_TEST_WITH_ROCKSDB
  factories.push_back({"rocksdb", [] {
                         auto s = std::make_unique<OwnedStack<RocksDbBackend>>();
                         auto dir = std::make_shared<TempDir>();
                         s->keepAlive.push_back(dir);
                         s->top = std::make_unique<RocksDbBackend>(RocksDbOptions{dir->path() / "db"});
                         return std::unique_ptr<BackendStack>(std::move(s));
                       }});
#endif
#if ASYNCSTATE_TEST_WITH_REDIS
  factories.push_back({"redis", [] {
                         auto s = std::make_unique<OwnedStack<RedisBackend>>();
                         s->top = std::make_unique<RedisBackend>(redisOptionsFor({sharedRedis().address()}));
                         return std::unique_ptr<BackendStack>(std::move(s));
                       }});
  factories.push_back({"cached_redis", [] {
                         auto s = std::make_unique<OwnedStack<CachingBackend>>();
                         auto inner = std::make_shared<RedisBackend>(redisOptionsFor({sharedRedis().address()}));
                         s->keepAlive.push_back(inner);
                         s->top = std::make_unique<CachingBackend>(*inner, 1 << 20);
                         return std::unique_ptr<BackendStack>(std::move(s));
                       }});
#endif
  return factories;
}

}  // namespace asyncstate::test
