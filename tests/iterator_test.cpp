// Iterating a large MapState: every chunk is walked in a loop, so the stack depth does
// not grow with the number of chunks (each test runs on a thread with a small stack,
// where one nested future per chunk overflows), and errors end the walk cleanly.

#include "support/controller_fixture.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace asyncstate {
namespace {

constexpr int kEntries = 100000;
constexpr std::uint32_t kChunk = 2;  // 50 000 chunks: far deeper than the small stack allows nesting for

// Runs fn on a thread whose stack is `bytes` large and rethrows what it threw.
void onSmallStack(std::size_t bytes, const std::function<void()>& fn) {
  struct Job {
    const std::function<void()>* fn;
    std::exception_ptr error;
  } job{&fn, nullptr};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, bytes), 0);
  pthread_t thread;
  const int created = pthread_create(
      &thread, &attr,
      [](void* raw) -> void* {
        auto* j = static_cast<Job*>(raw);
        try {
          (*j->fn)();
        } catch (...) {
          j->error = std::current_exception();
        }
        return nullptr;
      },
      &job);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(created, 0);
  pthread_join(thread, nullptr);
  if (job.error) std::rethrow_exception(job.error);
}

// A controller with one map of kEntries entries under key 1, iterated in chunks of kChunk.
class BigMap {
 public:
  BigMap() : controller_(backend_, options()), map_(controller_, MapStateDescriptor<int, std::int64_t>("big")) {
    for (int from = 0; from < kEntries; from += 1000) {
      controller_.processRecord(1, [this, from] {
        for (int i = from; i < from + 1000 && i < kEntries; ++i) (void)map_.asyncPut(i, 3 * std::int64_t{i});
      });
    }
    controller_.drain();
  }
  AsyncExecutionController& controller() { return controller_; }
  MapState<int, std::int64_t>& map() { return map_; }

 private:
  static ControllerOptions options() {
    ControllerOptions o;
    o.log = nullptr;
    o.iteratorChunkSize = kChunk;
    return o;
  }
  MemoryBackend backend_;
  AsyncExecutionController controller_;
  MapState<int, std::int64_t> map_;
};

constexpr std::size_t kSmallStack = 1 << 20;
constexpr std::int64_t kSum = 3 * std::int64_t{kEntries} * (kEntries - 1) / 2;

TEST(IteratorTest, ToVectorOverManyChunksRunsInConstantStack) {
  onSmallStack(kSmallStack, [] {
    BigMap m;
    std::vector<std::pair<int, std::int64_t>> all;
    m.controller().processRecord(1, [&] {
      (void)toVector(m.map().asyncEntries()).thenAccept([&](std::vector<std::pair<int, std::int64_t>> v) {
        all = std::move(v);
      });
    });
    m.controller().drain();
    ASSERT_EQ(all.size(), static_cast<std::size_t>(kEntries));
    std::sort(all.begin(), all.end());  // iteration order is the order of the encoded keys
    for (int i = 0; i < kEntries; ++i) {
      ASSERT_EQ(all[static_cast<std::size_t>(i)].first, i);
      ASSERT_EQ(all[static_cast<std::size_t>(i)].second, 3 * std::int64_t{i});
    }
  });
}

TEST(IteratorTest, AChunkSizeOfZeroIteratesOneEntryPerChunk) {
  MemoryBackend backend;
  ControllerOptions o;
  o.log = nullptr;
  o.iteratorChunkSize = 0;
  AsyncExecutionController controller(backend, o);
  MapState<int, int> map(controller, MapStateDescriptor<int, int>("small"));
  std::vector<std::pair<int, int>> all;
  controller.processRecord(1, [&] {
    for (int i = 0; i < 3; ++i) map.asyncPut(i, 10 * i);
    toVector(map.asyncEntries()).thenAccept([&](std::vector<std::pair<int, int>> v) { all = std::move(v); });
  });
  controller.drain();  // a failed scan would fail the task here
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::pair<int, int>>{{0, 0}, {1, 10}, {2, 20}}));
}

TEST(IteratorTest, OnNextWithAFutureFunctionOverManyChunksRunsInConstantStack) {
  onSmallStack(kSmallStack, [] {
    BigMap m;
    ValueState<std::int64_t> offset(m.controller(), ValueStateDescriptor<std::int64_t>("offset"));
    std::vector<std::int64_t> shifted;
    m.controller().processRecord(1, [&] { (void)offset.asyncUpdate(1); });
    m.controller().processRecord(1, [&] {
      (void)m.map()
          .asyncValues()
          .thenCompose([&](StateIterator<std::int64_t> it) {
            // Some elements wait for a state read, the others are complete at once.
            return std::move(it).onNext([&](std::int64_t& v) {
              if (v % 8 != 0) return completedFuture(v + 1);
              return offset.asyncValue().thenApply([v](std::optional<std::int64_t> o) { return v + o.value_or(0); });
            });
          })
          .thenAccept([&](std::vector<std::int64_t> v) { shifted = std::move(v); });
    });
    m.controller().drain();
    ASSERT_EQ(shifted.size(), static_cast<std::size_t>(kEntries));
    std::sort(shifted.begin(), shifted.end());
    for (int i = 0; i < kEntries; ++i) ASSERT_EQ(shifted[static_cast<std::size_t>(i)], 3 * std::int64_t{i} + 1);
  });
}

TEST(IteratorTest, OnNextWithAVoidFunctionOverManyChunksRunsInConstantStack) {
  onSmallStack(kSmallStack, [] {
    BigMap m;
    std::int64_t sum = 0;
    int visited = 0;
    bool done = false;
    m.controller().processRecord(1, [&] {
      (void)m.map()
          .asyncKeys()
          .thenCompose([&](StateIterator<int> it) {
            return std::move(it).onNext([&](int& k) {
              sum += 3 * std::int64_t{k};
              ++visited;
            });
          })
          .thenAccept([&] { done = true; });
    });
    m.controller().drain();
    EXPECT_TRUE(done);
    EXPECT_EQ(visited, kEntries);
    EXPECT_EQ(sum, kSum);
  });
}

class IteratorErrorTest : public testing::ControllerFixture {};

TEST_F(IteratorErrorTest, AThrowingFunctionFailsTheResultAndStopsLoading) {
  ControllerOptions o = options();
  o.iteratorChunkSize = 3;
  AsyncExecutionController controller(backend_, o);
  MapState<int, int> map(controller, MapStateDescriptor<int, int>("m"));
  controller.processRecord(1, [&] {
    for (int i = 0; i < 20; ++i) (void)map.asyncPut(i, i);
  });
  controller.drain();
  int visited = 0;
  std::string error;
  const std::uint64_t before = controller.metrics().requestsSent;
  controller.processRecord(1, [&] {
    (void)map.asyncKeys()
        .thenCompose([&](StateIterator<int> it) {
          return std::move(it).onNext([&](int& k) {
            ++visited;
            if (k == 7) throw std::runtime_error("bad element");
          });
        })
        .exceptionally([&](const AsyncError& e) { error = e.message(); });
  });
  controller.drain();
  EXPECT_EQ(visited, 8);  // 0..7: the chunk holding 7 is finished by nobody after the throw
  EXPECT_NE(error.find("bad element"), std::string::npos) << error;
  EXPECT_EQ(controller.metrics().requestsSent - before, 3u);  // chunks 0-2, 3-5, 6-8; none after
}

TEST_F(IteratorErrorTest, AFailedElementFutureFailsTheResultOnceAndLaterOnesReachTheHandler) {
  ControllerOptions o = options();
  o.iteratorChunkSize = 4;
  AsyncExecutionController controller(backend_, o);
  MapState<int, int> map(controller, MapStateDescriptor<int, int>("m"));
  controller.processRecord(1, [&] {
    for (int i = 0; i < 4; ++i) (void)map.asyncPut(i, i);
  });
  controller.drain();
  int failures = 0;
  controller.processRecord(1, [&] {
    (void)map.asyncKeys()
        .thenCompose([&](StateIterator<int> it) {
          return std::move(it).onNext([](int& k) {
            if (k >= 2) return failedFuture<int>(std::runtime_error("element " + std::to_string(k)));
            return completedFuture(k);
          });
        })
        .exceptionally([&](const AsyncError&) {
          ++failures;
          return std::vector<int>{};
        });
  });
  controller.drain();
  EXPECT_EQ(failures, 1);
  EXPECT_EQ(takeUnhandled().size(), 1u);
}

}  // namespace
}  // namespace asyncstate
