#pragma once
// JobMetrics: the metric set an operator needs, registered in a MetricsRegistry under
// Prometheus names (units in the name, counters end in _total, durations in seconds),
// and filled two ways:
//   - publish(...) mirrors the statistics the library already keeps (ControllerMetrics,
//     RunStats, PoolStats, CacheStats, BackendStats, the record latency histogram);
//     call it on the task thread, e.g. from RunnerOptions::onProgress / onWatermark;
//   - as an ExecutionObserver (set `options.controller.observer = &metrics`), the
//     controller and runner report batches, backend round trips, checkpoints, restores
//     and watermarks (lag and wait) where they happen.
// Single writer (the task thread); the registry may be read from any thread.

#include <asyncstate/backend/cache.hpp>
#include <asyncstate/controller.hpp>
#include <asyncstate/error.hpp>
#include <asyncstate/execution_observer.hpp>
#include <asyncstate/hot_keys.hpp>
#include <asyncstate/metrics.hpp>
#include <asyncstate/metrics_registry.hpp>
#include <asyncstate/pool.hpp>
#include <asyncstate/runner.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate {

class JobMetrics final : public ExecutionObserver {
 public:
  // Every series carries `labels` too (e.g. {{"job_name", "orders"}, {"subtask", "0"}}).
  // `eventTimeUnit` is what one tick of the job's timestamps means (watermark lag).
  explicit JobMetrics(MetricsRegistry& registry, MetricLabels labels = {},
                      std::chrono::nanoseconds eventTimeUnit = std::chrono::milliseconds(1))
      : registry_(registry),
        labels_(std::move(labels)),
        eventTimeUnit_(eventTimeUnit),
        recordsIn_(counter("asyncstate_records_in_total", "Records the job read from its source.")),
        recordsRetried_(failedRecords("retried")),
        recordsSkipped_(failedRecords("skipped")),
        recordsDeadLettered_(failedRecords("dead_lettered")),
        recordsFailedTask_(failedRecords("failed_task")),
        recordsRetriedToSuccess_(counter("asyncstate_records_retried_to_success_total",
                                         "Records that failed, were retried and then finished without failure.")),
        recordsProcessed_(counter("asyncstate_records_processed_total",
                                  "Records whose processing (with every continuation) finished.")),
        recordsOut_(counter("asyncstate_records_out_total", "Records the job emitted to its sink.")),
        inFlight_(gauge("asyncstate_in_flight_records", "Records admitted and not finished, blocked ones included.")),
        inFlightPeak_(gauge("asyncstate_in_flight_records_peak", "Highest number of in-flight records seen.")),
        blockedRecords_(
            gauge("asyncstate_blocked_records", "Records waiting because a record of the same key is in flight.")),
        blockedKeys_(gauge("asyncstate_blocked_keys", "Distinct keys with waiting records.")),
        bufferedRequests_(
            gauge("asyncstate_buffered_requests", "State requests buffered, not yet sent to the backend.")),
        pendingRequests_(gauge("asyncstate_pending_requests", "State requests sent to the backend, not yet answered.")),
        requests_(counter("asyncstate_requests_total", "State requests sent to the backend.")),
        batchesBySize_(batches("size")),
        batchesByTimeout_(batches("timeout")),
        batchesByDrain_(batches("drain")),
        batchSize_(registry_.histogram("asyncstate_batch_size_requests", "Requests per batch sent to the backend.",
                                       Histogram::exponentialBounds(1, 4, 8), labels_)),
        roundTrip_(registry_.latencyHistogram("asyncstate_backend_request_duration_seconds",
                                              "Time from sending a batch to the backend until its answer arrived.",
                                              labels_)),
        recordLatency_(registry_.latencyHistogram(
            "asyncstate_record_duration_seconds",
            "Time from a record's admission until it finished, time blocked on its key included.", labels_)),
        unhandledFailures_(counter("asyncstate_unhandled_failures_total",
                                   "Failures that reached the error handler (no exceptionally/handle took them).")),
        backendBatches_(counter("asyncstate_backend_batches_total", "Batches the state backend executed.")),
        backendRequests_(counter("asyncstate_backend_requests_total", "Requests the state backend executed.")),
        backendFailures_(counter("asyncstate_backend_failures_total", "Requests the state backend failed.")),
        poolLive_(gauge("asyncstate_pool_live_futures", "Future states handed out by the pool and not returned.")),
        poolPeak_(gauge("asyncstate_pool_live_futures_peak", "Highest number of live future states.")),
        poolAllocations_(counter("asyncstate_pool_allocations_total", "Future states allocated.")),
        poolReused_(counter("asyncstate_pool_reused_total", "Allocations served by a returned block.")),
        poolHeapFallbacks_(counter("asyncstate_pool_heap_fallbacks_total",
                                   "Allocations that went to the heap (too large, or heap policy).")),
        poolSlabBytes_(gauge("asyncstate_pool_slab_bytes", "Bytes the pool holds in slabs.")),
        cacheHits_(counter("asyncstate_cache_hits_total", "State reads answered by the local cache.")),
        cacheMisses_(counter("asyncstate_cache_misses_total", "State reads the local cache sent to the backend.")),
        cacheEvictions_(counter("asyncstate_cache_evictions_total", "Entries evicted from the local cache.")),
        cacheBytes_(gauge("asyncstate_cache_bytes", "Accounted size of the local cache's entries.")),
        cacheEntries_(gauge("asyncstate_cache_entries", "Entries in the local cache.")),
        cacheCapacity_(gauge("asyncstate_cache_capacity_bytes", "The local cache's budget; 0: caching is off.")),
        checkpoints_(counter("asyncstate_checkpoints_total", "Checkpoints taken.")),
        checkpointDuration_(registry_.latencyHistogram("asyncstate_checkpoint_duration_seconds",
                                                       "Time to take a checkpoint, draining in-flight work included.",
                                                       labels_)),
        checkpointSize_(gauge("asyncstate_checkpoint_size_bytes", "Payload size of the last checkpoint.")),
        restoreDuration_(registry_.latencyHistogram("asyncstate_restore_duration_seconds",
                                                    "Time to restore from a checkpoint.", labels_)),
        restoreSize_(gauge("asyncstate_restore_size_bytes", "Payload size of the last checkpoint restored.")),
        watermarks_(counter("asyncstate_watermarks_total", "Watermarks emitted.")),
        watermark_(gauge("asyncstate_watermark_seconds",
                         "Event time of the current watermark (lag: time() - asyncstate_watermark_seconds).")),
        watermarkLag_(gauge("asyncstate_watermark_lag_seconds",
                            "Processing time minus the current watermark, when the watermark was published.")),
        watermarkWait_(registry_.latencyHistogram(
            "asyncstate_watermark_wait_duration_seconds",
            "Time a watermark waited for the in-flight records before it (drain before emitting).", labels_)),
        hotKeyWarnings_(counter("asyncstate_hot_key_warnings_total", "Hot-key warnings logged.")) {}

  JobMetrics(const JobMetrics&) = delete;
  JobMetrics& operator=(const JobMetrics&) = delete;

  MetricsRegistry& registry() noexcept { return registry_; }

  // --- mirrors of the statistics the library keeps ---------------------------------

  void publish(const ControllerMetrics& m) {
    inFlight_.set(static_cast<double>(m.inFlightRecords));
    inFlightPeak_.set(static_cast<double>(m.peakInFlightRecords));
    blockedRecords_.set(static_cast<double>(m.blockedRecords));
    blockedKeys_.set(static_cast<double>(m.blockedKeys));
    bufferedRequests_.set(static_cast<double>(m.bufferedRequests));
    pendingRequests_.set(static_cast<double>(m.pendingRequests));
    recordsProcessed_.set(static_cast<double>(m.recordsProcessed));
    requests_.set(static_cast<double>(m.requestsSent));
    batchesBySize_.set(static_cast<double>(m.sizeFlushes));
    batchesByTimeout_.set(static_cast<double>(m.timeoutFlushes));
    batchesByDrain_.set(static_cast<double>(m.drainFlushes));
    unhandledFailures_.set(static_cast<double>(m.unhandledFailures));
    recordsRetried_.set(static_cast<double>(m.recordErrors.retries));
    recordsSkipped_.set(static_cast<double>(m.recordErrors.skipped));
    recordsDeadLettered_.set(static_cast<double>(m.recordErrors.deadLettered));
    recordsFailedTask_.set(static_cast<double>(m.recordErrors.failedTask));
    recordsRetriedToSuccess_.set(static_cast<double>(m.recordErrors.retriedToSuccess));
  }

  // A run's statistics; counts restart with each EmbeddedRunner::run().
  void publish(const RunStats& s) {
    recordsIn_.set(static_cast<double>(s.records));
    recordsOut_.set(static_cast<double>(s.outputs));
    watermarks_.set(static_cast<double>(s.watermarks));
    checkpoints_.set(static_cast<double>(s.checkpoints));
    publish(s.controller);
  }

  void publish(const PoolStats& s) {
    poolLive_.set(static_cast<double>(s.live));
    poolPeak_.set(static_cast<double>(s.peak));
    poolAllocations_.set(static_cast<double>(s.allocations));
    poolReused_.set(static_cast<double>(s.reused));
    poolHeapFallbacks_.set(static_cast<double>(s.heapFallbacks));
    poolSlabBytes_.set(static_cast<double>(s.slabBytes));
  }

  void publish(const CacheStats& s) {
    cacheHits_.set(static_cast<double>(s.hits));
    cacheMisses_.set(static_cast<double>(s.misses));
    cacheEvictions_.set(static_cast<double>(s.evictions));
    cacheBytes_.set(static_cast<double>(s.bytes));
    cacheEntries_.set(static_cast<double>(s.entries));
    cacheCapacity_.set(static_cast<double>(s.capacityBytes));
  }

  void publish(const BackendStats& s) {
    backendBatches_.set(static_cast<double>(s.batches));
    backendRequests_.set(static_cast<double>(s.requests));
    backendFailures_.set(static_cast<double>(s.failures));
  }

  // The controller's admission-to-finish histogram.
  void publishRecordLatency(const LatencyHistogram& latencies) { recordLatency_.assign(latencies); }

  // Everything a controller exposes: its metrics, pool and record latencies.
  void publish(const AsyncExecutionController& controller) {
    publish(controller.metrics());
    publish(controller.poolStats());
    publishRecordLatency(controller.recordLatency());
  }

  // The current watermark, in the job's event-time unit (`unit` per timestamp tick). The
  // end-of-input watermark (the largest int64) is not a point in time and is skipped.
  template <class Rep, class Period>
  void publishWatermark(std::int64_t watermark, std::chrono::duration<Rep, Period> unit,
                        std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
    if (watermark == std::numeric_limits<std::int64_t>::max()) return;
    const double seconds = static_cast<double>(watermark) * std::chrono::duration<double>(unit).count();
    watermark_.set(seconds);
    watermarkLag_.set(std::chrono::duration<double>(now.time_since_epoch()).count() - seconds);
  }

  // The hottest key's share of the window (one series, labelled with the key, none when
  // no key holds records) and the sketches' top keys: bounded by the sketch capacity.
  void publish(const HotKeyMonitor& hotKeys) {
    std::vector<std::pair<MetricLabels, double>> share;
    if (hotKeys.hottestShare() > 0)
      share.emplace_back(withLabels({{"key", hotKeys.hottestKey()}}), hotKeys.hottestShare());
    registry_.replaceGauges("asyncstate_hot_key_window_ratio",
                            "Largest share of the in-flight window held by one key (its records run one at a time).",
                            std::move(share));
    std::vector<std::pair<MetricLabels, double>> waiting;
    for (const HotKey& k : hotKeys.waitingRecords().top()) {
      waiting.emplace_back(withLabels({{"key", k.key}}), static_cast<double>(k.count));
    }
    registry_.replaceGauges("asyncstate_hot_key_waiting_records",
                            "Top keys by records that waited behind their key (Space-Saving estimate, decayed).",
                            std::move(waiting));
    std::vector<std::pair<MetricLabels, double>> blocked;
    for (const HotKey& k : hotKeys.blockedMicros().top()) {
      blocked.emplace_back(withLabels({{"key", k.key}}), static_cast<double>(k.count) / 1e6);
    }
    registry_.replaceGauges("asyncstate_hot_key_blocked_seconds",
                            "Top keys by time their records waited behind the key (Space-Saving estimate, decayed).",
                            std::move(blocked));
    hotKeyWarnings_.set(static_cast<double>(hotKeys.policy().warnings()));
  }

  // --- events, where they happen -----------------------------------------------------

  void recordsRead(std::uint64_t n = 1) { recordsIn_.inc(static_cast<double>(n)); }
  void recordsEmitted(std::uint64_t n = 1) { recordsOut_.inc(static_cast<double>(n)); }
  void watermarkWaited(std::chrono::nanoseconds duration) { watermarkWait_.observe(duration); }

  // ExecutionObserver: the batch counts by reason are mirrored by publish(ControllerMetrics).
  void batchSent(std::size_t requests, BatchReason /*reason*/) override {
    batchSize_.observe(static_cast<double>(requests));
  }
  bool measuresRoundTrips() const override { return true; }
  void backendRoundTrip(std::chrono::nanoseconds duration) override { roundTrip_.observe(duration); }
  void watermarkEmitted(std::int64_t watermark, std::chrono::nanoseconds waitedForInFlight) override {
    watermarkWaited(waitedForInFlight);
    publishWatermark(watermark, eventTimeUnit_, processingTime_ ? processingTime_() : std::chrono::system_clock::now());
  }

  // The processing time watermark lag is measured against when watermarkEmitted()
  // publishes it: the system clock unless set (a job replaying recorded input at its own
  // pace measures lag against its replay clock).
  void setProcessingClock(std::function<std::chrono::system_clock::time_point()> clock) {
    processingTime_ = std::move(clock);
  }
  void checkpointTaken(std::chrono::nanoseconds duration, const Savepoint& checkpoint) override {
    checkpointDuration_.observe(duration);
    checkpointSize_.set(static_cast<double>(payloadBytes(checkpoint)));
  }
  void restored(std::chrono::nanoseconds duration, const Savepoint& checkpoint) override {
    restoreDuration_.observe(duration);
    restoreSize_.set(static_cast<double>(payloadBytes(checkpoint)));
  }

  // A failure and what became of it: outcome is the error policy's verdict ("fail_task",
  // "continue") or "recovered" when a downstream exceptionally/handle took it.
  void failure(const AsyncError& error, std::string_view outcome) {
    registry_
        .counter(
            "asyncstate_failures_total", "State operation failures by state, operation and outcome.",
            withLabels(
                {{"state", error.stateName()}, {"operation", error.operation()}, {"outcome", std::string(outcome)}}))
        .inc();
  }

  // Wraps an error handler so that every failure it sees is counted by its verdict.
  // The handler only sees failures nobody downstream took; they count under outcome
  // "fail_task" or "continue". Use it as ControllerOptions::errorHandler; `this` must
  // outlive the controller.
  ErrorHandler countingErrorHandler(ErrorHandler inner = failTask()) {
    return [this, inner = std::move(inner)](const AsyncError& error) {
      const ErrorAction action = inner ? inner(error) : ErrorAction::FailTask;
      failure(error, action == ErrorAction::FailTask ? "fail_task" : "continue");
      return action;
    };
  }

  static std::uint64_t payloadBytes(const Savepoint& checkpoint) {
    std::uint64_t bytes = 0;
    for (const auto& [name, value] : checkpoint.metadata()) bytes += name.size() + value.size();
    for (const auto& [name, state] : checkpoint.states()) {
      for (const auto& entry : state.entries) bytes += entry.key.size() + entry.userKey.size() + entry.value.size();
    }
    return bytes;
  }

 private:
  MetricLabels withLabels(MetricLabels extra) const {
    MetricLabels all = labels_;
    all.insert(all.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
    return all;
  }
  Counter& counter(std::string_view name, std::string_view help) { return registry_.counter(name, help, labels_); }
  Gauge& gauge(std::string_view name, std::string_view help) { return registry_.gauge(name, help, labels_); }
  Counter& failedRecords(const char* outcome) {
    return registry_.counter("asyncstate_failed_records_total",
                             "Failed record attempts, by what the record error policy made of them.",
                             withLabels({{"outcome", outcome}}));
  }
  Counter& batches(const char* reason) {
    return registry_.counter("asyncstate_batches_total", "Batches sent to the backend, by what flushed them.",
                             withLabels({{"reason", reason}}));
  }

  MetricsRegistry& registry_;
  MetricLabels labels_;
  std::chrono::nanoseconds eventTimeUnit_;
  std::function<std::chrono::system_clock::time_point()> processingTime_;
  Counter& recordsIn_;
  Counter& recordsRetried_;
  Counter& recordsSkipped_;
  Counter& recordsDeadLettered_;
  Counter& recordsFailedTask_;
  Counter& recordsRetriedToSuccess_;
  Counter& recordsProcessed_;
  Counter& recordsOut_;
  Gauge& inFlight_;
  Gauge& inFlightPeak_;
  Gauge& blockedRecords_;
  Gauge& blockedKeys_;
  Gauge& bufferedRequests_;
  Gauge& pendingRequests_;
  Counter& requests_;
  Counter& batchesBySize_;
  Counter& batchesByTimeout_;
  Counter& batchesByDrain_;
  Histogram& batchSize_;
  Histogram& roundTrip_;
  Histogram& recordLatency_;
  Counter& unhandledFailures_;
  Counter& backendBatches_;
  Counter& backendRequests_;
  Counter& backendFailures_;
  Gauge& poolLive_;
  Gauge& poolPeak_;
  Counter& poolAllocations_;
  Counter& poolReused_;
  Counter& poolHeapFallbacks_;
  Gauge& poolSlabBytes_;
  Counter& cacheHits_;
  Counter& cacheMisses_;
  Counter& cacheEvictions_;
  Gauge& cacheBytes_;
  Gauge& cacheEntries_;
  Gauge& cacheCapacity_;
  Counter& checkpoints_;
  Histogram& checkpointDuration_;
  Gauge& checkpointSize_;
  Histogram& restoreDuration_;
  Gauge& restoreSize_;
  Counter& watermarks_;
  Gauge& watermark_;
  Gauge& watermarkLag_;
  Histogram& watermarkWait_;
  Counter& hotKeyWarnings_;
};

}  // namespace asyncstate
