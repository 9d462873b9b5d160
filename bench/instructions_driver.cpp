// Instructions per future operation, for bench/instructions.sh: runs one case N times
// on a controller's task thread. Run under callgrind with N and 2N, the difference
// divided by N is the cost of one operation without start-up and shutdown.
//
//   instructions_driver <ready|pending|chain16|failure4|inflight64> <N> <pooled|heap>
//
// inflight64 counts futures, not operations: N/64 rounds of 64 futures in flight.

#include <asyncstate/backend/memory.hpp>
#include <asyncstate/controller.hpp>
#include <asyncstate/future.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace {

using namespace asyncstate;

// Each case is the same work as its google-benchmark twin in futures_bench.cpp.
enum class Case { Ready, Pending, Chain16, Failure4, Inflight64 };

Case parseCase(std::string_view name) {
  if (name == "ready") return Case::Ready;
  if (name == "pending") return Case::Pending;
  if (name == "chain16") return Case::Chain16;
  if (name == "failure4") return Case::Failure4;
  if (name == "inflight64") return Case::Inflight64;
  std::fprintf(stderr, "unknown case '%.*s'\n", static_cast<int>(name.size()), name.data());
  std::exit(2);
}

// Each case runs in a loop of its own with its operation inlined, as in the benchmark
// binary (futures_bench.cpp's INLINED_OP): one loop over a switch would put every case
// in one large function, and the compiler would inline differently from what was timed.
using Sink = volatile long;

#define INLINED_CASE [[gnu::always_inline]] inline

INLINED_CASE void ready(Sink& sink, int v) {
  auto done = completedFuture(v).thenAccept([&](int x) { sink = sink + x + 1; });
}

INLINED_CASE void pending(AsyncExecutionController& controller, Sink& sink, int v) {
  auto promise = controller.newPromise<int>();
  auto done = promise.future().thenAccept([&](int x) { sink = sink + x + 1; });
  promise.setValue(v);
}

INLINED_CASE void chain16(AsyncExecutionController& controller, Sink& sink, int v) {
  auto promise = controller.newPromise<int>();
  StateFuture<int> f = promise.future();
  for (int s = 0; s < 16; ++s) f = std::move(f).thenApply([](int x) { return x + 1; });
  auto done = std::move(f).thenAccept([&](int x) { sink = sink + x; });
  promise.setValue(v);
}

INLINED_CASE void failure4(AsyncExecutionController& controller, Sink& sink, const AsyncError& error) {
  auto promise = controller.newPromise<int>();
  StateFuture<int> f = promise.future();
  for (int s = 0; s < 4; ++s) f = std::move(f).thenApply([](int x) { return x + 1; });
  auto done =
      std::move(f).exceptionally([](const AsyncError&) { return -1; }).thenAccept([&](int x) { sink = sink + x; });
  promise.setError(error);
}

constexpr int kInFlight = 64;

INLINED_CASE void inflight64(AsyncExecutionController& controller, std::vector<StatePromise<int>>& promises,
                             Sink& sink) {
  for (int j = 0; j < kInFlight; ++j) {
    promises.push_back(controller.newPromise<int>());
    auto done = promises.back().future().thenAccept([&](int x) { sink = sink + x + 1; });
  }
  for (int j = 0; j < kInFlight; ++j) promises[static_cast<std::size_t>(j)].setValue(j);
  promises.clear();
}

// One instantiation, so one function, per case.
template <class Op>
[[gnu::noinline]] void repeat(long n, Op op) {
  for (long i = 0; i < n; ++i) op(static_cast<int>(i));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <ready|pending|chain16|failure4|inflight64> <N> <pooled|heap>\n", argv[0]);
    return 2;
  }
  const Case which = parseCase(argv[1]);
  const long n = std::atol(argv[2]);
  MemoryBackend backend;
  ControllerOptions options;
  options.allocationPolicy = std::string_view(argv[3]) == "heap" ? AllocationPolicy::Heap : AllocationPolicy::Pooled;
  options.log = nullptr;
  AsyncExecutionController controller(backend, options);
  Sink sink = 0;
  const AsyncError error{std::make_exception_ptr(std::runtime_error("injected")), "", "", "bench"};
  std::vector<StatePromise<int>> promises;
  promises.reserve(kInFlight);
  controller.runOnTaskThread([&] {
    switch (which) {
      case Case::Ready: repeat(n, [&](int v) { ready(sink, v); }); break;
      case Case::Pending: repeat(n, [&](int v) { pending(controller, sink, v); }); break;
      case Case::Chain16: repeat(n, [&](int v) { chain16(controller, sink, v); }); break;
      case Case::Failure4: repeat(n, [&](int) { failure4(controller, sink, error); }); break;
      case Case::Inflight64: repeat(n / kInFlight, [&](int) { inflight64(controller, promises, sink); }); break;
    }
  });
  return 0;
}
