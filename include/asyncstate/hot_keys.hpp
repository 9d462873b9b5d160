#pragma once
// Hot keys, named: records of one key run one at a time, so a key that holds a large
// part of the in-flight window serializes the job while the rest of the window waits.
//
// HotKeySketch is a Space-Saving top-N: N counters and a fixed-size index, allocated
// once, so memory does not grow with the number of distinct keys. A key that carries
// more than 1/N of the total weight is always among the counters, and each count
// overestimates the key's true weight by at most its recorded error.
// HotKeyMonitor feeds two sketches (waiting records, blocked time) from the controller's
// hot path and asks a HotKeyPolicy whether one key's share of the window deserves a
// warning that names the key and the fix.

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asyncstate {

struct HotKey {
  std::string key;          // the key's text, cut to the sketch's maxKeyBytes ("..." marks a cut)
  std::uint64_t count = 0;  // estimated weight: true weight <= count <= true weight + error
  std::uint64_t error = 0;  // how much of count may belong to keys this counter replaced
};

class HotKeySketch {
 public:
  explicit HotKeySketch(std::size_t capacity = 16, std::size_t maxKeyBytes = 64)
      : maxKeyBytes_(maxKeyBytes),
        counters_(validCapacity(capacity)),
        heap_(capacity),
        index_(indexSize(capacity), kNone) {
    for (std::size_t i = 0; i < counters_.size(); ++i) {
      counters_[i].text.reserve(maxKeyBytes_ + kCutMarker.size());
      counters_[i].heapPos = static_cast<std::uint32_t>(i);
      heap_[i] = static_cast<std::uint32_t>(i);
    }
  }

  std::size_t capacity() const noexcept { return counters_.size(); }
  std::uint64_t totalWeight() const noexcept { return total_; }

  // Adds `weight` to `key`. Constant work for a fixed capacity: one hash, an index probe
  // and a heap sift of depth log2(capacity); never an allocation (the key buffers are
  // reserved at construction, and keys are cut to maxKeyBytes).
  void add(std::string_view key, std::uint64_t weight = 1) {
    if (weight == 0) return;
    total_ += weight;
    const std::uint64_t hash = hashOf(key);
    if (const std::uint32_t found = lookup(hash, key); found != kNone) {
      counters_[found].count += weight;
      siftDown(counters_[found].heapPos);
      return;
    }
    // Not tracked: take a free counter, or replace the smallest one (Space-Saving).
    const std::uint32_t slot = heap_[0];
    Counter& c = counters_[slot];
    if (c.used) {
      unindex(c.hash, slot);
      c.error = c.count;
      c.count += weight;
    } else {
      c.used = true;
      c.error = 0;
      c.count = weight;
    }
    c.hash = hash;
    assignText(c, key);
    index(hash, slot);
    siftDown(0);
  }

  // The tracked keys, heaviest first (allocates: for reporting, not the hot path).
  std::vector<HotKey> top(std::size_t n = static_cast<std::size_t>(-1)) const {
    std::vector<HotKey> keys;
    for (const Counter& c : counters_) {
      if (c.used) keys.push_back(HotKey{c.text, c.count, c.error});
    }
    std::sort(keys.begin(), keys.end(), [](const HotKey& a, const HotKey& b) { return a.count > b.count; });
    if (keys.size() > n) keys.resize(n);
    return keys;
  }

  // Halves every count (and the total), so that old heat fades: call it periodically
  // (for example at every watermark) to rank keys by recent rather than lifetime weight.
  void decay() noexcept {
    total_ /= 2;
    for (Counter& c : counters_) {
      c.count /= 2;
      c.error /= 2;
    }
  }

 private:
  static constexpr std::uint32_t kNone = 0xffffffffU;
  static constexpr std::string_view kCutMarker = "...";

  struct Counter {
    std::uint64_t hash = 0;
    std::uint64_t count = 0;
    std::uint64_t error = 0;
    std::string text;
    std::uint32_t heapPos = 0;
    bool used = false;
  };

  static std::size_t validCapacity(std::size_t capacity) {
    if (capacity == 0 || capacity > 4096) {
      throw std::invalid_argument("HotKeySketch: capacity must be between 1 and 4096, not " + std::to_string(capacity));
    }
    return capacity;
  }
  // Open addressing at load factor <= 1/4 keeps probes short.
  static std::size_t indexSize(std::size_t capacity) { return std::bit_ceil(capacity * 4); }

  static std::uint64_t hashOf(std::string_view key) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, then a finalizer to spread the low bits
    for (const char ch : key) {
      h ^= static_cast<unsigned char>(ch);
      h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
  }

  bool sameKey(const Counter& c, std::uint64_t hash, std::string_view key) const noexcept {
    if (c.hash != hash) return false;
    if (key.size() <= maxKeyBytes_) return c.text == key;
    // A cut key is identified by its hash and its kept prefix.
    return c.text.size() == maxKeyBytes_ + kCutMarker.size() &&
           std::string_view(c.text).starts_with(key.substr(0, maxKeyBytes_));
  }

  void assignText(Counter& c, std::string_view key) const {
    if (key.size() <= maxKeyBytes_) {
      c.text.assign(key);
    } else {
      c.text.assign(key.substr(0, maxKeyBytes_));
      c.text.append(kCutMarker);
    }
  }

  std::uint32_t lookup(std::uint64_t hash, std::string_view key) const noexcept {
    const std::size_t mask = index_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      const std::uint32_t slot = index_[i];
      if (slot == kNone) return kNone;
      if (sameKey(counters_[slot], hash, key)) return slot;
    }
  }

  void index(std::uint64_t hash, std::uint32_t slot) noexcept {
    const std::size_t mask = index_.size() - 1;
    std::size_t i = hash & mask;
    while (index_[i] != kNone) i = (i + 1) & mask;
    index_[i] = slot;
  }

  // Linear-probing deletion by backward shift: no tombstones, so probes stay short forever.
  void unindex(std::uint64_t hash, std::uint32_t slot) noexcept {
    const std::size_t mask = index_.size() - 1;
    std::size_t i = hash & mask;
    while (index_[i] != slot) i = (i + 1) & mask;
    for (std::size_t j = (i + 1) & mask; index_[j] != kNone; j = (j + 1) & mask) {
      const std::size_t home = counters_[index_[j]].hash & mask;
      // Move j into the hole at i unless its home lies cyclically in (i, j].
      const bool homeBetween = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!homeBetween) {
        index_[i] = index_[j];
        i = j;
      }
    }
    index_[i] = kNone;
  }

  // Min-heap by count (unused counters count 0); a count only grows, so it only sinks.
  void siftDown(std::uint32_t pos) noexcept {
    const std::size_t n = heap_.size();
    for (;;) {
      std::size_t smallest = pos;
      const std::size_t left = 2 * std::size_t{pos} + 1;
      const std::size_t right = left + 1;
      if (left < n && counters_[heap_[left]].count < counters_[heap_[smallest]].count) smallest = left;
      if (right < n && counters_[heap_[right]].count < counters_[heap_[smallest]].count) smallest = right;
      if (smallest == pos) break;
      std::swap(heap_[pos], heap_[smallest]);
      counters_[heap_[pos]].heapPos = pos;
      counters_[heap_[smallest]].heapPos = static_cast<std::uint32_t>(smallest);
      pos = static_cast<std::uint32_t>(smallest);
    }
    counters_[heap_[pos]].heapPos = pos;
  }

  std::size_t maxKeyBytes_;
  std::vector<Counter> counters_;
  std::vector<std::uint32_t> heap_;   // counter slots, smallest count first
  std::vector<std::uint32_t> index_;  // open addressing: hash -> counter slot, kNone when empty
  std::uint64_t total_ = 0;
};

struct HotKeyPolicyOptions {
  double maxWindowShare = 0.25;  // warn when one key holds more than this share of the in-flight records
  std::size_t minInFlight = 64;  // ignore small windows: two records of one key in a window of four is no hot key
  std::chrono::seconds repeatEvery{60};  // at most one warning per key per this interval
};

// Decides whether one key's share of the in-flight window deserves a warning, and words it.
class HotKeyPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  explicit HotKeyPolicy(HotKeyPolicyOptions options = {}, std::ostream* log = nullptr) : options_(options), log_(log) {
    const bool inRange = options_.maxWindowShare > 0 && options_.maxWindowShare <= 1;  // false for NaN too
    if (!inRange) {
      throw std::invalid_argument("HotKeyPolicy: maxWindowShare must be in (0, 1], not " +
                                  std::to_string(options_.maxWindowShare));
    }
  }

  const HotKeyPolicyOptions& options() const noexcept { return options_; }

  bool exceeds(std::size_t recordsOfKey, std::size_t inFlight) const noexcept {
    return inFlight >= options_.minInFlight && inFlight > 0 &&
           static_cast<double>(recordsOfKey) > options_.maxWindowShare * static_cast<double>(inFlight);
  }

  // Returns whether it warned (to the log, when one is set).
  bool check(std::string_view key, std::size_t recordsOfKey, std::size_t inFlight, Clock::time_point now) {
    if (!exceeds(recordsOfKey, inFlight)) return false;
    const std::size_t keyHash = std::hash<std::string_view>{}(key);
    if (warnedBefore_ && keyHash == lastWarnedHash_ && now - lastWarnedAt_ < options_.repeatEvery) return false;
    warnedBefore_ = true;
    lastWarnedHash_ = keyHash;
    lastWarnedAt_ = now;
    ++warnings_;
    if (log_ != nullptr) *log_ << warning(key, recordsOfKey, inFlight) << '\n';
    return true;
  }

  std::uint64_t warnings() const noexcept { return warnings_; }

  std::string warning(std::string_view key, std::size_t recordsOfKey, std::size_t inFlight) const {
    const auto percent = [](double share) { return std::to_string(static_cast<long long>(share * 100 + 0.5)) + "%"; };
    return "asyncstate: WARNING: hot key '" + std::string(key) + "' holds " + std::to_string(recordsOfKey) + " of " +
           std::to_string(inFlight) + " in-flight records (" +
           percent(static_cast<double>(recordsOfKey) / static_cast<double>(inFlight)) + ", limit " +
           percent(options_.maxWindowShare) +
           "): records of one key run one at a time, so this key serializes the window. Pre-aggregate its "
           "records before the keyed function (a local combiner or window), or salt the key (key#0..key#n-1, "
           "merged downstream).";
  }

 private:
  HotKeyPolicyOptions options_;
  std::ostream* log_;
  bool warnedBefore_ = false;
  std::size_t lastWarnedHash_ = 0;
  Clock::time_point lastWarnedAt_;
  std::uint64_t warnings_ = 0;
};

// What the controller calls on its hot path; everything is bounded and allocation-free
// in steady state. Single-threaded: call it from the task thread that owns the controller.
class HotKeyMonitor {
 public:
  using Clock = HotKeyPolicy::Clock;

  explicit HotKeyMonitor(HotKeyPolicyOptions options = {}, std::ostream* log = nullptr, std::size_t capacity = 16,
                         std::size_t maxKeyBytes = 64)
      : waiting_(capacity, maxKeyBytes),
        blocked_(capacity, maxKeyBytes),
        policy_(options, log),
        maxKeyBytes_(maxKeyBytes) {
    hottestKey_.reserve(maxKeyBytes);
  }

  // A record of `key` was admitted to wait behind the key's running record; the key now
  // has `recordsOfKey` records in the window of `inFlight`. Returns whether it warned.
  bool recordWaiting(std::string_view key, std::size_t recordsOfKey, std::size_t inFlight,
                     Clock::time_point now = Clock::now()) {
    waiting_.add(key);
    noteShare(key, recordsOfKey, inFlight);
    return policy_.check(key, recordsOfKey, inFlight, now);
  }

  // A record of `key` that waited `blockedFor` started; the key keeps `recordsOfKey` records.
  void recordUnblocked(std::string_view key, std::chrono::nanoseconds blockedFor, std::size_t recordsOfKey,
                       std::size_t inFlight) {
    blocked_.add(key, static_cast<std::uint64_t>(std::max<std::int64_t>(blockedFor.count() / 1000, 0)));
    noteShare(key, recordsOfKey, inFlight);
  }

  const HotKeySketch& waitingRecords() const noexcept { return waiting_; }
  const HotKeySketch& blockedMicros() const noexcept { return blocked_; }
  const HotKeyPolicy& policy() const noexcept { return policy_; }

  // The key that last held the largest share of the window, and that share (0 when none).
  const std::string& hottestKey() const noexcept { return hottestKey_; }
  double hottestShare() const noexcept {
    return hottestInFlight_ == 0 ? 0.0 : static_cast<double>(hottestRecords_) / static_cast<double>(hottestInFlight_);
  }

  void decay() noexcept {
    waiting_.decay();
    blocked_.decay();
  }

 private:
  void noteShare(std::string_view key, std::size_t recordsOfKey, std::size_t inFlight) {
    const std::string_view kept = key.substr(0, std::min(key.size(), maxKeyBytes_));
    const bool same = std::string_view(hottestKey_) == kept;
    // Compares recordsOfKey / inFlight with the hottest share without dividing.
    if (same || recordsOfKey * std::max<std::size_t>(hottestInFlight_, 1) >
                    hottestRecords_ * std::max<std::size_t>(inFlight, 1)) {
      if (!same) hottestKey_.assign(kept);
      hottestRecords_ = recordsOfKey;
      hottestInFlight_ = inFlight;
    }
  }

  HotKeySketch waiting_;
  HotKeySketch blocked_;
  HotKeyPolicy policy_;
  std::size_t maxKeyBytes_;
  std::string hottestKey_;  // cut to maxKeyBytes_, so assigning it never allocates
  std::size_t hottestRecords_ = 0;
  std::size_t hottestInFlight_ = 0;
};

}  // namespace asyncstate
