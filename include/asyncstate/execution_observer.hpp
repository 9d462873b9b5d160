#pragma once
// ExecutionObserver: where the controller and the runner report events as they happen,
// for a metrics system (JobMetrics implements it) or an engine's own. Set it as
// ControllerOptions::observer (RunnerOptions::controller.observer for a runner); null,
// the default, costs one pointer test per batch, checkpoint, restore and watermark, and
// nothing per record. Callbacks run on the task thread and must not throw.
//
// Backend round trips are timed only for an observer whose measuresRoundTrips() is
// true: that costs two clock reads per batch and a table entry per request in flight.

#include <asyncstate/state_backend.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace asyncstate {

// What sent a batch to the backend: it was full, its buffer timeout expired, or someone
// had to wait for its answers (a drain, sync access, the in-flight limit).
enum class BatchReason : std::uint8_t { Size, Timeout, Drain };

class ExecutionObserver {
 public:
  virtual ~ExecutionObserver() = default;

  // --- the controller ---
  virtual void batchSent(std::size_t /*requests*/, BatchReason /*reason*/) {}
  // Asked once, when the controller is constructed.
  virtual bool measuresRoundTrips() const { return false; }
  // From sending a batch until its last request was answered (by the controller's clock).
  virtual void backendRoundTrip(std::chrono::nanoseconds /*duration*/) {}

  // --- the runner (durations by the controller's clock) ---
  // Draining in-flight work included.
  virtual void checkpointTaken(std::chrono::nanoseconds /*duration*/, const Savepoint& /*checkpoint*/) {}
  virtual void restored(std::chrono::nanoseconds /*duration*/, const Savepoint& /*checkpoint*/) {}
  // A watermark was emitted (in the job's event-time unit; the end-of-input watermark is
  // the largest int64) after waiting `waitedForInFlight` for the records before it.
  virtual void watermarkEmitted(std::int64_t /*watermark*/, std::chrono::nanoseconds /*waitedForInFlight*/) {}
};

namespace detail {

// Times batches from send to last answer: the controller tells it which tickets a batch
// carries and which ticket was answered. A ticket names a slot of the controller's
// TicketTable in its low 32 bits (ticket_table.hpp), so the batch a ticket went in is
// kept per slot, and batches in order of sending: no hashing per request.
template <class = void>
class BasicRoundTripTimer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  void sent(const std::vector<StateRequest>& batch, TimePoint now) {
    if (batch.empty()) return;
    const std::uint64_t id = firstBatch_ + batches_.size();
    batches_.push_back(Batch{now, batch.size()});
    ++inFlight_;
    for (const StateRequest& request : batch) {
      const auto slot = static_cast<std::uint32_t>(request.ticket);
      if (slot >= sentIn_.size()) sentIn_.resize(std::size_t{slot} + 1);
      sentIn_[slot] = Sent{request.ticket, id, true};
    }
  }

  // The batch's round trip when `ticket` was the last of its batch to be answered.
  std::optional<std::chrono::nanoseconds> answered(std::uint64_t ticket, TimePoint now) {
    const auto slot = static_cast<std::uint32_t>(ticket);
    // Not timed: sent before observing, unknown, or answered already.
    if (slot >= sentIn_.size() || !sentIn_[slot].timed || sentIn_[slot].ticket != ticket) return std::nullopt;
    sentIn_[slot].timed = false;
    Batch& batch = batches_[sentIn_[slot].batch - firstBatch_];
    if (--batch.unanswered > 0) return std::nullopt;
    const auto duration = std::chrono::duration_cast<std::chrono::nanoseconds>(now - batch.sentAt);
    --inFlight_;
    dropAnsweredBatches();
    return duration;
  }

  std::size_t batchesInFlight() const noexcept { return inFlight_; }

 private:
  struct Batch {
    TimePoint sentAt;
    std::size_t unanswered = 0;
  };
  struct Sent {
    std::uint64_t ticket = 0;
    std::uint64_t batch = 0;
    bool timed = false;
  };

  // Batches finish out of order; the answered ones at the front go, in amortised O(1).
  void dropAnsweredBatches() {
    while (head_ < batches_.size() && batches_[head_].unanswered == 0) ++head_;
    if (head_ == batches_.size() || head_ * 2 >= batches_.size()) {
      batches_.erase(batches_.begin(), batches_.begin() + static_cast<std::ptrdiff_t>(head_));
      firstBatch_ += head_;
      head_ = 0;
    }
  }

  std::vector<Batch> batches_;  // batch firstBatch_ + i at i; those before head_ are answered
  std::uint64_t firstBatch_ = 0;
  std::size_t head_ = 0;
  std::size_t inFlight_ = 0;
  std::vector<Sent> sentIn_;  // by ticket slot
};
using RoundTripTimer = BasicRoundTripTimer<>;  // a template so its members compile only where used (include cost)

}  // namespace detail
}  // namespace asyncstate
