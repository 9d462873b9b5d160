#pragma once
// Inlining and cache hints for the hot paths (measured in bench/futures_bench.cpp and
// bench/state_bench.cpp).

#if defined(__GNUC__)
#define ASYNCSTATE_ALWAYS_INLINE [[gnu::always_inline]] inline
#define ASYNCSTATE_NOINLINE [[gnu::noinline]]
#define ASYNCSTATE_COLD [[gnu::cold, gnu::noinline]]
#define ASYNCSTATE_PREFETCH(address) __builtin_prefetch(address)
#else
#define ASYNCSTATE_ALWAYS_INLINE inline
#define ASYNCSTATE_NOINLINE
#define ASYNCSTATE_COLD
#define ASYNCSTATE_PREFETCH(address) ((void)(address))
#endif
