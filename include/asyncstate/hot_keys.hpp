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
//
// Keys are tracked by their encoded bytes and decoded into text only when reported (top(),
// hottestKey(), a warning): the controller pays no decoding for records that merely wait.

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asyncstate {

// Turns a key's encoded bytes into its text; null: the key given is its text already.
using KeyText = std::string (*)(std::string_view keyBytes);

namespace detail {

// A key as the sketches keep it: its bytes, cut to a maximum ("..." marks a cut), and how
// to read them as text when reported. A cut key cannot be decoded from what is kept, so
// its text is made when it is kept (long keys only).
class KeptKey {
 public:
  static constexpr std::string_view kCutMarker = "...";

  void reserve(std::size_t maxBytes) { bytes_.reserve(maxBytes + kCutMarker.size()); }

  void assign(std::string_view key, KeyText describe, std::size_t maxBytes) {
    if (key.size() <= maxBytes) {
      bytes_.assign(key);
      describe_ = describe;
      cut_ = false;
      decodedCut_ = false;
      return;
    }
    bytes_.assign(key.substr(0, maxBytes));
    bytes_.append(kCutMarker);
    describe_ = nullptr;
    cut_ = true;
    decodedCut_ = describe != nullptr;
    if (decodedCut_) cutText_ = cutTo(describe(key), maxBytes);
  }

  // Whether `key` is the key kept here (a cut key: by its kept prefix).
  bool holds(std::string_view key, std::size_t maxBytes) const noexcept {
    if (key.size() <= maxBytes) return !cut_ && bytes_ == key;
    return cut_ && std::string_view(bytes_).starts_with(key.substr(0, maxBytes));
  }

  std::string text() const {
    if (decodedCut_) return cutText_;
    return describe_ == nullptr ? bytes_ : describe_(bytes_);
  }

 private:
  static std::string cutTo(std::string text, std::size_t maxBytes) {
    if (text.size() <= maxBytes) return text;
    text.resize(maxBytes);
    text.append(kCutMarker);
    return text;
  }

  std::string bytes_;
  KeyText describe_ = nullptr;
  bool cut_ = false;
  bool decodedCut_ = false;  // a cut key's text, decoded when it was kept, is in cutText_
  std::string cutText_;
};

}  // namespace detail

struct HotKey {
  std::string key;          // the key's text, cut to the sketch's maxKeyBytes ("..." marks a cut)
  std::uint64_t count = 0;  // estimated weight: true weight <= count <= true weight + error
  std::uint64_t error = 0;  // how much of count may belong to keys this counter replaced
};

template <class = void>
class BasicHotKeySketch {
 public:
  explicit BasicHotKeySketch(std::size_t capacity = 16, std::size_t maxKeyBytes = 64)
      : maxKeyBytes_(maxKeyBytes),
        counters_(validCapacity(capacity)),
        heap_(capacity),
        index_(indexSize(capacity), kNone) {
    for (std::size_t i = 0; i < counters_.size(); ++i) {
      counters_[i].key.reserve(maxKeyBytes_);
      counters_[i].heapPos = static_cast<std::uint32_t>(i);
      heap_[i] = static_cast<std::uint32_t>(i);
    }
  }

  std::size_t capacity() const noexcept { return counters_.size(); }
  std::uint64_t totalWeight() const noexcept { return total_; }

  // Adds `weight` to `key` (its encoded bytes, read as text by `describe` when reported;
  // null: `key` is text). Constant work for a fixed capacity: one hash, an index probe and
  // a heap sift of depth log2(capacity); never an allocation nor a decoding for a key of
  // at most maxKeyBytes (the key buffers are reserved at construction).
  void add(std::string_view key, std::uint64_t weight = 1, KeyText describe = nullptr) {
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
    c.key.assign(key, describe, maxKeyBytes_);
    index(hash, slot);
    siftDown(0);
  }

  // The tracked keys, heaviest first (allocates: for reporting, not the hot path).
  std::vector<HotKey> top(std::size_t n = static_cast<std::size_t>(-1)) const {
    std::vector<HotKey> keys;
    for (const Counter& c : counters_) {
      if (c.used) keys.push_back(HotKey{c.key.text(), c.count, c.error});
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

  struct Counter {
    std::uint64_t hash = 0;
    std::uint64_t count = 0;
    std::uint64_t error = 0;
    detail::KeptKey key;
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

  // A cut key is identified by its hash and its kept prefix.
  bool sameKey(const Counter& c, std::uint64_t hash, std::string_view key) const noexcept {
    return c.hash == hash && c.key.holds(key, maxKeyBytes_);
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
using HotKeySketch = BasicHotKeySketch<>;  // a template so its members compile only where used (include cost)

struct HotKeyPolicyOptions {
  double maxWindowShare = 0.25;  // warn when one key holds more than this share of the in-flight records
  std::size_t minInFlight = 64;  // ignore small windows: two records of one key in a window of four is no hot key
  std::chrono::seconds repeatEvery{60};  // at most one warning per key per this interval
};

// Decides whether one key's share of the in-flight window deserves a warning, and words it.
template <class = void>
class BasicHotKeyPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BasicHotKeyPolicy(HotKeyPolicyOptions options = {}, std::ostream* log = nullptr)
      : options_(options), log_(log) {
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

  // Returns whether it warned (to the log, when one is set). `key` is read as text by
  // `describe` (null: it is text) only to word a warning.
  bool check(std::string_view key, std::size_t recordsOfKey, std::size_t inFlight, Clock::time_point now,
             KeyText describe = nullptr) {
    if (!exceeds(recordsOfKey, inFlight)) return false;
    const std::size_t keyHash = std::hash<std::string_view>{}(key);
    if (warnedBefore_ && keyHash == lastWarnedHash_ && now - lastWarnedAt_ < options_.repeatEvery) return false;
    warnedBefore_ = true;
    lastWarnedHash_ = keyHash;
    lastWarnedAt_ = now;
    ++warnings_;
    if (log_ != nullptr) {
      *log_ << warning(describe == nullptr ? std::string(key) : describe(key), recordsOfKey, inFlight) << '\n';
    }
    return true;
  }

  std::uint64_t warnings() const noexcept { return warnings_; }

  std::string warning(std::string_view key, std::size_t recordsOfKey, std::size_t inFlight) const {
    const auto percent = [](double share) {
      char text[16];
      std::snprintf(text, sizeof text, "%.0f%%", share * 100);
      return std::string(text);
    };
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
using HotKeyPolicy = BasicHotKeyPolicy<>;  // a template so its members compile only where used (include cost)

// What the controller calls on its hot path; everything is bounded and allocation-free
// in steady state. Single-threaded: call it from the task thread that owns the controller.
template <class = void>
class BasicHotKeyMonitor {
 public:
  using Clock = HotKeyPolicy::Clock;

  explicit BasicHotKeyMonitor(HotKeyPolicyOptions options = {}, std::ostream* log = nullptr, std::size_t capacity = 16,
                              std::size_t maxKeyBytes = 64)
      : waiting_(capacity, maxKeyBytes),
        blocked_(capacity, maxKeyBytes),
        policy_(options, log),
        maxKeyBytes_(maxKeyBytes) {
    hottest_.reserve(maxKeyBytes);
  }

  // A record of `key` was admitted to wait behind the key's running record; the key now
  // has `recordsOfKey` records in the window of `inFlight`. Returns whether it warned.
  bool recordWaiting(std::string_view key, std::size_t recordsOfKey, std::size_t inFlight,
                     Clock::time_point now = Clock::now()) {
    return recordWaiting(key, nullptr, recordsOfKey, inFlight, now);
  }

  // As above, for a key's encoded bytes: `describe` reads them as text only when the key
  // is reported or warned about.
  bool recordWaiting(std::string_view keyBytes, KeyText describe, std::size_t recordsOfKey, std::size_t inFlight,
                     Clock::time_point now) {
    waiting_.add(keyBytes, 1, describe);
    noteShare(keyBytes, describe, recordsOfKey, inFlight);
    return policy_.check(keyBytes, recordsOfKey, inFlight, now, describe);
  }

  // A record of `key` that waited `blockedFor` started; the key keeps `recordsOfKey` records.
  void recordUnblocked(std::string_view key, std::chrono::nanoseconds blockedFor, std::size_t recordsOfKey,
                       std::size_t inFlight, KeyText describe = nullptr) {
    blocked_.add(key, static_cast<std::uint64_t>(std::max<std::int64_t>(blockedFor.count() / 1000, 0)), describe);
    noteShare(key, describe, recordsOfKey, inFlight);
  }

  const HotKeySketch& waitingRecords() const noexcept { return waiting_; }
  const HotKeySketch& blockedMicros() const noexcept { return blocked_; }
  const HotKeyPolicy& policy() const noexcept { return policy_; }

  // The key that last held the largest share of the window (its text, cut to
  // maxKeyBytes; empty when none), and that share (0 when none).
  std::string hottestKey() const { return hottest_.text(); }
  double hottestShare() const noexcept {
    return hottestInFlight_ == 0 ? 0.0 : static_cast<double>(hottestRecords_) / static_cast<double>(hottestInFlight_);
  }

  void decay() noexcept {
    waiting_.decay();
    blocked_.decay();
  }

 private:
  void noteShare(std::string_view key, KeyText describe, std::size_t recordsOfKey, std::size_t inFlight) {
    const bool same = hottestInFlight_ != 0 && hottest_.holds(key, maxKeyBytes_);
    // Compares recordsOfKey / inFlight with the hottest share without dividing.
    if (same || recordsOfKey * std::max<std::size_t>(hottestInFlight_, 1) >
                    hottestRecords_ * std::max<std::size_t>(inFlight, 1)) {
      if (!same) hottest_.assign(key, describe, maxKeyBytes_);
      hottestRecords_ = recordsOfKey;
      hottestInFlight_ = inFlight;
    }
  }

  HotKeySketch waiting_;
  HotKeySketch blocked_;
  HotKeyPolicy policy_;
  std::size_t maxKeyBytes_;
  detail::KeptKey hottest_;  // reserved for maxKeyBytes_, so keeping a key never allocates
  std::size_t hottestRecords_ = 0;
  std::size_t hottestInFlight_ = 0;
};
using HotKeyMonitor = BasicHotKeyMonitor<>;  // a template so its members compile only where used (include cost)

}  // namespace asyncstate
