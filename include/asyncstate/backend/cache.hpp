#pragma once
// CachingBackend: a local LRU cache, sized in bytes, in front of a (remote) backend.
//
// What is cached: Get results (values, list blobs, map entries), including "absent".
// Scans always go to the wrapped backend, which stays authoritative.
//
// Writes go through, and the cache is updated as they are submitted, in batch order:
// Put stores the new value, Delete stores "absent", Append extends a cached blob (or
// forgets an uncached one), Clear forgets every cached entry of the key. A Get that
// follows in the same or a later batch is therefore answered exactly as the wrapped
// backend would answer it after applying the earlier requests in order. A Get that
// misses fills the cache when its answer arrives, unless a write to the same key was
// submitted meanwhile (its answer would be stale then). A failed write forgets the
// key, so the cache never keeps a value the backend does not have. Only states
// registered through this wrapper are cached: a request naming any other id goes
// through untouched, and the wrapped backend answers it (with UnknownStateError when
// the id is unknown there too) instead of the cache answering for a state that does not
// exist.
//
// restore() and rollBackTo() (lightweight checkpoints, forwarded to the wrapped backend)
// replace the wrapped backend's contents behind the cache's back: both empty the cache.
//
// Capacity 0 disables caching and makes describeConfiguration() say so in a line of
// its own starting with "WARNING:", which the controller logs at start.

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/backend/forwarding.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace asyncstate {

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t bytes = 0;  // accounted size of the cached entries
  std::uint64_t entries = 0;
  std::uint64_t capacityBytes = 0;
  double hitRate() const {
    return hits + misses == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(hits + misses);
  }
};

// A class template only so that its code is compiled by the translation units that use it,
// not by every UDF that includes the umbrella header; use it by its plain name below.
template <class = void>
class BasicCachingBackend final : public ForwardingBackend, private CompletionSink {
 public:
  // Bookkeeping per entry (list node, hash node, key copies' headers), so that a
  // cache of many tiny entries does not exceed its budget by far.
  static constexpr std::size_t kEntryOverhead = 96;

  BasicCachingBackend(StateBackend& inner, std::size_t capacityBytes)
      : ForwardingBackend(inner, "cached"), capacity_(capacityBytes) {}

  std::string describeConfiguration() const override {
    if (capacity_ == 0) {
      return "local cache disabled over " + detail::withoutNoCacheWarning(inner().describeConfiguration()) +
             "\nWARNING: local state cache is 0 bytes: every state read goes to " + inner().name() +
             "; give CachingBackend a size";
    }
    return "local LRU cache of " + std::to_string(capacity_) + " bytes over " +
           detail::withoutNoCacheWarning(inner().describeConfiguration());
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    std::vector<StateRequest> forward;
    std::vector<std::pair<std::uint64_t, StateResult>> hits;
    {
      std::lock_guard lock(mutex_);
      forward.reserve(batch.size());
      for (StateRequest& r : batch) {
        if (!registeredHere(r.stateId)) {
          // No owner: its answer neither fills nor changes the cache.
          pending_[nextTicket_] = Pending{&sink, r.ticket, r.type, {}, {}, 0, drops_};
          r.ticket = nextTicket_++;
          forward.push_back(std::move(r));
          continue;
        }
        const std::string owner = ownerKey(r);
        if (r.type == RequestType::Get && capacity_ > 0) {
          if (Entry* e = find(owner, r.userKey)) {
            ++stats_.hits;
            StateResult result;
            result.found = e->found;
            result.value = e->value;
            hits.emplace_back(r.ticket, std::move(result));
            continue;
          }
        }
        if (r.type == RequestType::Get) ++stats_.misses;
        applyWrite(owner, r);
        pending_[nextTicket_] = Pending{&sink, r.ticket, r.type, owner, r.userKey, generationOf(owner, r.type), drops_};
        r.ticket = nextTicket_++;
        forward.push_back(std::move(r));
      }
    }
    for (auto& [ticket, result] : hits) sink.complete(ticket, std::move(result));
    if (!forward.empty()) forwardBatch(std::move(forward), *this);
  }

  void restore(const Savepoint& in) override {
    ForwardingBackend::restore(in);
    dropEverything();
  }

  void rollBackTo(std::uint64_t id) override {
    // Emptied even when the rollback fails midway: some keys may be rolled back already.
    try {
      ForwardingBackend::rollBackTo(id);
    } catch (...) {
      dropEverything();
      throw;
    }
    dropEverything();
  }

  CacheStats cacheStats() const {
    std::lock_guard lock(mutex_);
    CacheStats s = stats_;
    s.capacityBytes = capacity_;
    return s;
  }

 private:
  struct Entry {
    bool found = false;
    std::string value;
    std::size_t bytes = 0;
    std::list<std::pair<std::string, std::string>>::iterator lru;  // (owner, userKey)
  };
  struct Owner {
    std::unordered_map<std::string, Entry> entries;  // by user key ("" for non-map states)
    std::uint64_t generation = 0;                    // bumped by every write submitted for this key
    int pendingGets = 0;                             // keeps the generation alive while a Get is out
  };
  struct Pending {
    CompletionSink* sink;
    std::uint64_t ticket;
    RequestType type;
    std::string owner;
    std::string userKey;
    std::uint64_t generation;
    std::uint64_t drops;  // dropEverything() calls before it was sent
  };

  // A Get still out when this runs is not cached when it answers: it may have read the
  // contents from before.
  void dropEverything() {
    std::lock_guard lock(mutex_);
    ++drops_;
    owners_.clear();
    lru_.clear();
    stats_.bytes = 0;
    stats_.entries = 0;
  }

  // (state, key): the unit that Clear and the write generation cover.
  static std::string ownerKey(const StateRequest& r) {
    std::string k = std::to_string(r.stateId);
    k += ':';
    k += r.key;
    return k;
  }

  Entry* find(const std::string& owner, const std::string& userKey) {
    auto o = owners_.find(owner);
    if (o == owners_.end()) return nullptr;
    auto e = o->second.entries.find(userKey);
    if (e == o->second.entries.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, e->second.lru);
    return &e->second;
  }

  std::uint64_t generationOf(const std::string& owner, RequestType type) {
    if (type != RequestType::Get) return 0;
    Owner& o = owners_[owner];
    ++o.pendingGets;
    return o.generation;
  }

  void applyWrite(const std::string& owner, const StateRequest& r) {
    if (r.type == RequestType::Get || r.type == RequestType::Scan) return;
    auto it = owners_.find(owner);
    if (it != owners_.end()) ++it->second.generation;
    if (capacity_ == 0) return;
    switch (r.type) {
      case RequestType::Put: store(owner, r.userKey, true, r.value); break;
      case RequestType::Delete: store(owner, r.userKey, false, {}); break;
      case RequestType::Append:
        if (Entry* e = find(owner, "")) {
          std::string value = e->found ? e->value + r.value : r.value;
          store(owner, "", true, std::move(value));
        }
        break;
      case RequestType::Clear: forget(owner); break;
      case RequestType::Get:
      case RequestType::Scan: break;
    }
  }

  void store(const std::string& owner, const std::string& userKey, bool found, std::string value) {
    erase(owner, userKey);
    const std::size_t bytes = owner.size() + userKey.size() + value.size() + kEntryOverhead;
    if (bytes > capacity_) return;
    while (stats_.bytes + bytes > capacity_ && !lru_.empty()) {
      auto [victimOwner, victimUserKey] = lru_.back();
      erase(victimOwner, victimUserKey);
      ++stats_.evictions;
    }
    lru_.emplace_front(owner, userKey);
    owners_[owner].entries[userKey] = Entry{found, std::move(value), bytes, lru_.begin()};
    stats_.bytes += bytes;
    ++stats_.entries;
  }

  void erase(const std::string& owner, const std::string& userKey) {
    auto o = owners_.find(owner);
    if (o == owners_.end()) return;
    auto e = o->second.entries.find(userKey);
    if (e == o->second.entries.end()) return;
    stats_.bytes -= e->second.bytes;
    --stats_.entries;
    lru_.erase(e->second.lru);
    o->second.entries.erase(e);
    dropIfIdle(o);
  }

  void forget(const std::string& owner) {
    auto o = owners_.find(owner);
    if (o == owners_.end()) return;
    for (auto& [userKey, e] : o->second.entries) {
      stats_.bytes -= e.bytes;
      --stats_.entries;
      lru_.erase(e.lru);
    }
    o->second.entries.clear();
    dropIfIdle(o);
  }

  void dropIfIdle(std::unordered_map<std::string, Owner>::iterator o) {
    if (o->second.entries.empty() && o->second.pendingGets == 0) owners_.erase(o);
  }

  // CompletionSink for the wrapped backend (any thread).
  void complete(std::uint64_t ticket, StateResult result) override {
    Pending p;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(ticket);
      if (it == pending_.end()) return;
      p = std::move(it->second);
      pending_.erase(it);
      if (p.type == RequestType::Get) {
        auto o = owners_.find(p.owner);
        const bool unchanged = o != owners_.end() && o->second.generation == p.generation && p.drops == drops_;
        if (o != owners_.end()) --o->second.pendingGets;
        if (unchanged && capacity_ > 0) store(p.owner, p.userKey, result.found, result.value);
        o = owners_.find(p.owner);
        if (o != owners_.end()) dropIfIdle(o);
      }
    }
    p.sink->complete(p.ticket, std::move(result));
  }

  void fail(std::uint64_t ticket, std::exception_ptr error) override {
    Pending p;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(ticket);
      if (it == pending_.end()) return;
      p = std::move(it->second);
      pending_.erase(it);
      auto o = owners_.find(p.owner);
      if (o != owners_.end()) {
        if (p.type == RequestType::Get) {
          --o->second.pendingGets;
        } else {
          ++o->second.generation;
        }
        if (p.type != RequestType::Get && p.type != RequestType::Scan) forget(p.owner);
        o = owners_.find(p.owner);
        if (o != owners_.end()) dropIfIdle(o);
      }
    }
    p.sink->fail(p.ticket, std::move(error));
  }

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Owner> owners_;
  std::list<std::pair<std::string, std::string>> lru_;  // front: most recently used
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::uint64_t nextTicket_ = 1;
  std::uint64_t drops_ = 0;
  CacheStats stats_;
};

using CachingBackend = BasicCachingBackend<>;

}  // namespace asyncstate
