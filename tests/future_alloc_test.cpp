// combineAll and failure propagation take nothing from the heap: their state lives in
// the controller's pool. Counted with the benchmarks' replacement operator new, so
// this binary is built only without sanitizers (they replace operator new too).

#include "support/controller_fixture.hpp"

#include "alloc_counter.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

using namespace asyncstate;

namespace {

class FutureAllocationTest : public asyncstate::testing::ControllerFixture {};

TEST_F(FutureAllocationTest, CombineAllAllocatesOnlyItsResultVector) {
  onTask([&] {
    for (int round = 0; round < 2; ++round) {  // the first round warms the pool up
      std::vector<StatePromise<int>> promises;
      std::vector<StateFuture<int>> futures;
      promises.reserve(64);
      futures.reserve(64);
      for (int i = 0; i < 64; ++i) {
        promises.push_back(controller_.newPromise<int>());
        futures.push_back(promises.back().future());
      }
      bench::alloc::Probe probe;
      StateFuture<std::vector<int>> all = combineAll(std::move(futures));
      for (int i = 0; i < 64; ++i) promises[static_cast<std::size_t>(i)].setValue(i);
      EXPECT_TRUE(all.isDone());
      const std::uint64_t allocations = probe.allocations();
      if (round == 1) {
        EXPECT_EQ(allocations, 1u);  // the std::vector<int> of the result, nothing else
      }
      std::move(all).thenAccept([](std::vector<int> values) { EXPECT_EQ(values.size(), 64u); });
    }
  });
}

// A failure travels down a chain (and through combineAll) without being copied or
// boxed again: as many allocations for a long chain as for a short one, and in steady
// state none, its box included.
TEST_F(FutureAllocationTest, FailurePropagationAllocatesNothingPerStage) {
  auto allocationsFor = [&](int stages) {
    std::uint64_t counted = 0;
    onTask([&] {
      StatePromise<int> source = controller_.newPromise<int>();
      StatePromise<int> other = controller_.newPromise<int>();
      StateFuture<int> chain = source.future();
      for (int i = 0; i < stages; ++i) chain = std::move(chain).thenApply([](int v) { return v + 1; });
      chain = std::move(chain).thenCompose([](int v) { return completedFuture(v); });
      StateFuture<int> recovered = combineAll(std::move(chain), other.future())
                                       .thenApply([](std::tuple<int, int> values) { return std::get<0>(values); })
                                       .exceptionally([](const AsyncError&) { return -1; });
      other.setValue(1);
      AsyncError error(std::make_exception_ptr(std::runtime_error("backend down")), "s", "k", "get");
      bench::alloc::Probe probe;
      source.setError(std::move(error));
      counted = probe.allocations();
      std::move(recovered).thenAccept([](int v) { EXPECT_EQ(v, -1); });
    });
    return counted;
  };
  allocationsFor(1);  // warm-up
  const std::uint64_t shortChain = allocationsFor(1);
  const std::uint64_t longChain = allocationsFor(12);
  EXPECT_EQ(shortChain, longChain);
  EXPECT_EQ(shortChain, 0u);  // the box of the failure where it is raised is a returned one
}

}  // namespace
