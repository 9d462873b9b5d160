// first-error: combineAll\(std::move\(f1\), std::move\(f2\)\)
// A braced list copies its elements, and a StateFuture cannot be copied.
#include <asyncstate/future.hpp>

void both(asyncstate::StateFuture<int>& f1, asyncstate::StateFuture<int>& f2) {
  auto all = asyncstate::combineAll({f1, f2});
  (void)all;
}
