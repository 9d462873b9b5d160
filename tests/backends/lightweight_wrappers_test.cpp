// Lightweight checkpoints through wrappers: Redis keeps them behind the cache, retry and
// latency wrappers (Redis behind the local cache is the disaggregated setup the story
// benchmark measures), the cache stays correct across a rollback, and restoring a
// lightweight checkpoint's savepoint as if it were a full one is refused instead of
// wiping the state.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/latency.hpp>
#include <asyncstate/backend/memory.hpp>
#include <asyncstate/backend/redis.hpp>
#include <asyncstate/backend/retry.hpp>
#include <asyncstate/lightweight_checkpoint.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace asyncstate::test {
namespace {

RedisOptions lightweightRedis() {
  RedisOptions options = redisOptionsFor({sharedRedis().address()});
  options.lightweightCheckpoints = true;
  return options;
}

std::string valueOf(StateBackend& backend, std::uint32_t state, const std::string& key) {
  return shown(run(backend, {get(state, key)}).at(0));
}

TEST(LightweightCheckpointWrappers, WrappersForwardLightweightCheckpoints) {
  RedisBackend redis(lightweightRedis());
  CachingBackend cached(redis, 1 << 20);
  RetryingBackend retrying(cached);
  LatencyOptions zero;
  zero.latency = std::chrono::microseconds(0);
  LatencyInjectingBackend delayed(retrying, zero);
  auto* lightweight = dynamic_cast<LightweightCheckpoints*>(&delayed);
  ASSERT_NE(lightweight, nullptr);
  EXPECT_TRUE(lightweight->lightweightCheckpointsEnabled());

  const std::uint32_t state = delayed.registerState("v", StateKind::Value);
  run(delayed, {put(state, "k", "before")});
  const std::uint64_t id = lightweight->commitCheckpoint({{"position", "7"}});
  EXPECT_EQ(redis.lastCheckpoint().id, id);
  EXPECT_EQ(lightweight->lastCheckpoint().metadata.at("position"), "7");
  run(delayed, {put(state, "k", "after")});
  lightweight->rollBackTo(id);
  EXPECT_EQ(valueOf(redis, state, "k"), valueOf(delayed, state, "k"));
}

TEST(LightweightCheckpointWrappers, AWrapperOfABackendWithoutThemHasNone) {
  MemoryBackend memory;
  CachingBackend cached(memory, 1 << 20);
  EXPECT_FALSE(cached.lightweightCheckpointsEnabled());
  EXPECT_THROW(cached.commitCheckpoint({}), std::logic_error);
  EXPECT_THROW(cached.rollBackTo(0), std::logic_error);
}

TEST(LightweightCheckpointWrappers, TheCacheForgetsWhatARollbackUndid) {
  RedisBackend redis(lightweightRedis());
  CachingBackend cached(redis, 1 << 20);
  const std::uint32_t state = cached.registerState("v", StateKind::Value);
  run(cached, {put(state, "k", "checkpointed")});
  const std::uint64_t id = cached.commitCheckpoint({});
  run(cached, {put(state, "k", "uncommitted"), put(state, "new", "uncommitted")});
  EXPECT_EQ(valueOf(cached, state, "k"), "uncommitted");  // now cached

  cached.rollBackTo(id);
  EXPECT_EQ(valueOf(cached, state, "k"), "checkpointed");
  EXPECT_EQ(valueOf(cached, state, "new"), "<absent>");
  EXPECT_EQ(cached.cacheStats().entries, 2u);  // filled again from Redis by the two Gets
}

TEST(LightweightCheckpointWrappers, RedisRefusesToRestoreALightweightCheckpointAsState) {
  RedisBackend redis(lightweightRedis());
  const std::uint32_t state = redis.registerState("v", StateKind::Value);
  run(redis, {put(state, "k", "kept")});
  const std::uint64_t id = redis.commitCheckpoint({});
  Savepoint positionOnly;
  positionOnly.metadata()[kLightweightCheckpointField] = std::to_string(id);
  positionOnly.metadata()["source.position"] = "0";
  try {
    redis.restore(positionOnly);
    FAIL() << "restore() accepted a savepoint without state";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no state"), std::string::npos) << e.what();
  }
  EXPECT_EQ(valueOf(redis, state, "k"), "kept");
  EXPECT_EQ(redis.lastCheckpoint().id, id);
}

}  // namespace
}  // namespace asyncstate::test
