// The backend configurations of backend_factories.hpp, compiled once per build.
#include "backend_factories.hpp"

#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/latency.hpp>
#include <asyncstate/backend/memory.hpp>
#include <asyncstate/backend/retry.hpp>

#if ASYNCSTATE_TEST_WITH_ROCKSDB
#include <asyncstate/backend/rocksdb.hpp>
#endif
#if ASYNCSTATE_TEST_WITH_REDIS
#include <asyncstate/backend/redis.hpp>
#endif

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace asyncstate::test {

#if ASYNCSTATE_TEST_WITH_REDIS
RedisServer& sharedRedis() {
  static RedisServer server;
  return server;
}

RedisOptions redisOptionsFor(const std::vector<std::string>& seeds) {
  RedisOptions options;
  options.seeds = seeds;
  options.job = uniqueJobName("t");
  return options;
}
#endif

std::vector<BackendFactory> backendFactories() {
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
