// The future pool: no heap allocation per future in steady state (counted at the global
// operator new, so nothing the library does can hide from it), statistics that match
// a scripted sequence, and a controller destroyed while futures are still alive.

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// --- counting global allocation functions ---------------------------------------------
// Every form goes through malloc/free, which ASan intercepts, so the replacement keeps
// ASan's checks and counts every heap allocation made through operator new.

namespace {

std::atomic<std::uint64_t> gNews{0};
std::atomic<std::uint64_t> gDeletes{0};

void* countedAllocate(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  gNews.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void* countedAllocateAligned(std::size_t size, std::align_val_t align) {
  const auto a = static_cast<std::size_t>(align);
  void* p = std::aligned_alloc(a, (size + a - 1) / a * a);
  if (p == nullptr) throw std::bad_alloc();
  gNews.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void countedRelease(void* p) noexcept {
  if (p == nullptr) return;
  gDeletes.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}

}  // namespace

void* operator new(std::size_t size) { return countedAllocate(size); }
void* operator new[](std::size_t size) { return countedAllocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return countedAllocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return countedAllocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t align) { return countedAllocateAligned(size, align); }
void* operator new[](std::size_t size, std::align_val_t align) { return countedAllocateAligned(size, align); }
void operator delete(void* p) noexcept { countedRelease(p); }
void operator delete[](void* p) noexcept { countedRelease(p); }
void operator delete(void* p, std::size_t) noexcept { countedRelease(p); }
void operator delete[](void* p, std::size_t) noexcept { countedRelease(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { countedRelease(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { countedRelease(p); }
void operator delete(void* p, std::align_val_t) noexcept { countedRelease(p); }
void operator delete[](void* p, std::align_val_t) noexcept { countedRelease(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { countedRelease(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { countedRelease(p); }

using namespace asyncstate;

namespace {

std::uint64_t heapAllocations() { return gNews.load(std::memory_order_relaxed); }
std::int64_t liveHeapAllocations() {
  return static_cast<std::int64_t>(gNews.load(std::memory_order_relaxed)) -
         static_cast<std::int64_t>(gDeletes.load(std::memory_order_relaxed));
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

ControllerOptions quietOptions(AllocationPolicy policy) {
  ControllerOptions o;
  o.log = nullptr;
  o.allocationPolicy = policy;
  return o;
}

// --- steady state: 100,000 pending futures, one continuation each ---------------------

constexpr std::size_t kFutures = 100'000;

// All futures are pending at once (the worst case for a pool: it must hold them all),
// then completed, which runs every continuation, then dropped.
class Workload {
 public:
  Workload() {
    promises_.reserve(kFutures);
    results_.reserve(kFutures);
  }

  void run(AsyncExecutionController& controller) {
    sum_ = 0;
    notDone_ = 0;
    controller.runOnTaskThread([&] {
      for (std::size_t i = 0; i < kFutures; ++i) {
        promises_.push_back(controller.newPromise<int>());
        results_.push_back(promises_.back().future().thenApply([this](int v) {
          sum_ += v;
          return v + 1;
        }));
      }
      for (std::size_t i = 0; i < kFutures; ++i) promises_[i].setValue(static_cast<int>(i));
      for (StateFuture<int>& result : results_) notDone_ += result.isDone() ? 0 : 1;
      results_.clear();
      promises_.clear();
    });
  }

  std::int64_t sum() const { return sum_; }
  std::size_t notDone() const { return notDone_; }

 private:
  std::vector<StatePromise<int>> promises_;
  std::vector<StateFuture<int>> results_;
  std::int64_t sum_ = 0;
  std::size_t notDone_ = 0;
};

constexpr std::int64_t kExpectedSum = static_cast<std::int64_t>(kFutures) * (kFutures - 1) / 2;

TEST(PoolSteadyState, PooledFuturesMakeNoHeapAllocationAfterWarmUp) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quietOptions(AllocationPolicy::Pooled));
  Workload workload;
  workload.run(controller);  // warm-up: the pool grows its slabs to the peak once
  ASSERT_EQ(workload.sum(), kExpectedSum);
  const PoolStats warm = controller.poolStats();

  const std::uint64_t before = heapAllocations();
  workload.run(controller);
  const std::uint64_t during = heapAllocations() - before;

  EXPECT_EQ(during, 0u) << "heap allocations while running " << kFutures << " pooled futures";
  EXPECT_EQ(workload.sum(), kExpectedSum);
  EXPECT_EQ(workload.notDone(), 0u);
  const PoolStats& now = controller.poolStats();
  EXPECT_EQ(now.live, 0u);
  EXPECT_EQ(now.heapFallbacks, 0u);
  EXPECT_EQ(now.slabBytes, warm.slabBytes);
  // One core per future: the continuation's result lives in its source's block.
  EXPECT_EQ(now.allocations - warm.allocations, kFutures);
  EXPECT_EQ(now.reused - warm.reused, now.allocations - warm.allocations);
  EXPECT_EQ(now.peak, kFutures);
}

// The baseline the pool is measured against must show up in the same count, or the
// zero above proves nothing.
TEST(PoolSteadyState, HeapPolicyAllocatesPerFuture) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quietOptions(AllocationPolicy::Heap));
  Workload workload;
  workload.run(controller);
  const PoolStats warm = controller.poolStats();

  const std::uint64_t before = heapAllocations();
  workload.run(controller);
  const std::uint64_t during = heapAllocations() - before;

  EXPECT_GE(during, kFutures);
  EXPECT_EQ(workload.sum(), kExpectedSum);
  const PoolStats& now = controller.poolStats();
  EXPECT_EQ(now.live, 0u);
  EXPECT_EQ(now.heapFallbacks - warm.heapFallbacks, now.allocations - warm.allocations);
  EXPECT_EQ(now.reused, 0u);
  EXPECT_EQ(now.slabBytes, 0u);
}

// --- statistics ---------------------------------------------------------------------------

void expectStats(const PoolStats& s, std::size_t live, std::size_t peak, std::size_t allocations, std::size_t reused,
                 std::size_t heapFallbacks) {
  EXPECT_EQ(s.live, live);
  EXPECT_EQ(s.peak, peak);
  EXPECT_EQ(s.allocations, allocations);
  EXPECT_EQ(s.reused, reused);
  EXPECT_EQ(s.heapFallbacks, heapFallbacks);
}

TEST(PoolStatistics, FuturePoolScript) {
  FuturePool pool;
  expectStats(pool.stats(), 0, 0, 0, 0, 0);
  void* a = pool.allocate(40);
  void* b = pool.allocate(64);               // same size class as a
  expectStats(pool.stats(), 2, 2, 2, 0, 0);  // fresh blocks from a new slab are not "reused"
  EXPECT_EQ(pool.stats().slabBytes, FuturePool::kMinBlock * FuturePool::kBlocksPerSlab);
  EXPECT_NE(a, b);

  pool.deallocate(a, 40);
  expectStats(pool.stats(), 1, 2, 2, 0, 0);
  void* c = pool.allocate(50);
  EXPECT_EQ(c, a);  // the block just returned
  expectStats(pool.stats(), 2, 2, 3, 1, 0);

  void* d = pool.allocate(65);  // next size class: a slab of its own
  EXPECT_EQ(pool.stats().slabBytes, 3 * FuturePool::kMinBlock * FuturePool::kBlocksPerSlab);
  void* big = pool.allocate(FuturePool::kMaxBlock + 1);
  expectStats(pool.stats(), 4, 4, 5, 1, 1);

  pool.deallocate(big, FuturePool::kMaxBlock + 1);
  pool.deallocate(d, 65);
  pool.deallocate(b, 64);
  pool.deallocate(c, 50);
  expectStats(pool.stats(), 0, 4, 5, 1, 1);
}

TEST(PoolStatistics, FuturePoolBlocksAreDistinctAlignedAndRecycled) {
  FuturePool pool;
  constexpr std::size_t kCount = FuturePool::kBlocksPerSlab * 2 + 1;  // spills into a third slab
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < kCount; ++i) {
    blocks.push_back(pool.allocate(100));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(blocks.back()) % alignof(std::max_align_t), 0u);
    std::memset(blocks.back(), static_cast<int>(i), 100);  // ASan: the whole block is usable
  }
  std::vector<void*> sorted = blocks;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  EXPECT_EQ(pool.stats().slabBytes, 3 * 128 * FuturePool::kBlocksPerSlab);
  EXPECT_EQ(pool.stats().reused, 0u);

  for (void* p : blocks) pool.deallocate(p, 100);
  const std::uint64_t before = heapAllocations();
  for (std::size_t i = 0; i < kCount; ++i) blocks[i] = pool.allocate(128);
  EXPECT_EQ(heapAllocations() - before, 0u);
  EXPECT_EQ(pool.stats().reused, kCount);
  EXPECT_EQ(pool.stats().slabBytes, 3 * 128 * FuturePool::kBlocksPerSlab);
  for (void* p : blocks) pool.deallocate(p, 128);
  EXPECT_EQ(pool.stats().live, 0u);
}

TEST(PoolStatistics, HeapPolicyPool) {
  FuturePool pool(AllocationPolicy::Heap);
  void* a = pool.allocate(64);
  pool.deallocate(a, 64);
  void* b = pool.allocate(64);
  expectStats(pool.stats(), 1, 1, 2, 0, 2);
  EXPECT_EQ(pool.stats().slabBytes, 0u);
  pool.deallocate(b, 64);
  EXPECT_EQ(pool.stats().live, 0u);
}

// The same accounting seen through a controller: every pending future is one block.
TEST(PoolStatistics, ControllerScript) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quietOptions(AllocationPolicy::Pooled));
  auto s = [&] { return controller.poolStats(); };
  expectStats(s(), 0, 0, 0, 0, 0);
  controller.runOnTaskThread([&] {
    std::optional<StatePromise<int>> a(controller.newPromise<int>());
    StatePromise<int> b = controller.newPromise<int>();
    expectStats(s(), 2, 2, 2, 0, 0);
    const std::size_t slabBytes = s().slabBytes;
    EXPECT_GT(slabBytes, 0u);

    std::optional<StateFuture<int>> result(a->future().thenApply([](int v) { return v + 1; }));
    expectStats(s(), 2, 2, 2, 0, 0);  // the continuation's result will live in a's block
    a->setValue(1);
    a.reset();
    expectStats(s(), 2, 2, 2, 0, 0);  // the producer is done; the block now holds the result
    result.reset();
    expectStats(s(), 1, 2, 2, 0, 0);

    StatePromise<int> c = controller.newPromise<int>();
    StatePromise<int> d = controller.newPromise<int>();
    expectStats(s(), 3, 3, 4, 1, 0);  // the block returned above is recycled
    StatePromise<int> e = controller.newPromise<int>();
    expectStats(s(), 4, 4, 5, 1, 0);

    // Too large for any size class: a heap fallback, still counted as live.
    auto big = controller.newPromise<std::array<std::byte, FuturePool::kMaxBlock>>();
    expectStats(s(), 5, 5, 6, 1, 1);
    EXPECT_EQ(s().slabBytes, slabBytes);

    big.setValue(std::array<std::byte, FuturePool::kMaxBlock>{});
    for (StatePromise<int>* p : {&b, &c, &d, &e}) p->setValue(0);
  });
  expectStats(s(), 0, 5, 6, 1, 1);
}

TEST(PoolStatistics, LargeContinuationsComeFromThePoolTooLargeOnesFromTheHeap) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quietOptions(AllocationPolicy::Pooled));
  auto s = [&] { return controller.poolStats(); };
  controller.runOnTaskThread([&] {
    StatePromise<int> promise = controller.newPromise<int>();
    const std::size_t base = s().allocations;
    std::array<char, 200> medium{};
    medium[0] = 1;
    StateFuture<int> mediumResult = promise.future().thenApply([medium](int v) { return v + medium[0]; });
    // The continuation, which no longer fits inline (its result uses the source's block).
    EXPECT_EQ(s().allocations - base, 1u);
    EXPECT_EQ(s().heapFallbacks, 0u);

    StatePromise<int> other = controller.newPromise<int>();
    std::array<char, FuturePool::kMaxBlock + 8> huge{};
    huge[0] = 2;
    StateFuture<int> hugeResult = other.future().thenApply([huge](int v) { return v + huge[0]; });
    EXPECT_EQ(s().heapFallbacks, 1u);

    promise.setValue(1);
    other.setValue(1);
    EXPECT_TRUE(mediumResult.isDone());
    EXPECT_TRUE(hugeResult.isDone());
  });
  EXPECT_EQ(s().live, 0u);
}

// --- a controller destroyed while futures are alive ----------------------------------------

// The library keeps an orphaned runtime alive on purpose; a pointer to it from a global
// keeps LeakSanitizer from flagging that deliberate state in this test (see the next test
// for whether it is ever given back).
void* volatile gOrphanedRuntime = nullptr;

TEST(PoolShutdown, DestroyingAControllerWithLiveFuturesIsReportedAndTheyStaySafe) {
  std::ostringstream log;
  MemoryBackend backend;
  std::optional<StatePromise<int>> completesLater;
  std::optional<StatePromise<int>> failsLater;
  std::optional<StateFuture<int>> result;
  int seen = 0;
  {
    ControllerOptions o = quietOptions(AllocationPolicy::Pooled);
    o.log = &log;
    AsyncExecutionController controller(backend, o);
    controller.runOnTaskThread([&] {
      gOrphanedRuntime = &detail::currentRuntime();
      completesLater.emplace(controller.newPromise<int>());
      result.emplace(completesLater->future().thenApply([&](int v) {
        seen = v;
        return v * 2;
      }));
      failsLater.emplace(controller.newPromise<int>());
    });
    EXPECT_EQ(controller.poolStats().live, 2u);
  }
  EXPECT_TRUE(contains(log.str(), "controller destroyed with 2 live futures"));

  completesLater->setValue(21);
  EXPECT_EQ(seen, 21);
  ASSERT_TRUE(result->isDone());
  EXPECT_FALSE(result->isFailed());
  result.reset();
  completesLater.reset();

  // A failure after the controller is gone is still printed, not dropped.
  std::ostringstream err;
  std::streambuf* saved = std::cerr.rdbuf(err.rdbuf());
  failsLater->setError(AsyncError(std::make_exception_ptr(std::runtime_error("late disk error")), "s", "k", "get"));
  failsLater.reset();
  std::cerr.rdbuf(saved);
  EXPECT_TRUE(contains(err.str(), "failure after its controller was destroyed"));
  EXPECT_TRUE(contains(err.str(), "late disk error"));
}

// A pooled controller, destroyed after `use` made `promise` on it (and left it pending);
// returns what the controller logged.
template <class Use>
std::string destroyedAfter(MemoryBackend& backend, std::optional<StatePromise<int>>& promise, Use use) {
  std::ostringstream log;
  ControllerOptions o = quietOptions(AllocationPolicy::Pooled);
  o.log = &log;
  {
    AsyncExecutionController controller(backend, o);
    use(controller, promise);
  }
  return log.str();
}

// Once the last of those futures is gone nothing needs the runtime any more; keeping it
// forever leaks its slabs for every controller torn down early (a job restarted after a
// failure does that each time).
TEST(PoolShutdown, OrphanedRuntimeIsGivenBackOnceItsLastFutureIsGone) {
  MemoryBackend backend;
  bool reported = false;
  const std::int64_t before = liveHeapAllocations();
  {
    std::optional<StatePromise<int>> promise;
    const std::string log = destroyedAfter(backend, promise, [](AsyncExecutionController& controller, auto& made) {
      controller.runOnTaskThread([&] { made.emplace(controller.newPromise<int>()); });
    });
    reported = log.find("controller destroyed with 1 live futures") != std::string::npos;
    promise->setValue(1);
  }
  const std::int64_t leaked = liveHeapAllocations() - before;
  EXPECT_TRUE(reported);
  EXPECT_EQ(leaked, 0) << "heap blocks still held after every future is gone";
}

// The same with a record still waiting on such a future: it finishes after the
// controller is gone, and its own block (and with it the pool) used to be kept forever.
TEST(PoolShutdown, ARecordFinishingAfterItsControllerWasDestroyedGivesItsBlockBack) {
  MemoryBackend backend;
  int seen = 0;
  const std::int64_t before = liveHeapAllocations();
  {
    std::optional<StatePromise<int>> promise;
    (void)destroyedAfter(backend, promise, [&seen](AsyncExecutionController& controller, auto& made) {
      controller.processRecord(1, [&] {
        made.emplace(controller.newPromise<int>());
        made->future().thenAccept([&seen](int v) { seen = v; });
      });
    });
    promise->setValue(42);
  }
  EXPECT_EQ(seen, 42);
  EXPECT_EQ(liveHeapAllocations() - before, 0) << "heap blocks still held after the record finished";
}

}  // namespace
