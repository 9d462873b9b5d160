#pragma once
// The requests sent to a backend and not yet answered. A ticket names a slot and its
// generation, so a stale or repeated answer is recognised instead of completing the
// wrong future. Each slot holds the typed answer for its future (the core and decoder
// of a StateFuture<R>) and where the request came from (record, state, operation).

#include <asyncstate/detail/config.hpp>
#include <asyncstate/detail/future_core.hpp>
#include <asyncstate/detail/runtime.hpp>
#include <asyncstate/error.hpp>
#include <asyncstate/state_backend.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace asyncstate::detail {

// Turns the backend's answer into the future's value; may throw (corrupt data).
template <class R>
using Decoder = R (*)(StateResult&, const void* context);

struct RequestOrigin {
  RecordContext* record = nullptr;         // holds a reference until the answer is settled
  const std::string* stateName = nullptr;  // null once the state may be gone
  const char* operation = nullptr;
};

template <class = void>
class BasicTicketTable {
 public:
  // Takes a reference on origin.record; returns the ticket to put on the request.
  template <class R>
  std::uint64_t add(Core<Stored<R>>* core, Decoder<R> decode, const void* context, RequestOrigin origin) {
    static_assert(sizeof(Answer<R>) <= kAnswerBytes && alignof(Answer<R>) <= alignof(std::max_align_t));
    const std::uint32_t index = takeFreeSlot();
    Slot& slot = slots_[index];
    slot.core = core;
    ::new (static_cast<void*>(slot.answer)) Answer<R>{decode, context};
    slot.settle = &settleAnswer<R>;
    slot.origin = origin;
    origin.record->retain();
    ++outstanding_;
    return (std::uint64_t{slot.generation} << 32) | index;
  }

  // Completes the future of `ticket` (or fails it: backend error, or an answer that
  // does not decode) under its record's scope, then drops the record's reference.
  // False for a ticket that is unknown or already settled.
  bool settle(Runtime& runtime, std::uint64_t ticket, StateResult* result, std::exception_ptr error) {
    const auto index = static_cast<std::uint32_t>(ticket);
    const auto generation = static_cast<std::uint32_t>(ticket >> 32);
    if (index >= slots_.size() || slots_[index].generation != generation || slots_[index].settle == nullptr) {
      return false;
    }
    Slot slot = slots_[index];  // settling may add tickets and grow the table
    freeSlot(index);
    {
      RecordScope scope(runtime, slot.origin.record);
      slot.settle(slot, result, std::move(error));
    }
    slot.origin.record->release();
    return true;
  }

  // Starts loading what settling `ticket` touches first: its future's core (header and
  // value) and its record. Answers come a whole batch after their requests were made,
  // when those are out of cache; the controller calls this one answer ahead.
  void prefetch(std::uint64_t ticket) const noexcept {
    const auto index = static_cast<std::uint32_t>(ticket);
    if (index >= slots_.size() || slots_[index].core == nullptr) return;  // a ticket nobody issued
    const Slot& slot = slots_[index];
    ASYNCSTATE_PREFETCH(slot.core);
    ASYNCSTATE_PREFETCH(reinterpret_cast<const unsigned char*>(slot.core) + kCacheLine);
    ASYNCSTATE_PREFETCH(slot.origin.record);
  }

  // Fails every outstanding future with `error` (a controller going away). The states
  // that sent the requests may be gone already, so their names are not used.
  void failAll(Runtime& runtime, const std::exception_ptr& error) {
    for (std::uint32_t index = 0; index < slots_.size(); ++index) {
      if (slots_[index].settle != nullptr) {
        slots_[index].origin.stateName = nullptr;
        settle(runtime, (std::uint64_t{slots_[index].generation} << 32) | index, nullptr, error);
      }
    }
  }

  std::size_t outstanding() const noexcept { return outstanding_; }

 private:
  template <class R>
  struct Answer {
    Decoder<R> decode;
    const void* context;
  };
  static constexpr std::size_t kAnswerBytes = 2 * sizeof(void*);
  static constexpr std::size_t kCacheLine = 64;

  struct Slot {
    CoreBase* core = nullptr;  // a Core<Stored<R>> for the R of `settle`
    alignas(std::max_align_t) unsigned char answer[kAnswerBytes];
    void (*settle)(Slot&, StateResult*, std::exception_ptr) = nullptr;  // null: free slot
    RequestOrigin origin;
    std::uint32_t generation = 0;
    std::uint32_t nextFree = 0;
  };

  template <class R>
  static void settleAnswer(Slot& slot, StateResult* result, std::exception_ptr error) {
    // The slot's bytes hold the Answer<R> that submit() placed there; only this slot's own
    // settle function, instantiated for the same R, reads them back.
    // NOLINTNEXTLINE(bugprone-casting-through-void)
    const Answer<R> answer = *std::launder(static_cast<Answer<R>*>(static_cast<void*>(slot.answer)));
    Producer<Stored<R>> producer(static_cast<Core<Stored<R>>*>(slot.core));
    if (!error) {
      // Decoded before the producer completes: a continuation's own failure is not a decoding failure.
      std::optional<Stored<R>> value;
      try {
        if constexpr (std::is_void_v<R>) {
          answer.decode(*result, answer.context);
          value.emplace();
        } else {
          value.emplace(answer.decode(*result, answer.context));
        }
      } catch (...) {
        error = std::current_exception();
      }
      if (value) {
        producer.setValue(std::move(*value));
        return;
      }
    }
    const RequestOrigin& origin = slot.origin;
    producer.setError(AsyncError(std::move(error), origin.stateName != nullptr ? *origin.stateName : std::string(),
                                 origin.record->keyText(), origin.operation));
  }

  std::uint32_t takeFreeSlot() {
    if (freeSlot_ != kNoSlot) {
      const std::uint32_t index = freeSlot_;
      freeSlot_ = slots_[index].nextFree;
      return index;
    }
    slots_.emplace_back();
    return static_cast<std::uint32_t>(slots_.size() - 1);
  }

  void freeSlot(std::uint32_t index) {
    Slot& slot = slots_[index];
    slot.settle = nullptr;
    ++slot.generation;
    slot.nextFree = freeSlot_;
    freeSlot_ = index;
    --outstanding_;
  }

  static constexpr std::uint32_t kNoSlot = 0xFFFFFFFFu;
  std::vector<Slot> slots_;
  std::uint32_t freeSlot_ = kNoSlot;
  std::size_t outstanding_ = 0;
};
using TicketTable = BasicTicketTable<>;  // a template so its members compile only where used (include cost)

}  // namespace asyncstate::detail
