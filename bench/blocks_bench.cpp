// The allocator alone: the pool a controller gives its futures, under either policy,
// with no future around it. Beside the futures' in-flight case it separates what
// pooling saves from what a future costs under both policies.

#include "common.hpp"
#include "measure.hpp"

#include <asyncstate/pool.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace {

template <asyncstate::AllocationPolicy Policy>
struct Blocks : bench::Plain {
  Blocks() { held.reserve(bench::kMaxInFlight); }
  asyncstate::FuturePool pool{Policy};
  std::vector<std::pair<void*, std::uint8_t>> held;  // a block and the class to return it with
};

// K blocks of a future's size, taken and given back in the order the in-flight case's
// futures take and give back theirs, with one store and one load each where a future
// writes and reads its header. kShuffled: given back in bench::completionOrder.
template <asyncstate::AllocationPolicy Policy, bool kShuffled = false>
void blocksHeld(benchmark::State& state) {
  const auto k = state.range(0);
  const std::vector<std::uint32_t> order = kShuffled ? bench::completionOrder(k) : std::vector<std::uint32_t>{};
  bench::measure<Blocks<Policy>>(
      state,
      [k, &order](Blocks<Policy>& fx) INLINED_OP {
        for (std::int64_t j = 0; j < k; ++j) {
          std::uint8_t sizeClass = asyncstate::FuturePool::sizeClassOf(bench::kFutureStateSize);
          void* block = fx.pool.allocateClass(sizeClass, bench::kFutureStateSize);
          *static_cast<std::int64_t*>(block) = j;
          fx.held.emplace_back(block, sizeClass);
        }
        const auto release = [&fx](const std::pair<void*, std::uint8_t>& held) INLINED_OP {
          fx.sink += *static_cast<std::int64_t*>(held.first);
          fx.pool.deallocateClass(held.first, held.second);
        };
        if constexpr (kShuffled) {
          for (const std::uint32_t j : order) release(fx.held[j]);
        } else {
          for (const auto& held : fx.held) release(held);
        }
        fx.held.clear();
        benchmark::DoNotOptimize(fx.sink);
      },
      k);
}

}  // namespace

void bench::registerBlockBenchmarks() {
  for (const std::int64_t k : {64, 4096, 65536}) {
    registerTimed("blocks/pooled", blocksHeld<asyncstate::AllocationPolicy::Pooled>)->Arg(k);
    registerTimed("blocks/heap", blocksHeld<asyncstate::AllocationPolicy::Heap>)->Arg(k);
  }
  for (const std::int64_t k : {4096, 65536}) {
    registerTimed("blocks_shuffled/pooled", blocksHeld<asyncstate::AllocationPolicy::Pooled, true>)->Arg(k);
    registerTimed("blocks_shuffled/heap", blocksHeld<asyncstate::AllocationPolicy::Heap, true>)->Arg(k);
  }
}
