#pragma once
// Per-controller pooled allocator for future state. Single-threaded by design: every
// future core is created and released on the task thread that owns the controller,
// so its stacks of returned blocks need no locks and no atomics.

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
  Pooled,  // size classes: returned blocks first, then slabs: no heap traffic in steady state
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
  // Worked out when asked: the allocation path keeps only the counters it cannot do
  // without, since every other increment there is paid by every future.
  PoolStats stats() const noexcept {
    PoolStats s;
    s.live = live();
    s.peak = peak_;
    s.allocations = allocations_;
    s.heapFallbacks = heapFallbacks_;
    s.slabBytes = slabBytes_;
    std::size_t fresh = 0;
    for (std::size_t cls = 0; cls < kClasses; ++cls) {
      const SizeClass& sc = classes_[cls];
      fresh += sc.returned.size() - static_cast<std::size_t>(sc.freshEnd - sc.fresh) / (kMinBlock << cls);
    }
    s.reused = allocations_ - heapFallbacks_ - fresh;
    return s;
  }
  // Blocks handed out and not yet returned.
  std::size_t live() const noexcept { return allocations_ - deallocations_; }

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
  // the block does not come from a size class (Heap policy, or kLargeClass), and then
  // `cls` becomes kLargeClass: the class to return the block with.
  void* allocateClass(std::uint8_t& cls, std::size_t bytes) {
    const std::size_t liveNow = ++allocations_ - deallocations_;
    if (liveNow > peak_) peak_ = liveNow;
    if (policy_ == AllocationPolicy::Heap || cls == kLargeClass) {
      ++heapFallbacks_;
      cls = kLargeClass;
      return ::operator new(bytes);
    }
    SizeClass& sc = classes_[cls];
    if (void* block = sc.head) {
      if (sc.top != 0) {
        sc.head = sc.returned[--sc.top];
        // The next block handed out was freed long ago when many records are in flight:
        // start loading it now, for the header stores the next allocation makes.
        ASYNCSTATE_PREFETCH_WRITE(sc.head);
      } else {
        sc.head = nullptr;
      }
      return block;
    }
    if (sc.fresh == sc.freshEnd) carve(sc, cls);
    void* p = sc.fresh;
    sc.fresh += kMinBlock << cls;
    return p;
  }

  void deallocateClass(void* p, std::uint8_t cls) noexcept {
    ++deallocations_;
    if (cls == kLargeClass) {
      ::operator delete(p);
      return;
    }
    SizeClass& sc = classes_[cls];
    if (sc.head != nullptr) sc.returned[sc.top++] = sc.head;
    sc.head = p;
  }

 private:
  // Returned blocks are kept on a stack of pointers rather than linked through their
  // first word: popping one then reads the stack, in order, instead of the block's
  // link -- a dependent load from a line that, with many futures in flight, was freed
  // long ago and has left the cache. The stack has a slot for every block the class
  // ever carved, so returning a block never allocates.
  struct SizeClass {
    // The block returned last, handed out next. Kept apart from the stack so that an
    // allocation finds its block with one load of what the last release stored; from
    // the stack it would take two (the top, then the slot it indexes), and with one
    // future in flight both were just written.
    void* head = nullptr;
    std::vector<void*> returned;  // a slot for every block carved: its size is the blocks carved
    std::size_t top = 0;          // returned blocks on the stack, under `head`
    std::byte* fresh = nullptr;   // next never-used block of the newest slab
    std::byte* freshEnd = nullptr;
  };

  static constexpr std::size_t classOf(std::size_t size) noexcept {
    constexpr int kMinBlockLog2 = std::bit_width(kMinBlock) - 1;
    return size <= kMinBlock ? 0 : static_cast<std::size_t>(std::bit_width(size - 1) - kMinBlockLog2);
  }

  // Gives a size class a new slab; its blocks are handed out in order before the next
  // one is carved. They stay off the stack of returned blocks so that `reused` counts
  // only blocks that really came back.
  void carve(SizeClass& sc, std::size_t cls) {
    const std::size_t bytes = (kMinBlock << cls) * kBlocksPerSlab;
    slabs_.push_back(std::make_unique_for_overwrite<std::byte[]>(bytes));
    sc.returned.resize(sc.returned.size() + kBlocksPerSlab);
    sc.fresh = slabs_.back().get();
    sc.freshEnd = sc.fresh + bytes;
    slabBytes_ += bytes;
  }

  AllocationPolicy policy_;
  std::size_t allocations_ = 0;
  std::size_t deallocations_ = 0;
  std::size_t peak_ = 0;
  std::size_t heapFallbacks_ = 0;
  std::size_t slabBytes_ = 0;
  std::array<SizeClass, kClasses> classes_{};
  std::vector<std::unique_ptr<std::byte[]>> slabs_;
};

}  // namespace asyncstate
