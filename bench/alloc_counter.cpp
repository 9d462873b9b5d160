// Replaces every form of global operator new/delete. Sizes come from
// malloc_usable_size, so live bytes stay right whichever delete form the caller uses.

#include "alloc_counter.hpp"

#include <malloc.h>

#include <cstdlib>
#include <new>

namespace bench::alloc {

namespace {
thread_local Counters tlsCounters;
}

Counters& counters() noexcept { return tlsCounters; }

}  // namespace bench::alloc

namespace {

void noteAllocation(void* p) noexcept {
  auto& c = bench::alloc::tlsCounters;
  if (!c.active || p == nullptr) return;
  ++c.allocations;
  c.liveBytes += static_cast<std::int64_t>(malloc_usable_size(p));
  if (c.liveBytes > c.peakBytes) c.peakBytes = c.liveBytes;
}

void noteRelease(void* p) noexcept {
  auto& c = bench::alloc::tlsCounters;
  if (!c.active || p == nullptr) return;
  c.liveBytes -= static_cast<std::int64_t>(malloc_usable_size(p));
}

void* allocate(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  noteAllocation(p);
  return p;
}

void* allocateAligned(std::size_t size, std::align_val_t align) {
  const auto a = static_cast<std::size_t>(align);
  void* p = std::aligned_alloc(a, (size + a - 1) / a * a);
  if (p == nullptr) throw std::bad_alloc();
  noteAllocation(p);
  return p;
}

void release(void* p) noexcept {
  noteRelease(p);
  std::free(p);
}

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t align) { return allocateAligned(size, align); }
void* operator new[](std::size_t size, std::align_val_t align) { return allocateAligned(size, align); }

void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
