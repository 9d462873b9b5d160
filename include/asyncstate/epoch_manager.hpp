#pragma once
// Epochs, as Flink's async state has them (FLIP-425): non-record inputs -- a watermark, a
// watermark status change -- cut the stream of records into epochs. A record belongs to
// the epoch that is open when it arrives (work a record starts belongs to the record's
// epoch). A non-record closes the open epoch and gives it two actions:
//   trigger action  runs once every record of the epoch (and of every earlier epoch)
//                   finished; records it starts (a watermark's timers) join the epoch. It
//                   returns whether to run again once those finished (timers that
//                   registered further due timers).
//   final action    runs once everything the trigger action started finished (emitting
//                   the watermark).
// Epochs finish in order and each action runs exactly once per epoch. Whether records
// after a non-record may run before its epoch finished is the caller's choice (EpochMode);
// the controller orchestrates both and runs the actions from its pump loop, never nested
// inside a record.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <utility>

namespace asyncstate {

enum class EpochMode : std::uint8_t {
  // Input after a non-record waits until its epoch finished: every record after a
  // watermark sees it, and outputs do not depend on timing. The default, as in Flink.
  Serial,
  // Records after a non-record run while its epoch is still finishing; the epochs'
  // actions still run in order, each once. More overlap, but a record may run before the
  // watermark before it took effect (see docs/runtime.md#epochs).
  Parallel,
};

using EpochTriggerAction = std::function<bool()>;
using EpochFinalAction = std::function<void()>;

template <class = void>
class BasicEpochManager {
 public:
  enum class Status : std::uint8_t {
    Open,        // records arriving now join it
    Closed,      // its non-record arrived; waiting for its records
    Triggering,  // its trigger action ran; waiting for the records that started
    Finished,    // its final action ran
  };

  class Epoch {
   public:
    explicit Epoch(std::uint64_t id) : id_(id) {}
    std::uint64_t id() const noexcept { return id_; }
    std::size_t ongoingRecords() const noexcept { return ongoing_; }
    Status status() const noexcept { return status_; }

   private:
    friend class BasicEpochManager;
    std::uint64_t id_;
    std::size_t ongoing_ = 0;
    Status status_ = Status::Open;
    bool triggerAgain_ = false;
    EpochTriggerAction trigger_;
    EpochFinalAction final_;
  };

  BasicEpochManager() : active_(std::make_unique<Epoch>(nextId_++)) {}
  BasicEpochManager(const BasicEpochManager&) = delete;
  BasicEpochManager& operator=(const BasicEpochManager&) = delete;

  // A record arrives: it joins the open epoch -- or, while a trigger action runs, the
  // epoch of that action.
  Epoch* onRecord() noexcept { return join(triggering_ != nullptr ? triggering_ : active_.get()); }

  // Work started from inside a record joins that record's epoch.
  static Epoch* join(Epoch* epoch) noexcept {
    ++epoch->ongoing_;
    return epoch;
  }

  // One record of `epoch` finished. Actions run from advance(), at a point the caller
  // chooses (not nested in whatever finished the record).
  static void completeOneRecord(Epoch* epoch) noexcept { --epoch->ongoing_; }

  // A non-record arrives: the open epoch closes with these actions (either may be empty)
  // and a new one opens.
  void onNonRecord(EpochTriggerAction trigger, EpochFinalAction final) {
    auto next = std::make_unique<Epoch>(nextId_);
    active_->trigger_ = std::move(trigger);
    active_->final_ = std::move(final);
    active_->status_ = Status::Closed;
    closed_.push_back(std::exchange(active_, std::move(next)));
    ++nextId_;
  }

  // Runs the actions that are due, oldest epoch first. Returns whether any ran. An
  // exception from an action propagates; the action counts as run (it never runs twice)
  // and the next call goes on from there.
  bool advance() {
    bool ran = false;
    while (!closed_.empty()) {
      Epoch& epoch = *closed_.front();
      if (epoch.ongoing_ > 0) break;
      if (epoch.status_ == Status::Closed || epoch.triggerAgain_) {
        epoch.status_ = Status::Triggering;
        epoch.triggerAgain_ = false;
        ran = true;
        if (epoch.trigger_) {
          bool again = false;
          {
            TriggeringScope scope(*this, epoch);
            again = epoch.trigger_();
          }
          // Only work it started can make running it again worthwhile.
          epoch.triggerAgain_ = again && epoch.ongoing_ > 0;
        }
        if (epoch.ongoing_ > 0) break;
      }
      std::unique_ptr<Epoch> finished = std::move(closed_.front());
      closed_.pop_front();
      finished->status_ = Status::Finished;
      ran = true;
      if (finished->final_) finished->final_();
    }
    return ran;
  }

  // Closed epochs whose final action has not run yet.
  std::size_t pendingEpochs() const noexcept { return closed_.size(); }
  bool hasPending() const noexcept { return !closed_.empty(); }
  const Epoch& active() const noexcept { return *active_; }
  // The oldest closed epoch (null if none).
  const Epoch* oldestPending() const noexcept { return closed_.empty() ? nullptr : closed_.front().get(); }

 private:
  class TriggeringScope {
   public:
    TriggeringScope(BasicEpochManager& manager, Epoch& epoch) : manager_(manager), saved_(manager.triggering_) {
      manager_.triggering_ = &epoch;
    }
    ~TriggeringScope() { manager_.triggering_ = saved_; }
    TriggeringScope(const TriggeringScope&) = delete;
    TriggeringScope& operator=(const TriggeringScope&) = delete;

   private:
    BasicEpochManager& manager_;
    Epoch* saved_;
  };

  std::uint64_t nextId_ = 0;
  std::unique_ptr<Epoch> active_;
  std::deque<std::unique_ptr<Epoch>> closed_;
  Epoch* triggering_ = nullptr;
};
using EpochManager = BasicEpochManager<>;  // a template so its members compile only where used (include cost)

}  // namespace asyncstate
