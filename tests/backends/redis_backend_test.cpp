// Redis-specific behaviour: key layout, idempotent retries over real network faults,
// clear errors, and Redis Cluster routing (three local nodes, resharded live).

#include "backend_factories.hpp"
#include "backend_test_util.hpp"
#include "tcp_proxy.hpp"

#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/memory.hpp>
#include <asyncstate/backend/redis.hpp>

#include <gtest/gtest.h>

#include <thread>

namespace asyncstate::test {
namespace {

using namespace std::chrono_literals;

TEST(Redis, KeysAreNamespacedByJobStateAndKeyGroup) {
  RedisOptions options = redisOptionsFor({sharedRedis().address()});
  RedisBackend backend(options);
  const std::uint32_t v = backend.registerState("profile", StateKind::Value);
  const std::uint32_t m = backend.registerState("carts", StateKind::Map);
  run(backend, {put(v, "alice", "x"), putEntry(m, "alice", "sku", "1")});
  const std::string tag = "{" + options.job + ":" + std::to_string(keyGroupOf("alice")) + "}";
  EXPECT_EQ(sharedRedis().query({"GET", tag + ":7:profile:alice:v"}), "x");
  EXPECT_EQ(sharedRedis().query({"HGET", tag + ":5:carts:alice:h", "sku"}), "1");
  EXPECT_EQ(sharedRedis().query({"ZSCORE", tag + ":5:carts:alice:z", "sku"}), "0");
  EXPECT_EQ(detail::redisSlotOf(tag + ":7:profile:alice:v"), detail::redisSlotOf(tag + ":b:1"));
  // The batch marker of a write batch exists and expires.
  EXPECT_NE(sharedRedis().query({"EVAL", "return #redis.call('KEYS', ARGV[1])", "0", tag + ":b:*"}), "0");
}

TEST(Redis, ALostReplyIsRetriedWithoutApplyingTheBatchTwice) {
  TcpProxy proxy(sharedRedis().port());
  RedisBackend backend(redisOptionsFor({proxy.address()}));
  const std::uint32_t list = backend.registerState("events", StateKind::List);
  run(backend, {append(list, "k", "a")});
  proxy.dropNextScriptReply();
  auto r = run(backend, {append(list, "k", "b"), get(list, "k"), append(list, "k", "c")});
  for (const Outcome& o : r) EXPECT_TRUE(o.ok) << o.error;
  EXPECT_EQ(proxy.droppedReplies(), 1);
  EXPECT_EQ(shown(r[1]), "ab") << "the replayed batch answers as of its first run";
  EXPECT_EQ(shown(run(backend, {get(list, "k")})[0]), "abc") << "APPEND applied exactly once";
  EXPECT_GE(backend.redisStats().retries, 1u);
}

TEST(Redis, DisconnectsAreRetriedWithBackoffUntilTheServerIsBack) {
  TcpProxy proxy(sharedRedis().port());
  RedisOptions options = redisOptionsFor({proxy.address()});
  options.maxAttempts = 20;
  RedisBackend backend(options);
  const std::uint32_t v = backend.registerState("v", StateKind::Value);
  run(backend, {put(v, "k", "1")});
  proxy.refuse(true);
  std::thread heal([&] {
    std::this_thread::sleep_for(400ms);
    proxy.refuse(false);
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = run(backend, {put(v, "k", "2"), get(v, "k")});
  heal.join();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 350ms);
  EXPECT_TRUE(r[0].ok) << r[0].error;
  EXPECT_EQ(shown(r[1]), "2");
  EXPECT_GT(backend.redisStats().retries, 0u);
}

TEST(Redis, UnreachableServerFailsWithAClearError) {
  TcpProxy proxy(sharedRedis().port());
  RedisOptions options = redisOptionsFor({proxy.address()});
  options.maxAttempts = 3;
  options.maxBackoff = 20ms;
  RedisBackend backend(options);
  const std::uint32_t v = backend.registerState("orders", StateKind::Value);
  proxy.refuse(true);
  auto o = run(backend, {get(v, "k9")})[0];
  ASSERT_FALSE(o.ok);
  EXPECT_NE(o.error.find(proxy.address()), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("get on state 'orders' for key 'k9'"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("gave up after 3 attempts"), std::string::npos) << o.error;

  RedisOptions nowhere = options;
  nowhere.seeds = {"127.0.0.1:1"};
  try {
    RedisBackend unreachable(nowhere);
    FAIL() << "constructing a backend without a reachable server must throw";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:1"), std::string::npos) << e.what();
  }
}

TEST(Redis, RejectsJobNamesThatWouldBreakTheHashTag) {
  RedisOptions options = redisOptionsFor({sharedRedis().address()});
  options.job = "a}b";
  EXPECT_THROW(RedisBackend{options}, std::invalid_argument);
}

TEST(Redis, DescriptionWarnsWithoutACacheAndNotWithOne) {
  RedisBackend backend(redisOptionsFor({sharedRedis().address()}));
  const std::string plain = backend.describeConfiguration();
  EXPECT_NE(plain.find("standalone (" + sharedRedis().address() + ")"), std::string::npos) << plain;
  EXPECT_NE(plain.find("\nWARNING:"), std::string::npos) << plain;
  CachingBackend cached(backend, 1 << 20);
  EXPECT_EQ(cached.describeConfiguration().find("WARNING"), std::string::npos) << cached.describeConfiguration();
  CachingBackend empty(backend, 0);
  EXPECT_NE(empty.describeConfiguration().find("\nWARNING: local state cache is 0 bytes"), std::string::npos);
}

class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new RedisCluster(3); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static RedisCluster* cluster_;
};
RedisCluster* RedisClusterTest::cluster_ = nullptr;

TEST_F(RedisClusterTest, SpreadsKeyGroupsOverAllNodesAndSurvivesResharding) {
  RedisBackend backend(redisOptionsFor(cluster_->seeds()));
  EXPECT_NE(backend.describeConfiguration().find("cluster of 3 masters"), std::string::npos)
      << backend.describeConfiguration();
  MemoryBackend reference;
  const std::uint32_t v = backend.registerState("v", StateKind::Value);
  const std::uint32_t l = backend.registerState("l", StateKind::List);
  const std::uint32_t m = backend.registerState("m", StateKind::Map);
  reference.registerState("v", StateKind::Value);
  reference.registerState("l", StateKind::List);
  reference.registerState("m", StateKind::Map);
  auto writeRound = [&](int round) {
    std::vector<StateRequest> batch;
    for (int i = 0; i < 400; ++i) {
      const std::string key = "user" + std::to_string(i);
      batch.push_back(put(v, key, std::to_string(round)));
      batch.push_back(append(l, key, std::to_string(round) + ";"));
      batch.push_back(putEntry(m, key, "r" + std::to_string(round), key));
    }
    run(reference, batch);
    for (const Outcome& o : run(backend, std::move(batch))) ASSERT_TRUE(o.ok) << o.error;
  };
  writeRound(1);
  for (std::size_t n = 0; n < cluster_->size(); ++n) {
    EXPECT_GT(std::stoi(cluster_->node(n).query({"DBSIZE"})), 50) << "node " << n << " holds a share of the key groups";
  }
  EXPECT_EQ(savepointBytes(backend), savepointBytes(reference));

  // Scale the data over the nodes differently while the backend holds a stale slot map.
  cluster_->reshard(0, 1, 2000);
  writeRound(2);
  EXPECT_GT(backend.redisStats().redirects, 0u) << "the stale slot map must have been corrected by MOVED";
  EXPECT_EQ(savepointBytes(backend), savepointBytes(reference));
  auto scanned = scanAll(backend, m, "user7", 1);
  ASSERT_EQ(scanned.size(), 2u);
  EXPECT_EQ(scanned[0].first, "r1");

  // A savepoint of the cluster restores into a standalone server and back.
  const std::string bytes = savepointBytes(backend);
  RedisBackend standalone(redisOptionsFor({sharedRedis().address()}));
  standalone.restore(Savepoint::parse(bytes));
  EXPECT_EQ(savepointBytes(standalone), bytes);
  backend.restore(Savepoint::parse(savepointBytes(standalone)));
  EXPECT_EQ(savepointBytes(backend), bytes);
}

}  // namespace
}  // namespace asyncstate::test
