#pragma once
// ExecutionObserver: where the controller and the runner report events as they happen,
// for a metrics system (JobMetrics implements it) or an engine's own. Set it as
// ControllerOptions::observer (RunnerOptions::controller.observer for a runner); null,
// the default, costs one pointer test per batch, checkpoint, restore and watermark, and
// nothing per record. Callbacks run on the task thread and must not throw.
//
// Backend round trips are timed only for an observer whose measuresRoundTrips() is
// true: that costs two clock reads per batch and a hash-map entry per request in flight.

#include <asyncstate/state_backend.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
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
// carries and which ticket was answered.
class RoundTripTimer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  void sent(const std::vector<StateRequest>& batch, TimePoint now) {
    if (batch.empty()) return;
    const std::uint64_t id = nextBatch_++;
    batches_.emplace(id, Batch{now, batch.size()});
    for (const StateRequest& request : batch) batchOf_[request.ticket] = id;
  }

  // The batch's round trip when `ticket` was the last of its batch to be answered.
  std::optional<std::chrono::nanoseconds> answered(std::uint64_t ticket, TimePoint now) {
    const auto request = batchOf_.find(ticket);
    if (request == batchOf_.end()) return std::nullopt;  // not timed (sent before observing, or unknown)
    const auto batch = batches_.find(request->second);
    batchOf_.erase(request);
    if (batch == batches_.end() || --batch->second.unanswered > 0) return std::nullopt;
    const auto duration = std::chrono::duration_cast<std::chrono::nanoseconds>(now - batch->second.sentAt);
    batches_.erase(batch);
    return duration;
  }

  std::size_t batchesInFlight() const noexcept { return batches_.size(); }

 private:
  struct Batch {
    TimePoint sentAt;
    std::size_t unanswered = 0;
  };
  std::uint64_t nextBatch_ = 0;
  std::unordered_map<std::uint64_t, Batch> batches_;
  std::unordered_map<std::uint64_t, std::uint64_t> batchOf_;  // ticket -> batch
};

}  // namespace detail
}  // namespace asyncstate
