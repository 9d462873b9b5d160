// HotKeySketch finds the hot key in adversarial streams with bounded memory and no
// allocation in steady state; HotKeyPolicy names the key and the fix, rate-limited.
#include <asyncstate/asyncstate.hpp>
#include <asyncstate/hot_keys.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <new>
#include <random>
#include <sstream>
#include <string>

namespace {
std::atomic<std::size_t> allocations{0};
std::atomic<int> skuTexts{0};
}  // namespace

// A key whose text is counted: the controller should decode it only when reporting it.
struct Sku {
  int id = 0;
};
ASYNCSTATE_SERIALIZABLE(Sku, id);
std::string to_string(const Sku& sku) {
  ++skuTexts;
  return "sku-" + std::to_string(sku.id);
}

// Counts every allocation of this test binary, to prove the hot path allocates nothing.
// Not inlined, so that the compiler pairs new-expressions with these, not with malloc/free.
[[gnu::noinline]] void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace asyncstate {
namespace {

TEST(HotKeySketch, FindsOneHotKeyAmongManyDistinctKeys) {
  HotKeySketch sketch(16);
  constexpr int kRecords = 200000;
  int hot = 0;
  for (int i = 0; i < kRecords; ++i) {
    if (i % 10 == 0) {
      sketch.add("customer-42");
      ++hot;
    } else {
      sketch.add("customer-" + std::to_string(1000 + i));  // each cold key appears once
    }
  }
  const auto top = sketch.top(1);
  ASSERT_EQ(top.size(), 1U);
  EXPECT_EQ(top[0].key, "customer-42");
  EXPECT_GE(top[0].count, static_cast<std::uint64_t>(hot));
  EXPECT_LE(top[0].count - top[0].error, static_cast<std::uint64_t>(hot));
  EXPECT_EQ(sketch.top().size(), 16U) << "memory is bounded by the capacity, not by 180000 distinct keys";
  EXPECT_EQ(sketch.totalWeight(), static_cast<std::uint64_t>(kRecords));
}

TEST(HotKeySketch, KeepsEveryKeyAboveOneNthOfTheWeight) {
  HotKeySketch sketch(8);
  std::mt19937 random(7);
  std::map<std::string, std::uint64_t> exact;
  // Three heavy keys at ~15% each (> 1/8 of the weight), the rest spread over 5000 keys.
  for (int i = 0; i < 60000; ++i) {
    const int r = static_cast<int>(random() % 100);
    const std::string key = r < 15 ? "a" : r < 30 ? "b" : r < 45 ? "c" : "cold" + std::to_string(random() % 5000);
    sketch.add(key);
    ++exact[key];
  }
  const auto top = sketch.top(3);
  ASSERT_EQ(top.size(), 3U);
  std::map<std::string, bool> seen;
  for (const HotKey& k : top) seen[k.key] = true;
  EXPECT_TRUE(seen["a"] && seen["b"] && seen["c"]);
}

TEST(HotKeySketch, CountsBoundTheTrueWeightUnderReplacement) {
  // Few keys, fewer counters: replacements and index deletions happen all the time.
  HotKeySketch sketch(8);
  std::mt19937 random(11);
  std::map<std::string, std::uint64_t> exact;
  for (int i = 0; i < 50000; ++i) {
    const std::string key = "k" + std::to_string(random() % 40);
    const std::uint64_t weight = 1 + random() % 5;
    sketch.add(key, weight);
    exact[key] += weight;
  }
  for (const HotKey& k : sketch.top()) {
    EXPECT_GE(k.count, exact[k.key]) << k.key;
    EXPECT_LE(k.count - k.error, exact[k.key]) << k.key;
  }
}

TEST(HotKeySketch, IsExactWhileEveryKeyFits) {
  HotKeySketch sketch(64);
  std::map<std::string, std::uint64_t> exact;
  std::mt19937 random(3);
  for (int i = 0; i < 20000; ++i) {
    const std::string key = "key" + std::to_string(random() % 64);
    sketch.add(key, 2);
    exact[key] += 2;
  }
  const auto top = sketch.top();
  ASSERT_EQ(top.size(), exact.size());
  for (const HotKey& k : top) {
    EXPECT_EQ(k.count, exact[k.key]) << k.key;
    EXPECT_EQ(k.error, 0U);
  }
}

TEST(HotKeySketch, AllocatesNothingAfterConstruction) {
  const std::string longKey(100, 'x');
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back(std::to_string(i) + longKey);  // all cut to 32 bytes
  HotKeySketch sketch(16, 32);
  const std::size_t before = allocations.load();
  for (int round = 0; round < 50; ++round) {
    for (const std::string& key : keys) sketch.add(key);
    sketch.add("hot");
  }
  EXPECT_EQ(allocations.load() - before, 0U);
}

TEST(HotKeySketch, CutsLongKeysButKeepsThemApart) {
  HotKeySketch sketch(4, 8);
  sketch.add("0123456789-first", 3);
  sketch.add("0123456789-second", 1);
  const auto top = sketch.top();
  ASSERT_EQ(top.size(), 2U);
  EXPECT_EQ(top[0].key, "01234567...");
  EXPECT_EQ(top[0].count, 3U);
  EXPECT_EQ(top[1].count, 1U);
}

TEST(HotKeySketch, DecayHalvesTheCounts) {
  HotKeySketch sketch(4);
  sketch.add("a", 10);
  sketch.add("b", 3);
  sketch.decay();
  EXPECT_EQ(sketch.top()[0].count, 5U);
  EXPECT_EQ(sketch.top()[1].count, 1U);
  EXPECT_EQ(sketch.totalWeight(), 6U);
}

TEST(HotKeySketch, RejectsAZeroCapacity) { EXPECT_THROW(HotKeySketch(0), std::invalid_argument); }

TEST(HotKeyPolicy, WarnsNamingTheKeyAndTheFix) {
  std::ostringstream log;
  HotKeyPolicy policy({.maxWindowShare = 0.5, .minInFlight = 10, .repeatEvery = std::chrono::seconds(60)}, &log);
  const auto now = HotKeyPolicy::Clock::now();
  EXPECT_FALSE(policy.check("sku-1", 50, 100, now)) << "exactly the limit is not over it";
  EXPECT_FALSE(policy.check("sku-1", 5, 8, now)) << "a window below minInFlight is never hot";
  EXPECT_TRUE(policy.check("sku-1", 81, 100, now));
  const std::string text = log.str();
  EXPECT_NE(text.find("WARNING: hot key 'sku-1' holds 81 of 100 in-flight records (81%, limit 50%)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("Pre-aggregate"), std::string::npos);
  EXPECT_NE(text.find("salt the key"), std::string::npos);
  EXPECT_EQ(policy.warnings(), 1U);
}

TEST(HotKeyPolicy, RepeatsAWarningOnlyAfterTheInterval) {
  std::ostringstream log;
  HotKeyPolicy policy({.maxWindowShare = 0.5, .minInFlight = 1, .repeatEvery = std::chrono::seconds(60)}, &log);
  const auto start = HotKeyPolicy::Clock::time_point{} + std::chrono::hours(1);
  EXPECT_TRUE(policy.check("a", 9, 10, start));
  EXPECT_FALSE(policy.check("a", 9, 10, start + std::chrono::seconds(59)));
  EXPECT_TRUE(policy.check("b", 9, 10, start + std::chrono::seconds(59))) << "another key warns at once";
  EXPECT_TRUE(policy.check("a", 9, 10, start + std::chrono::seconds(120)));
  EXPECT_EQ(policy.warnings(), 3U);
}

TEST(HotKeyPolicy, RejectsAShareOutsideZeroToOne) {
  EXPECT_THROW(HotKeyPolicy({.maxWindowShare = 0}), std::invalid_argument);
  EXPECT_THROW(HotKeyPolicy({.maxWindowShare = 1.5}), std::invalid_argument);
}

TEST(HotKeyMonitor, TracksTheHottestShareAndWarns) {
  std::ostringstream log;
  HotKeyMonitor monitor({.maxWindowShare = 0.25, .minInFlight = 16}, &log);
  for (std::size_t i = 1; i <= 40; ++i) monitor.recordWaiting("cold" + std::to_string(i), 1, 100);
  EXPECT_EQ(log.str(), "");
  bool warned = false;
  for (std::size_t n = 2; n <= 30; ++n) warned = monitor.recordWaiting("hot", n, 100) || warned;
  EXPECT_TRUE(warned);
  EXPECT_EQ(monitor.hottestKey(), "hot");
  EXPECT_DOUBLE_EQ(monitor.hottestShare(), 0.30);
  EXPECT_EQ(monitor.waitingRecords().top(1)[0].key, "hot");
  monitor.recordUnblocked("hot", std::chrono::milliseconds(5), 0, 70);
  EXPECT_DOUBLE_EQ(monitor.hottestShare(), 0.0) << "the key drained";
  EXPECT_EQ(monitor.blockedMicros().top(1)[0].count, 5000U);
  EXPECT_NE(log.str().find("hot key 'hot'"), std::string::npos);
}

}  // namespace
}  // namespace asyncstate

namespace {

TEST(HotKeyMonitor, TheControllerDecodesAKeyOnlyWhenItIsReported) {
  asyncstate::MemoryBackend memory;
  asyncstate::ControllerOptions options;
  options.log = nullptr;
  options.bufferTimeout = std::chrono::hours(1);  // the first record stays in flight: the others wait behind it
  options.hotKeys.minInFlight = 1000;             // no warning either
  asyncstate::AsyncExecutionController controller(memory, options);
  asyncstate::ValueState<int> value(controller, asyncstate::ValueStateDescriptor<int>("v"));
  for (int i = 0; i < 50; ++i) controller.processRecord(Sku{7}, [&] { (void)value.asyncValue(); });
  EXPECT_EQ(controller.metrics().blockedRecords, 49U);
  EXPECT_EQ(skuTexts, 0) << "waiting records decode no key";
  EXPECT_EQ(controller.hotKeys().hottestKey(), "sku-7");
  EXPECT_EQ(controller.hotKeys().waitingRecords().top(1).at(0).key, "sku-7");
  EXPECT_EQ(skuTexts, 2) << "one decoding per report";
  controller.drain();
}

TEST(HotKeyMonitor, ACutKeyKeepsItsTextFromWhenItWasKept) {
  auto describe = [](std::string_view bytes) { return "text:" + std::string(bytes); };
  asyncstate::HotKeyMonitor monitor({}, nullptr, 4, 8);
  monitor.recordWaiting("a-very-long-key", describe, 3, 10, asyncstate::HotKeyMonitor::Clock::now());
  monitor.recordWaiting("a-very-long-key", describe, 4, 10, asyncstate::HotKeyMonitor::Clock::now());
  const auto top = monitor.waitingRecords().top();
  ASSERT_EQ(top.size(), 1U) << "a cut key is one key";
  EXPECT_EQ(top[0].key, "text:a-v...");
  EXPECT_EQ(top[0].count, 2U);
  EXPECT_EQ(monitor.hottestKey(), "text:a-v...");
}

}  // namespace
