// first-error: an enum stored in state needs a fixed underlying type
// A plain enum holds only its enumerators' range, so decoding a corrupt value into it
// would be undefined behaviour; the error names the two declarations that make it safe.
#include <asyncstate/function.hpp>

enum Tier { Bronze, Silver, Gold };

asyncstate::ValueStateDescriptor<Tier> descriptor("tier");
