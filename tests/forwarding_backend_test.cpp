// ForwardingBackend: a wrapper overrides only what it changes; everything else reaches
// the wrapped backend, and wrappers stack (latency over retrying over cached).

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/latency.hpp>

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace asyncstate {
namespace {

// Counts the batches and requests passing through; nothing else of its own.
class CountingBackend final : public ForwardingBackend {
 public:
  explicit CountingBackend(StateBackend& inner) : ForwardingBackend(inner, "counting") {}
  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    ++batches;
    requests += batch.size();
    forwardBatch(std::move(batch), sink);
  }
  std::size_t batches = 0;
  std::size_t requests = 0;
};

ControllerOptions quiet() {
  ControllerOptions o;
  o.log = nullptr;
  return o;
}

TEST(ForwardingBackendTest, AWrapperOverridingOneCallForwardsAllOthers) {
  MemoryBackend memory;
  CountingBackend counting(memory);
  EXPECT_EQ(counting.name(), "counting(memory)");
  EXPECT_EQ(counting.describeConfiguration(), memory.describeConfiguration());
  Savepoint checkpoint;
  {
    AsyncExecutionController controller(counting, quiet());
    ValueState<int> value(controller, ValueStateDescriptor<int>("value"));
    for (int i = 0; i < 10; ++i) {
      controller.processRecord(i % 3, [&] {
        (void)value.asyncValue().thenCompose(
            [&](std::optional<int> v) { return value.asyncUpdate(v.value_or(0) + 1); });
      });
    }
    controller.drain();
    counting.snapshot(checkpoint);
  }
  EXPECT_GT(counting.batches, 0u);
  EXPECT_EQ(counting.requests, 20u);

  // The snapshot went through to the memory backend: restoring it elsewhere gives the counts.
  MemoryBackend restored;
  CountingBackend again(restored);
  again.restore(checkpoint);
  AsyncExecutionController controller(again, quiet());
  ValueState<int> value(controller, ValueStateDescriptor<int>("value"));
  std::vector<int> counts;
  for (int key = 0; key < 3; ++key) controller.processRecord(key, [&] { counts.push_back(value.value().value_or(0)); });
  controller.drain();
  EXPECT_EQ(counts, (std::vector<int>{4, 3, 3}));
}

TEST(ForwardingBackendTest, TheLibrarysWrappersStackOnIt) {
  MemoryBackend memory;
  CachingBackend cached(memory, 1 << 20);
  RetryingBackend retrying(cached);
  CountingBackend counting(retrying);
  LatencyOptions latency;
  latency.latency = std::chrono::microseconds(50);
  LatencyInjectingBackend delayed(counting, latency);
  EXPECT_EQ(delayed.name(), "latency(counting(retrying(cached(memory))))");
  AsyncExecutionController controller(delayed, quiet());
  ListState<int> list(controller, ListStateDescriptor<int>("list"));
  for (int i = 0; i < 50; ++i) controller.processRecord(i % 5, [&list, i] { (void)list.asyncAdd(i); });
  controller.drain();
  std::vector<std::vector<int>> lists;
  for (int key = 0; key < 5; ++key) controller.processRecord(key, [&] { lists.push_back(list.get()); });
  controller.drain();
  for (int key = 0; key < 5; ++key) {
    std::vector<int> expected;
    for (int i = key; i < 50; i += 5) expected.push_back(i);
    EXPECT_EQ(lists[static_cast<std::size_t>(key)], expected) << "key " << key;
  }
  EXPECT_EQ(counting.requests, 55u);
}

}  // namespace
}  // namespace asyncstate
