#pragma once
// Per-controller pooled allocator for future state. Single-threaded by design: every
// future core is created and released on the task thread that owns the controller,
// so the free lists need no locks and no atomics.

#include <asyncstate/detail/config.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace asyncstate {

enum class AllocationPolicy : std::uint8_t {
  Pooled,  // size-classed free lists refilled from slabs: no heap traffic in steady state
  Heap,    // operator new/delete per future state (the baseline the pool is measured against)
};

struct PoolStats {
  std::size_t live = 0;           // blocks handed out and not yet returned
  std::size_t peak = 0;           // highest `live` seen
  std::size_t allocations = 0;    // every allocate() call
  std::size_t reused = 0;         // allocations served by a block that was returned earlier
  std::size_t heapFallbacks = 0;  // allocations that went to operator new (too large, or Heap policy)
  std::size_t slabBytes = 0;      // bytes the pool holds in slabs
};

class FuturePool {
 public:
  static constexpr std::size_t kMinBlock = 64;
  static constexpr std::size_t kClasses = 5;  // 64, 128, 256, 512, 1024 bytes
  static constexpr std::size_t kMaxBlock = kMinBlock << (kClasses - 1);
  static constexpr std::size_t kBlocksPerSlab = 64;

  explicit FuturePool(AllocationPolicy policy = AllocationPolicy::Pooled) : policy_(policy) {}
  FuturePool(const FuturePool&) = delete;
  FuturePool& operator=(const FuturePool&) = delete;

  AllocationPolicy policy() const noexcept { return policy_; }
  const PoolStats& stats() const noexcept { return stats_; }

  // Sizes beyond the largest class go to operator new under either policy.
  static constexpr std::uint8_t kLargeClass = kClasses;

  // The size class of a block for `size` bytes: a future's core computes its own at
  // compile time and hands it back on release, so neither path works it out again.
  static constexpr std::uint8_t sizeClassOf(std::size_t size) noexcept {
    return size > kMaxBlock ? kLargeClass : static_cast<std::uint8_t>(classOf(size));
  }

  // The bytes a block for `size` really has: a future's core uses the slack to hold a
  // later stage's value in the same block.
  static constexpr std::size_t blockBytes(std::size_t size) noexcept {
    return size > kMaxBlock ? size : kMinBlock << classOf(size);
  }

  void* allocate(std::size_t size) {
    std::uint8_t cls = sizeClassOf(size);
    return allocateClass(cls, size);
  }
  void deallocate(void* p, std::size_t size) noexcept {
    deallocateClass(p, policy_ == AllocationPolicy::Heap ? kLargeClass : sizeClassOf(size));
  }

  // A block of class `cls` (sizeClassOf(bytes)); `bytes` is what operator new gets when
  // the block does not come from the free lists (Heap policy, or kLargeClass), and then
  // `cls` becomes kLargeClass: the class to return the block with.
  void* allocateClass(std::uint8_t& cls, std::size_t bytes) {
    ++stats_.allocations;
    if (++stats_.live > stats_.peak) stats_.peak = stats_.live;
    if (policy_ == AllocationPolicy::Heap || cls == kLargeClass) {
      ++stats_.heapFallbacks;
      cls = kLargeClass;
      return ::operator new(bytes);
    }
    FreeBlock* block = free_[cls];
    if (block != nullptr) {
      ++stats_.reused;
      free_[cls] = block->next;
      // The next block handed out was freed long ago when many records are in flight:
      // start loading it now rather than stall on its link at the next allocation.
      ASYNCSTATE_PREFETCH(free_[cls]);
      return block;
    }
    if (fresh_[cls] == freshEnd_[cls]) carve(cls);
    void* p = fresh_[cls];
    fresh_[cls] += kMinBlock << cls;
    return p;
  }

  void deallocateClass(void* p, std::uint8_t cls) noexcept {
    --stats_.live;
    if (cls == kLargeClass) {
      ::operator delete(p);
      return;
    }
    auto* block = static_cast<FreeBlock*>(p);
    block->next = free_[cls];
    free_[cls] = block;
  }

 private:
  struct FreeBlock {
    FreeBlock* next;
  };

  static constexpr std::size_t classOf(std::size_t size) noexcept {
    constexpr int kMinBlockLog2 = std::bit_width(kMinBlock) - 1;
    return size <= kMinBlock ? 0 : static_cast<std::size_t>(std::bit_width(size - 1) - kMinBlockLog2);
  }

  // Gives a size class a new slab; its blocks are handed out in order before the next
  // one is carved. They stay off the free list so that `reused` counts only blocks
  // that really came back.
  void carve(std::size_t cls) {
    const std::size_t bytes = (kMinBlock << cls) * kBlocksPerSlab;
    slabs_.push_back(std::make_unique<std::byte[]>(bytes));
    fresh_[cls] = slabs_.back().get();
    freshEnd_[cls] = fresh_[cls] + bytes;
    stats_.slabBytes += bytes;
  }

  AllocationPolicy policy_;
  PoolStats stats_;
  std::array<FreeBlock*, kClasses> free_{};
  std::array<std::byte*, kClasses> fresh_{};  // next never-used block of the newest slab
  std::array<std::byte*, kClasses> freshEnd_{};
  std::vector<std::unique_ptr<std::byte[]>> slabs_;
};

}  // namespace asyncstate
