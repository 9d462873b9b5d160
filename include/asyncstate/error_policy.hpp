#pragma once
// What happens to a record whose processing failed: the error policy per record. With no
// policy, every failure goes to ControllerOptions::errorHandler as it happens (fail the
// task, or log and continue). With one, the failures of a record's attempt -- everything
// its processing and continuations reported, first one first -- are collected until the
// attempt's last continuation ran, and then the policy decides the record's fate once:
// fail the task, skip the record, retry it (bounded, with backoff; its key stays blocked
// meanwhile, so later records of the key wait behind it), or hand it with its errors to a
// dead-letter output. Each failure thus reaches exactly one place.
//
// A retry re-runs the record from the start. State writes and outputs of the failed
// attempt are not undone: make the updates of a retried record idempotent (put a value
// computed from the input, not "add one"), or recover from a checkpoint instead.

#include <asyncstate/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace asyncstate {

enum class RecordFailureAction : std::uint8_t {
  FailTask,    // the task fails with the attempt's errors at the next controller call
  Skip,        // the record is dropped; its key's next record runs
  Retry,       // the record runs again after a backoff; its key stays blocked
  DeadLetter,  // the record and its errors go to the dead-letter output; processing continues
};

inline const char* toString(RecordFailureAction action) {
  switch (action) {
    case RecordFailureAction::FailTask: return "fail the task";
    case RecordFailureAction::Skip: return "skip";
    case RecordFailureAction::Retry: return "retry";
    case RecordFailureAction::DeadLetter: return "dead letter";
  }
  return "unknown";
}

// A record whose attempt failed, as the policy and the dead-letter output see it.
class FailedRecord {
 public:
  FailedRecord(const std::vector<AsyncError>& errors, std::uint32_t attempts, std::string keyText,
               std::int64_t timestamp, const void* input, const std::type_info* inputType)
      : errors_(errors),
        attempts_(attempts),
        keyText_(std::move(keyText)),
        timestamp_(timestamp),
        input_(input),
        inputType_(inputType) {}

  // Every failure of the failed attempt, in the order they were reported (never empty).
  const std::vector<AsyncError>& errors() const noexcept { return errors_; }
  const AsyncError& error() const { return errors_.front(); }
  // Attempts made so far, the failed one included (1 on the first failure).
  std::uint32_t attempts() const noexcept { return attempts_; }
  const std::string& keyText() const noexcept { return keyText_; }
  std::int64_t timestamp() const noexcept { return timestamp_; }

  // The record's input if it is a T: the runner's elements are (timers have none);
  // records given to the controller carry one when made with recordWithInput().
  template <class T>
  const T* input() const noexcept {
    return inputType_ != nullptr && *inputType_ == typeid(T) ? static_cast<const T*>(input_) : nullptr;
  }

 private:
  const std::vector<AsyncError>& errors_;
  std::uint32_t attempts_;
  std::string keyText_;
  std::int64_t timestamp_;
  const void* input_;
  const std::type_info* inputType_;
};

// Bounded retries with exponential backoff: the n-th retry waits
// min(maxBackoff, initialBackoff * multiplier^(n-1)).
struct RecordRetryOptions {
  std::uint32_t maxAttempts = 3;  // attempts in all, the first one included
  std::chrono::milliseconds initialBackoff{10};
  double multiplier = 2.0;
  std::chrono::milliseconds maxBackoff{1000};

  std::chrono::milliseconds backoffBefore(std::uint32_t retry) const {
    auto wait = static_cast<double>(initialBackoff.count());
    for (std::uint32_t i = 1; i < retry && wait < static_cast<double>(maxBackoff.count()); ++i) wait *= multiplier;
    return std::min(maxBackoff, std::chrono::milliseconds(static_cast<std::int64_t>(wait)));
  }
};

using DeadLetterOutput = std::function<void(const FailedRecord&)>;

struct RecordErrorPolicy {
  // Decides a failed attempt's fate. Empty: no policy (errorHandler sees each failure).
  std::function<RecordFailureAction(const FailedRecord&)> decide;
  RecordRetryOptions retry;
  // What a Retry decision becomes once retry.maxAttempts attempts failed.
  RecordFailureAction whenRetriesExhausted = RecordFailureAction::FailTask;
  // Receives dead-lettered records on the task thread. If it throws, the task fails.
  DeadLetterOutput deadLetter;

  explicit operator bool() const noexcept { return static_cast<bool>(decide); }
};

// Drops every failed record and keeps going (counted in metrics().recordErrors.skipped).
inline RecordErrorPolicy skipFailedRecords() {
  RecordErrorPolicy policy;
  policy.decide = [](const FailedRecord&) { return RecordFailureAction::Skip; };
  return policy;
}

// Retries every failed record; once `retry.maxAttempts` attempts failed, does
// `whenExhausted` (with DeadLetter, give the output to the returned policy's deadLetter).
inline RecordErrorPolicy retryFailedRecords(RecordRetryOptions retry = {},
                                            RecordFailureAction whenExhausted = RecordFailureAction::FailTask) {
  RecordErrorPolicy policy;
  policy.decide = [](const FailedRecord&) { return RecordFailureAction::Retry; };
  policy.retry = retry;
  policy.whenRetriesExhausted = whenExhausted;
  return policy;
}

// Sends every failed record with its errors to `output` and keeps going.
inline RecordErrorPolicy deadLetterFailedRecords(DeadLetterOutput output) {
  RecordErrorPolicy policy;
  policy.decide = [](const FailedRecord&) { return RecordFailureAction::DeadLetter; };
  policy.deadLetter = std::move(output);
  return policy;
}

// Where the records whose attempts failed went. Every failed attempt ends in exactly one
// of retries, skipped, deadLettered and failedTask.
struct RecordErrorMetrics {
  std::uint64_t failedAttempts = 0;    // attempts that reported at least one failure
  std::uint64_t failures = 0;          // failures collected into those attempts
  std::uint64_t retries = 0;           // attempts scheduled again
  std::uint64_t retriedToSuccess = 0;  // records whose retry finished without failure
  std::uint64_t skipped = 0;
  std::uint64_t deadLettered = 0;
  std::uint64_t failedTask = 0;  // records whose failure failed the task
};

// A callable for AsyncExecutionController::processRecord that keeps the record's input
// where a dead-letter output can see it (FailedRecord::input<In>()); fn(input) runs the
// record, on every attempt with the same input.
template <class In, class F>
class RecordWithInput {
 public:
  RecordWithInput(In input, F fn) : input_(std::move(input)), fn_(std::move(fn)) {}
  void operator()() { fn_(std::as_const(input_)); }
  const In& input() const noexcept { return input_; }

 private:
  In input_;
  F fn_;
};

template <class In, class F>
RecordWithInput<std::decay_t<In>, std::decay_t<F>> recordWithInput(In&& input, F&& fn) {
  return {std::forward<In>(input), std::forward<F>(fn)};
}

namespace detail {

// Records waiting for their retry, earliest due first (arrival order among equals).
template <class Record, class TimePoint>
class RetryQueue {
 public:
  void push(TimePoint due, Record* record) {
    entries_.push_back(Entry{due, sequence_++, record});
    std::push_heap(entries_.begin(), entries_.end(), later);
  }
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }
  TimePoint nextDue() const { return entries_.front().due; }

  // The earliest record due at `now`, or null.
  Record* popDue(TimePoint now) {
    if (entries_.empty() || entries_.front().due > now) return nullptr;
    std::pop_heap(entries_.begin(), entries_.end(), later);
    Record* record = entries_.back().record;
    entries_.pop_back();
    return record;
  }

  // Removes every waiting record (a controller going away): fn(record) for each.
  template <class F>
  void dropAll(F&& fn) {
    std::vector<Entry> entries = std::exchange(entries_, {});
    for (const Entry& entry : entries) fn(entry.record);
  }

 private:
  struct Entry {
    TimePoint due;
    std::uint64_t sequence;
    Record* record;
  };
  static bool later(const Entry& a, const Entry& b) { return a.due != b.due ? a.due > b.due : a.sequence > b.sequence; }

  std::vector<Entry> entries_;
  std::uint64_t sequence_ = 0;
};

}  // namespace detail
}  // namespace asyncstate
