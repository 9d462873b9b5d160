// first-error: std::optional
// A state read completes with std::optional<V>; a callback taking V is the mistake.
#include <asyncstate/function.hpp>

void count(asyncstate::ValueState<long>& state) {
  state.asyncValue().thenAccept([](long n) { (void)n; });
}
