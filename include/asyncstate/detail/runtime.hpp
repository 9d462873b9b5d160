#pragma once
// What a future needs from the controller that owns it: the pool its state lives in,
// the place unhandled failures go, and the record whose key continuations run under.
// The controller implements Runtime; futures know nothing else about it.

#include <asyncstate/error.hpp>
#include <asyncstate/pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

namespace asyncstate::detail {

class Runtime;

// One input record (or timer) in flight. Continuations and state requests hold a
// reference; when the last one goes the runtime is told (recordFinished), the one place
// that decides a record is done and unblocks its key.
class RecordContext {
 public:
  using KeyDescriber = std::string (*)(std::string_view keyBytes);

  RecordContext(Runtime* runtime, std::string keyBytes, std::uint32_t keyGroup, KeyDescriber describe,
                std::size_t allocationSize)
      : runtime_(runtime),
        keyBytes_(std::move(keyBytes)),
        keyHash_(std::hash<std::string_view>{}(keyBytes_)),
        keyGroup_(keyGroup),
        describe_(describe),
        allocationSize_(allocationSize) {}
  virtual ~RecordContext() = default;

  // The record's processing (the callable handed to the controller, kept alive with
  // the record so that what it references outlives every continuation).
  virtual void run() = 0;
  RecordContext(const RecordContext&) = delete;
  RecordContext& operator=(const RecordContext&) = delete;

  void retain() noexcept { ++refs_; }
  inline void release();

  const std::string& keyBytes() const noexcept { return keyBytes_; }
  std::size_t keyHash() const noexcept { return keyHash_; }
  std::uint32_t keyGroup() const noexcept { return keyGroup_; }
  std::string keyText() const { return describe_ != nullptr ? describe_(keyBytes_) : std::string(); }
  std::uint32_t references() const noexcept { return refs_; }
  std::size_t allocationSize() const noexcept { return allocationSize_; }
  std::int64_t timestamp() const noexcept { return timestamp_; }
  void setTimestamp(std::int64_t timestamp) noexcept { timestamp_ = timestamp; }

  // Set only for records whose latency is sampled: reading the clock is not free.
  std::optional<std::chrono::steady_clock::time_point> admitted() const noexcept { return admitted_; }
  void setAdmitted(std::chrono::steady_clock::time_point at) noexcept { admitted_ = at; }

  // The record queued after this one (behind the same key, or to be started): queues
  // link records through themselves so that queueing allocates nothing.
  RecordContext* nextInLine() const noexcept { return nextInLine_; }
  void setNextInLine(RecordContext* next) noexcept { nextInLine_ = next; }

 private:
  Runtime* runtime_;
  std::string keyBytes_;
  std::size_t keyHash_;
  std::uint32_t keyGroup_;
  KeyDescriber describe_;
  std::size_t allocationSize_;
  std::optional<std::chrono::steady_clock::time_point> admitted_;
  RecordContext* nextInLine_ = nullptr;
  std::int64_t timestamp_ = 0;
  std::uint32_t refs_ = 1;  // the record's own processing holds the first reference
};

class Runtime {
 public:
  explicit Runtime(AllocationPolicy policy) : pool_(policy) {}
  virtual ~Runtime() = default;
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  void* allocate(std::size_t size) { return pool_.allocate(size); }
  void deallocate(void* p, std::size_t size) noexcept {
    pool_.deallocate(p, size);
    checkIdle();
  }
  // For blocks whose size class the caller knows (a future's core, see FuturePool::allocateClass).
  void* allocateClass(std::uint8_t& sizeClass, std::size_t bytes) { return pool_.allocateClass(sizeClass, bytes); }
  void deallocateClass(void* p, std::uint8_t sizeClass) noexcept {
    pool_.deallocateClass(p, sizeClass);
    checkIdle();
  }
  PoolStats poolStats() const noexcept { return pool_.stats(); }
  std::size_t liveBlocks() const noexcept { return pool_.live(); }
  AllocationPolicy allocationPolicy() const noexcept { return pool_.policy(); }

  RecordContext* currentRecord() const noexcept { return current_; }
  void setCurrentRecord(RecordContext* record) noexcept { current_ = record; }

  std::string currentKeyText() const { return current_ != nullptr ? current_->keyText() : std::string(); }

  // A failure that no downstream exceptionally()/handle() will see.
  virtual void reportUnhandled(AsyncError error) = 0;
  virtual void recordFinished(RecordContext* record) = 0;

 protected:
  // The last pooled block came back, after notifyWhenIdle(). Nothing may touch the
  // runtime after this returns if the override deletes it.
  virtual void idle() noexcept {}
  // From now on idle() is called when the last block comes back. Until then a release
  // tests one flag, not the pool's live count and a virtual call: with one future in
  // flight every release empties the pool.
  void notifyWhenIdle() noexcept { notifyIdle_ = true; }

 private:
  void checkIdle() noexcept {
    if (notifyIdle_ && pool_.live() == 0) [[unlikely]]
      idle();
  }

  FuturePool pool_;
  bool notifyIdle_ = false;
  RecordContext* current_ = nullptr;
};

void RecordContext::release() {
  if (--refs_ == 0) runtime_->recordFinished(this);
}

// Futures used outside any controller (completedFuture in a unit test, a Task run by
// hand) fall back to this runtime: heap allocation, failures printed and counted.
class DetachedRuntime final : public Runtime {
 public:
  DetachedRuntime() : Runtime(AllocationPolicy::Heap) {}
  void reportUnhandled(AsyncError error) override {
    unhandled_.fetch_add(1, std::memory_order_relaxed);
    std::cerr << "asyncstate: unhandled failure outside a controller: " << error.message() << '\n';
  }
  void recordFinished(RecordContext*) override {}
  std::size_t unhandledCount() const noexcept { return unhandled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> unhandled_{0};
};

inline DetachedRuntime& detachedRuntime() {
  thread_local DetachedRuntime runtime;
  return runtime;
}

inline thread_local Runtime* tlsRuntime = nullptr;

// The runtime of the controller whose task thread this is, or the detached fallback.
inline Runtime& currentRuntime() { return tlsRuntime != nullptr ? *tlsRuntime : detachedRuntime(); }

// Makes `record` current for the duration of a continuation; nested continuations
// restore the outer record on the way out.
class RecordScope {
 public:
  RecordScope(Runtime& runtime, RecordContext* record) : runtime_(runtime), saved_(runtime.currentRecord()) {
    runtime_.setCurrentRecord(record);
  }
  ~RecordScope() { runtime_.setCurrentRecord(saved_); }
  RecordScope(const RecordScope&) = delete;
  RecordScope& operator=(const RecordScope&) = delete;

 private:
  Runtime& runtime_;
  RecordContext* saved_;
};

}  // namespace asyncstate::detail
