// Only the shared header's UDF: its findings must be reported (and fixed) once.
#include "counter.hpp"
