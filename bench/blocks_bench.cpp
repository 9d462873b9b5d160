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
// writes and reads its header.
template <asyncstate::AllocationPolicy Policy>
void blocksHeld(benchmark::State& state) {
  const auto k = state.range(0);
  bench::measure<Blocks<Policy>>(
      state,
      [k](Blocks<Policy>& fx) INLINED_OP {
        for (std::int64_t j = 0; j < k; ++j) {
          std::uint8_t sizeClass = asyncstate::FuturePool::sizeClassOf(bench::kFutureStateSize);
          void* block = fx.pool.allocateClass(sizeClass, bench::kFutureStateSize);
          *static_cast<std::int64_t*>(block) = j;
          fx.held.emplace_back(block, sizeClass);
        }
        for (const auto& [block, sizeClass] : fx.held) {
          fx.sink += *static_cast<std::int64_t*>(block);
          fx.pool.deallocateClass(block, sizeClass);
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
}
