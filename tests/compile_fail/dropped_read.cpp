// first-error: nodiscard
// Dropping the value of a read is a mistake the compiler reports.
#include <asyncstate/function.hpp>

void read(asyncstate::ValueState<long>& state) { state.asyncValue(); }
