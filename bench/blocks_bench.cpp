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
// writes and reads its header. kShuffled: given back in a shuffled order (bench::Completions).
template <asyncstate::AllocationPolicy Policy, bool kShuffled = false>
void blocksHeld(benchmark::State& state) {
  const auto k = state.range(0);
  const bench::Completions<kShuffled> completions(k);
  bench::measure<Blocks<Policy>>(
      state,
      [k, &completions](Blocks<Policy>& fx) INLINED_OP {
        for (std::int64_t j = 0; j < k; ++j) {
          std::uint8_t sizeClass = asyncstate::FuturePool::sizeClassOf(bench::kFutureStateSize);
          void* block = fx.pool.allocateClass(sizeClass, bench::kFutureStateSize);
          *static_cast<std::int64_t*>(block) = j;
          fx.held.emplace_back(block, sizeClass);
        }
        // Read through a local pointer: the vector's own would be loaded again after every
        // store the pool makes.
        const auto* held = fx.held.data();
        completions.forEach([&fx, held](std::size_t j) INLINED_OP {
          const auto [block, sizeClass] = held[j];
          fx.sink += *static_cast<std::int64_t*>(block);
          fx.pool.deallocateClass(block, sizeClass);
        });
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
