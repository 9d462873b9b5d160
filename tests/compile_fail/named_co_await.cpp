// first-error: co_await std::move\(f\)
// Awaiting a named future must hand it over.
#include <asyncstate/task.hpp>

asyncstate::Task<int> twice(asyncstate::StateFuture<int> f) {
  const int v = co_await f;
  co_return 2 * v;
}
