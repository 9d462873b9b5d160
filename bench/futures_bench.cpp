// The futures benchmark: the same work done by every contender, side by side in one
// binary -- asyncstate with the pooled and the heap policy, std::promise/std::future,
// boost::future with .then, and the floors (a direct call, a thread-local free-list
// pop+push, malloc+free of the future state's size).
//
// Every benchmark reports the time per iteration (google-benchmark), `items` (futures
// per iteration, for the cases that run many), and from a separate, untimed pass
// with allocation counting on: `allocs_per_item` (operator new calls in steady
// state) and `peak_bytes` (the highest live heap growth over a fresh fixture, which
// includes the slabs a pool grows).

#include "common.hpp"
#include "measure.hpp"

#include <asyncstate/backend/memory.hpp>
#include <asyncstate/controller.hpp>
#include <asyncstate/future.hpp>
#include <asyncstate/task.hpp>

#include <benchmark/benchmark.h>

#define BOOST_THREAD_PROVIDES_FUTURE
#define BOOST_THREAD_PROVIDES_FUTURE_CONTINUATION
#define BOOST_THREAD_PROVIDES_FUTURE_WHEN_ALL_WHEN_ANY
#include <boost/thread/future.hpp>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using asyncstate::AsyncError;
using asyncstate::StateFuture;

// The continuation's work, identical for every contender.
inline int step(int v) { return v + 1; }

using bench::kMaxInFlight;

// --- contenders ----------------------------------------------------------------

// asyncstate: futures come from a controller (its pool, its error handler); the
// benchmark loop runs on the controller's task thread.
template <asyncstate::AllocationPolicy Policy>
struct Async {
  Async() : controller(backend, options()) { promises.reserve(kMaxInFlight); }

  static asyncstate::ControllerOptions options() {
    asyncstate::ControllerOptions o;
    o.allocationPolicy = Policy;
    o.log = nullptr;
    // The failure cases recover every error; anything else reaching the handler is a bug here.
    o.errorHandler = [](const AsyncError& e) -> asyncstate::ErrorAction {
      std::fprintf(stderr, "unexpected unhandled failure: %s\n", e.message().c_str());
      std::abort();
    };
    return o;
  }

  template <class Fn>
  void run(Fn&& fn) {
    controller.runOnTaskThread(fn);
  }

  asyncstate::MemoryBackend backend;
  asyncstate::AsyncExecutionController controller;
  std::vector<asyncstate::StatePromise<int>> promises;
  std::int64_t sink = 0;
  AsyncError error{std::make_exception_ptr(std::runtime_error("injected")), "", "", "bench"};
};
using Pooled = Async<asyncstate::AllocationPolicy::Pooled>;
using Heap = Async<asyncstate::AllocationPolicy::Heap>;

using bench::measure;
using bench::Plain;

struct Std : Plain {
  Std() {
    promises.reserve(kMaxInFlight);
    futures.reserve(kMaxInFlight);
  }
  std::vector<std::promise<int>> promises;
  std::vector<std::future<int>> futures;
};

struct Boost : Plain {
  Boost() {
    promises.reserve(kMaxInFlight);
    futures.reserve(kMaxInFlight);
    results.reserve(kMaxInFlight);
  }
  std::vector<boost::promise<int>> promises;
  std::vector<boost::future<int>> futures;
  std::vector<boost::future<void>> results;
};

// --- a ready future with one continuation ----------------------------------------

void readyDirect(benchmark::State& state) {
  measure<Plain>(state, [i = 0](Plain& fx) mutable INLINED_OP {
    benchmark::DoNotOptimize(i);
    fx.sink += step(i++);
    benchmark::DoNotOptimize(fx.sink);
  });
}

template <class Fixture>
void readyAsync(benchmark::State& state) {
  measure<Fixture>(state, [i = 0](Fixture& fx) mutable INLINED_OP {
    benchmark::DoNotOptimize(i);
    auto done = asyncstate::completedFuture(i++).thenAccept([&fx](int v) { fx.sink += step(v); });
    benchmark::DoNotOptimize(fx.sink);
  });
}

void readyStd(benchmark::State& state) {
  measure<Std>(state, [i = 0](Std& fx) mutable INLINED_OP {
    benchmark::DoNotOptimize(i);
    std::promise<int> p;
    p.set_value(i++);
    fx.sink += step(p.get_future().get());
    benchmark::DoNotOptimize(fx.sink);
  });
}

void readyBoost(benchmark::State& state) {
  measure<Boost>(state, [i = 0](Boost& fx) mutable INLINED_OP {
    benchmark::DoNotOptimize(i);
    boost::make_ready_future(i++)
        .then(boost::launch::sync, [&fx](boost::future<int> f) { fx.sink += step(f.get()); })
        .get();
    benchmark::DoNotOptimize(fx.sink);
  });
}

// --- promise -> future -> continuation, completed later --------------------------

template <class Fixture>
void pendingAsync(benchmark::State& state) {
  measure<Fixture>(state, [i = 0](Fixture& fx) mutable INLINED_OP {
    auto promise = fx.controller.template newPromise<int>();
    auto done = promise.future().thenAccept([&fx](int v) { fx.sink += step(v); });
    benchmark::DoNotOptimize(i);
    promise.setValue(i++);
    benchmark::DoNotOptimize(fx.sink);
  });
}

void pendingStd(benchmark::State& state) {
  measure<Std>(state, [i = 0](Std& fx) mutable INLINED_OP {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    benchmark::DoNotOptimize(i);
    p.set_value(i++);
    fx.sink += step(f.get());
    benchmark::DoNotOptimize(fx.sink);
  });
}

void pendingBoost(benchmark::State& state) {
  measure<Boost>(state, [i = 0](Boost& fx) mutable INLINED_OP {
    boost::promise<int> p;
    auto done = p.get_future().then(boost::launch::sync, [&fx](boost::future<int> f) { fx.sink += step(f.get()); });
    benchmark::DoNotOptimize(i);
    p.set_value(i++);
    done.get();
    benchmark::DoNotOptimize(fx.sink);
  });
}

// The floors: what one continuation on one allocated state cannot beat.
void pendingFreeList(benchmark::State& state) {
  struct Block {
    Block* next;
  };
  thread_local Block* head = nullptr;
  measure<Plain>(state, [](Plain& fx) INLINED_OP {
    Block* block = head;
    if (block == nullptr) {
      block = static_cast<Block*>(std::malloc(bench::kFutureStateSize));
    } else {
      head = block->next;
    }
    benchmark::DoNotOptimize(block);
    block->next = head;
    head = block;
    benchmark::ClobberMemory();
    ++fx.sink;
  });
}

void pendingMalloc(benchmark::State& state) {
  measure<Plain>(state, [](Plain& fx) INLINED_OP {
    void* p = std::malloc(bench::kFutureStateSize);
    benchmark::DoNotOptimize(p);
    std::free(p);
    ++fx.sink;
  });
}

// --- chains of N continuations ---------------------------------------------------

template <class Fixture>
void chainAsync(benchmark::State& state) {
  const auto stages = state.range(0);
  measure<Fixture>(state, [i = 0, stages](Fixture& fx) mutable INLINED_OP {
    auto promise = fx.controller.template newPromise<int>();
    StateFuture<int> f = promise.future();
    for (std::int64_t s = 0; s < stages; ++s) f = std::move(f).thenApply([](int v) { return step(v); });
    auto done = std::move(f).thenAccept([&fx](int v) { fx.sink += v; });
    benchmark::DoNotOptimize(i);
    promise.setValue(i++);
    benchmark::DoNotOptimize(fx.sink);
  });
}

void chainDirect(benchmark::State& state) {
  const auto stages = state.range(0);
  measure<Plain>(state, [i = 0, stages](Plain& fx) mutable INLINED_OP {
    benchmark::DoNotOptimize(i);
    int v = i++;
    for (std::int64_t s = 0; s < stages; ++s) {
      v = step(v);
      benchmark::DoNotOptimize(v);
    }
    fx.sink += v;
    benchmark::DoNotOptimize(fx.sink);
  });
}

// std::future has no continuations: each stage is its own promise/future pair.
void chainStd(benchmark::State& state) {
  const auto stages = state.range(0);
  measure<Std>(state, [i = 0, stages](Std& fx) mutable INLINED_OP {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    benchmark::DoNotOptimize(i);
    p.set_value(i++);
    for (std::int64_t s = 0; s < stages; ++s) {
      std::promise<int> next;
      std::future<int> nf = next.get_future();
      next.set_value(step(f.get()));
      f = std::move(nf);
    }
    fx.sink += f.get();
    benchmark::DoNotOptimize(fx.sink);
  });
}

void chainBoost(benchmark::State& state) {
  const auto stages = state.range(0);
  measure<Boost>(state, [i = 0, stages](Boost& fx) mutable INLINED_OP {
    boost::promise<int> p;
    boost::future<int> f = p.get_future();
    for (std::int64_t s = 0; s < stages; ++s) {
      f = f.then(boost::launch::sync, [](boost::future<int> prev) { return step(prev.get()); });
    }
    auto done = f.then(boost::launch::sync, [&fx](boost::future<int> last) { fx.sink += last.get(); });
    benchmark::DoNotOptimize(i);
    p.set_value(i++);
    done.get();
    benchmark::DoNotOptimize(fx.sink);
  });
}

// --- a failure through N stages, recovered at the end ------------------------------

template <class Fixture>
void failureAsync(benchmark::State& state) {
  const auto stages = state.range(0);
  measure<Fixture>(state, [stages](Fixture& fx) INLINED_OP {
    auto promise = fx.controller.template newPromise<int>();
    StateFuture<int> f = promise.future();
    for (std::int64_t s = 0; s < stages; ++s) f = std::move(f).thenApply([](int v) { return step(v); });
    auto done =
        std::move(f).exceptionally([](const AsyncError&) { return -1; }).thenAccept([&fx](int v) { fx.sink += v; });
    promise.setError(fx.error);
    benchmark::DoNotOptimize(fx.sink);
  });
}

// std::future can only propagate a failure by rethrowing it at every stage.
void failureStd(benchmark::State& state) {
  const auto stages = state.range(0);
  measure<Std>(state, [stages](Std& fx) INLINED_OP {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    p.set_exception(fx.error);
    for (std::int64_t s = 0; s < stages; ++s) {
      std::promise<int> next;
      std::future<int> nf = next.get_future();
      try {
        next.set_value(step(f.get()));
      } catch (...) {
        next.set_exception(std::current_exception());
      }
      f = std::move(nf);
    }
    try {
      fx.sink += f.get();
    } catch (const std::exception&) {
      fx.sink += -1;
    }
    benchmark::DoNotOptimize(fx.sink);
  });
}

// boost's .then hands each stage the failed future; get() rethrows, and boost catches
// it into the next future.
void failureBoost(benchmark::State& state) {
  const auto stages = state.range(0);
  measure<Boost>(state, [stages](Boost& fx) INLINED_OP {
    boost::promise<int> p;
    boost::future<int> f = p.get_future();
    for (std::int64_t s = 0; s < stages; ++s) {
      f = f.then(boost::launch::sync, [](boost::future<int> prev) { return step(prev.get()); });
    }
    auto done = f.then(boost::launch::sync,
                       [&fx](boost::future<int> last) { fx.sink += last.has_exception() ? -1 : last.get(); });
    p.set_exception(fx.error);
    done.get();
    benchmark::DoNotOptimize(fx.sink);
  });
}

// --- combineAll over N pending futures ----------------------------------------------

template <class Fixture>
void combineAsync(benchmark::State& state) {
  const auto n = state.range(0);
  measure<Fixture>(
      state,
      [n](Fixture& fx) INLINED_OP {
        std::vector<StateFuture<int>> futures;
        futures.reserve(static_cast<std::size_t>(n));
        for (std::int64_t k = 0; k < n; ++k) {
          fx.promises.push_back(fx.controller.template newPromise<int>());
          futures.push_back(fx.promises.back().future());
        }
        auto done = asyncstate::combineAll(std::move(futures)).thenAccept([&fx](std::vector<int> values) {
          for (int v : values) fx.sink += v;
        });
        for (std::int64_t k = 0; k < n; ++k) fx.promises[static_cast<std::size_t>(k)].setValue(static_cast<int>(k));
        fx.promises.clear();
        benchmark::DoNotOptimize(fx.sink);
      },
      n);
}

// std has no combinator: wait for each future in turn.
void combineStd(benchmark::State& state) {
  const auto n = state.range(0);
  measure<Std>(
      state,
      [n](Std& fx) INLINED_OP {
        for (std::int64_t k = 0; k < n; ++k) {
          fx.promises.emplace_back();
          fx.futures.push_back(fx.promises.back().get_future());
        }
        for (std::int64_t k = 0; k < n; ++k) fx.promises[static_cast<std::size_t>(k)].set_value(static_cast<int>(k));
        for (auto& f : fx.futures) fx.sink += f.get();
        fx.promises.clear();
        fx.futures.clear();
        benchmark::DoNotOptimize(fx.sink);
      },
      n);
}

// boost::when_all over a range starts a thread that waits for the inputs (Boost 1.74).
void combineBoost(benchmark::State& state) {
  const auto n = state.range(0);
  measure<Boost>(
      state,
      [n](Boost& fx) INLINED_OP {
        for (std::int64_t k = 0; k < n; ++k) {
          fx.promises.emplace_back();
          fx.futures.push_back(fx.promises.back().get_future());
        }
        auto done = boost::when_all(fx.futures.begin(), fx.futures.end()).then(boost::launch::sync, [&fx](auto all) {
          for (auto& f : all.get()) fx.sink += f.get();
        });
        for (std::int64_t k = 0; k < n; ++k) fx.promises[static_cast<std::size_t>(k)].set_value(static_cast<int>(k));
        done.get();
        fx.promises.clear();
        fx.futures.clear();
        benchmark::DoNotOptimize(fx.sink);
      },
      n);
}

// --- K futures in flight, then drained -------------------------------------------------

// kShuffled: completed in the order a remote backend answers (bench::Completions)
// rather than the order of creation.
template <class Fixture, bool kShuffled = false>
void inflightAsync(benchmark::State& state) {
  const auto k = state.range(0);
  const bench::Completions<kShuffled> completions(k);
  measure<Fixture>(
      state,
      [k, &completions](Fixture& fx) INLINED_OP {
        for (std::int64_t j = 0; j < k; ++j) {
          fx.promises.push_back(fx.controller.template newPromise<int>());
          auto done = fx.promises.back().future().thenAccept([&fx](int v) { fx.sink += step(v); });
        }
        completions.forEach([&fx](std::size_t j) INLINED_OP { fx.promises[j].setValue(static_cast<int>(j)); });
        fx.promises.clear();
        benchmark::DoNotOptimize(fx.sink);
      },
      k);
}

void inflightStd(benchmark::State& state) {
  const auto k = state.range(0);
  measure<Std>(
      state,
      [k](Std& fx) INLINED_OP {
        for (std::int64_t j = 0; j < k; ++j) {
          fx.promises.emplace_back();
          fx.futures.push_back(fx.promises.back().get_future());
        }
        for (std::int64_t j = 0; j < k; ++j) fx.promises[static_cast<std::size_t>(j)].set_value(static_cast<int>(j));
        for (auto& f : fx.futures) fx.sink += step(f.get());
        fx.promises.clear();
        fx.futures.clear();
        benchmark::DoNotOptimize(fx.sink);
      },
      k);
}

void inflightBoost(benchmark::State& state) {
  const auto k = state.range(0);
  measure<Boost>(
      state,
      [k](Boost& fx) INLINED_OP {
        for (std::int64_t j = 0; j < k; ++j) {
          fx.promises.emplace_back();
          fx.results.push_back(fx.promises.back().get_future().then(
              boost::launch::sync, [&fx](boost::future<int> f) { fx.sink += step(f.get()); }));
        }
        for (std::int64_t j = 0; j < k; ++j) fx.promises[static_cast<std::size_t>(j)].set_value(static_cast<int>(j));
        for (auto& r : fx.results) r.get();
        fx.promises.clear();
        fx.results.clear();
        benchmark::DoNotOptimize(fx.sink);
      },
      k);
}

// --- co_await on a ready and on a pending future -------------------------------------

asyncstate::Task<int> awaitStep(StateFuture<int> future) { co_return step(co_await std::move(future)); }

template <class Fixture>
void awaitReady(benchmark::State& state) {
  measure<Fixture>(state, [i = 0](Fixture& fx) mutable INLINED_OP {
    benchmark::DoNotOptimize(i);
    auto done = awaitStep(asyncstate::completedFuture(i++)).thenAccept([&fx](int v) { fx.sink += v; });
    benchmark::DoNotOptimize(fx.sink);
  });
}

template <class Fixture>
void awaitPending(benchmark::State& state) {
  measure<Fixture>(state, [i = 0](Fixture& fx) mutable INLINED_OP {
    auto promise = fx.controller.template newPromise<int>();
    auto done = awaitStep(promise.future()).thenAccept([&fx](int v) { fx.sink += v; });
    benchmark::DoNotOptimize(i);
    promise.setValue(i++);
    benchmark::DoNotOptimize(fx.sink);
  });
}

// --- registration ------------------------------------------------------------------

void registerAll() {
  bench::registerTimed("ready/direct", readyDirect);
  bench::registerTimed("ready/pooled", readyAsync<Pooled>);
  bench::registerTimed("ready/heap", readyAsync<Heap>);
  bench::registerTimed("ready/std", readyStd);
  bench::registerTimed("ready/boost", readyBoost);

  bench::registerTimed("pending/direct", readyDirect);
  bench::registerTimed("pending/freelist", pendingFreeList);
  bench::registerTimed("pending/malloc", pendingMalloc);
  bench::registerTimed("pending/pooled", pendingAsync<Pooled>);
  bench::registerTimed("pending/heap", pendingAsync<Heap>);
  bench::registerTimed("pending/std", pendingStd);
  bench::registerTimed("pending/boost", pendingBoost);

  for (const std::int64_t stages : {1, 4, 16, 64}) {
    bench::registerTimed("chain/direct", chainDirect)->Arg(stages);
    bench::registerTimed("chain/pooled", chainAsync<Pooled>)->Arg(stages);
    bench::registerTimed("chain/heap", chainAsync<Heap>)->Arg(stages);
    bench::registerTimed("chain/std", chainStd)->Arg(stages);
    bench::registerTimed("chain/boost", chainBoost)->Arg(stages);
  }
  for (const std::int64_t stages : {1, 4, 16, 64}) {
    bench::registerTimed("failure/pooled", failureAsync<Pooled>)->Arg(stages);
    bench::registerTimed("failure/heap", failureAsync<Heap>)->Arg(stages);
    bench::registerTimed("failure/std", failureStd)->Arg(stages);
    bench::registerTimed("failure/boost", failureBoost)->Arg(stages);
  }
  for (const std::int64_t n : {8, 100}) {
    bench::registerTimed("combine/pooled", combineAsync<Pooled>)->Arg(n);
    bench::registerTimed("combine/heap", combineAsync<Heap>)->Arg(n);
    bench::registerTimed("combine/std", combineStd)->Arg(n);
    bench::registerTimed("combine/boost", combineBoost)->Arg(n);
  }
  bench::registerTimed("await_ready/pooled", awaitReady<Pooled>);
  bench::registerTimed("await_ready/heap", awaitReady<Heap>);
  bench::registerTimed("await_pending/pooled", awaitPending<Pooled>);
  bench::registerTimed("await_pending/heap", awaitPending<Heap>);
  for (const std::int64_t k : {64, 4096, 65536}) {
    bench::registerTimed("inflight/pooled", inflightAsync<Pooled>)->Arg(k);
    bench::registerTimed("inflight/heap", inflightAsync<Heap>)->Arg(k);
    bench::registerTimed("inflight/std", inflightStd)->Arg(k);
    bench::registerTimed("inflight/boost", inflightBoost)->Arg(k);
  }
  for (const std::int64_t k : {4096, 65536}) {
    bench::registerTimed("inflight_shuffled/pooled", inflightAsync<Pooled, true>)->Arg(k);
    bench::registerTimed("inflight_shuffled/heap", inflightAsync<Heap, true>)->Arg(k);
  }
}

}  // namespace

int main(int argc, char** argv) {
  registerAll();
  bench::registerBlockBenchmarks();
  return bench::runBenchmarks(argc, argv);
}
