#pragma once
// Per-key order: which keys have a record in flight, and the records waiting behind
// each in arrival order. An open-addressing table keyed by the hash of the key bytes;
// waiting records are linked through themselves. Once the table has grown to the number
// of distinct keys in flight, admitting and finishing a record allocates nothing.

#include <asyncstate/detail/runtime.hpp>

#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

namespace asyncstate::detail {

template <class = void>
class BasicKeyAccounting {
 public:
  // True if `record` now holds its key (start it); false if it waits behind the key's
  // earlier records and will be handed out by release().
  bool acquire(RecordContext* record) {
    if ((held_ + 1) * 2 > slots_.size()) grow();
    Slot& slot = slots_[find(record->keyBytes(), record->keyHash())];
    if (slot.holder == nullptr) {
      slot = Slot{record, nullptr, nullptr, record->keyHash()};
      ++held_;
      return true;
    }
    record->setNextInLine(nullptr);
    if (slot.lastWaiting == nullptr) {
      slot.firstWaiting = record;
      ++blockedKeys_;
    } else {
      slot.lastWaiting->setNextInLine(record);
    }
    slot.lastWaiting = record;
    ++slot.waiting;
    ++blockedRecords_;
    return false;
  }

  // `holder` finished: returns the key's next record, which now holds the key, or null
  // when nobody waits (the key is free).
  RecordContext* release(RecordContext* holder) {
    std::size_t index = find(holder->keyBytes(), holder->keyHash());
    Slot& slot = slots_[index];
    RecordContext* next = slot.firstWaiting;
    if (next == nullptr) {
      erase(index);
      --held_;
      return nullptr;
    }
    slot.holder = next;
    --slot.waiting;
    slot.firstWaiting = next->nextInLine();
    next->setNextInLine(nullptr);
    if (slot.firstWaiting == nullptr) {
      slot.lastWaiting = nullptr;
      --blockedKeys_;
    }
    --blockedRecords_;
    return next;
  }

  // Records of the key in flight: its holder and those waiting behind it (0: key free).
  std::size_t recordsOf(std::string_view keyBytes, std::size_t hash) const {
    if (slots_.empty()) return 0;
    const Slot& slot = slots_[find(keyBytes, hash)];
    return slot.holder == nullptr ? 0 : slot.waiting + 1;
  }

  bool isHeld(std::string_view keyBytes, std::size_t hash) const {
    return !slots_.empty() && slots_[find(keyBytes, hash)].holder != nullptr;
  }

  // Removes every waiting record (a controller going away): fn(record) for each.
  template <class F>
  void dropWaiting(F&& fn) {
    for (Slot& slot : slots_) {
      for (RecordContext* r = std::exchange(slot.firstWaiting, nullptr); r != nullptr;) {
        RecordContext* next = r->nextInLine();
        --blockedRecords_;
        fn(r);
        r = next;
      }
      if (slot.lastWaiting != nullptr) --blockedKeys_;
      slot.lastWaiting = nullptr;
      slot.waiting = 0;
    }
  }

  std::size_t heldKeys() const noexcept { return held_; }
  std::size_t blockedRecords() const noexcept { return blockedRecords_; }
  std::size_t blockedKeys() const noexcept { return blockedKeys_; }

 private:
  struct Slot {
    RecordContext* holder = nullptr;  // null: empty slot
    RecordContext* firstWaiting = nullptr;
    RecordContext* lastWaiting = nullptr;
    std::size_t hash = 0;
    std::size_t waiting = 0;
  };

  std::size_t mask() const noexcept { return slots_.size() - 1; }

  // The key's slot, or the empty slot where it would go (linear probing).
  std::size_t find(std::string_view keyBytes, std::size_t hash) const {
    for (std::size_t i = hash & mask();; i = (i + 1) & mask()) {
      const Slot& slot = slots_[i];
      if (slot.holder == nullptr || (slot.hash == hash && slot.holder->keyBytes() == keyBytes)) return i;
    }
  }

  // Backward-shift deletion: later entries of the probe run move up, so lookups need
  // no tombstones and the table never degrades.
  void erase(std::size_t hole) {
    for (std::size_t next = (hole + 1) & mask(); slots_[next].holder != nullptr; next = (next + 1) & mask()) {
      const std::size_t home = slots_[next].hash & mask();
      const bool homeAfterHole = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
      if (homeAfterHole) continue;
      slots_[hole] = slots_[next];
      hole = next;
    }
    slots_[hole] = Slot{};
  }

  void grow() {
    std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(slots_.empty() ? 64 : slots_.size() * 2));
    for (const Slot& slot : old) {
      if (slot.holder != nullptr) slots_[find(slot.holder->keyBytes(), slot.hash)] = slot;
    }
  }

  std::vector<Slot> slots_;
  std::size_t held_ = 0;
  std::size_t blockedRecords_ = 0;
  std::size_t blockedKeys_ = 0;
};
using KeyAccounting = BasicKeyAccounting<>;  // a template so its members compile only where used (include cost)

}  // namespace asyncstate::detail
