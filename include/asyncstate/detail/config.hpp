#pragma once
// Inlining hints for the future fast paths (measured in bench/futures_bench.cpp).

#if defined(__GNUC__)
#define ASYNCSTATE_ALWAYS_INLINE [[gnu::always_inline]] inline
#define ASYNCSTATE_NOINLINE [[gnu::noinline]]
#define ASYNCSTATE_COLD [[gnu::cold, gnu::noinline]]
#else
#define ASYNCSTATE_ALWAYS_INLINE inline
#define ASYNCSTATE_NOINLINE
#define ASYNCSTATE_COLD
#endif
