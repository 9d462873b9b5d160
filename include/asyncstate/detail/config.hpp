#pragma once
// Inlining and cache hints for the hot paths (measured in bench/futures_bench.cpp and
// bench/state_bench.cpp), and whether AddressSanitizer is watching.

#if defined(__GNUC__)
#define ASYNCSTATE_ALWAYS_INLINE [[gnu::always_inline]] inline
#define ASYNCSTATE_NOINLINE [[gnu::noinline]]
#define ASYNCSTATE_COLD [[gnu::cold, gnu::noinline]]
#define ASYNCSTATE_PREFETCH(address) __builtin_prefetch(address)
#define ASYNCSTATE_PREFETCH_WRITE(address) __builtin_prefetch(address, 1)
#else
#define ASYNCSTATE_ALWAYS_INLINE inline
#define ASYNCSTATE_NOINLINE
#define ASYNCSTATE_COLD
#define ASYNCSTATE_PREFETCH(address) ((void)(address))
#define ASYNCSTATE_PREFETCH_WRITE(address) ((void)(address))
#endif

// Caches of freed memory (ErrorBoxCache in error.hpp) hand a block out again without the
// heap seeing it, which would hide a use after free from AddressSanitizer: under it they
// keep nothing.
#if defined(__SANITIZE_ADDRESS__)
#define ASYNCSTATE_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASYNCSTATE_ADDRESS_SANITIZER 1
#endif
#endif
#ifndef ASYNCSTATE_ADDRESS_SANITIZER
#define ASYNCSTATE_ADDRESS_SANITIZER 0
#endif
