// JobMetrics mirrors what the library measures: a real job on the memory backend behind
// a cache, published through the runner's callbacks, agrees with the job's own numbers.
#include "click_job.hpp"

#include <asyncstate/backend/latency.hpp>
#include <asyncstate/job_metrics.hpp>
#include <asyncstate/prometheus.hpp>

#include <gtest/gtest.h>

#include <sstream>

namespace asyncstate {
namespace {

using test::ClickRunner;
using test::CountClicks;

double valueOf(const MetricsSnapshot& snap, std::string_view name, const MetricLabels& labels = {}) {
  const MetricSample* sample = snap.sample(name, labels);
  if (sample == nullptr) throw std::runtime_error("no series " + std::string(name));
  return sample->value;
}

TEST(JobMetrics, MirrorsARunsStatistics) {
  MemoryBackend memory;
  CachingBackend cache(memory, 1 << 20);
  MetricsRegistry registry;
  JobMetrics metrics(registry, {{"job_name", "clicks"}});
  CountClicks function;
  RunnerOptions options = test::clickJobOptions();
  options.progressEvery = 1000;
  int progressCalls = 0;
  options.onProgress = [&](const RunStats& s) {
    metrics.publish(s);
    ++progressCalls;
  };
  ClickRunner runner(
      cache, function, [](const test::Click& c) { return c.user; }, [](const test::Click& c) { return c.timeMillis; },
      options);
  VectorSource<test::Click> source(test::generateClicks(5000, 50));
  VectorCollector<std::string> sink;
  const RunStats stats = runner.run(source, sink);
  metrics.publish(stats);
  metrics.publish(runner.controller());
  metrics.publish(cache.cacheStats());
  metrics.publish(cache.stats());
  EXPECT_EQ(progressCalls, 5);

  const MetricLabels job{{"job_name", "clicks"}};
  const MetricsSnapshot snap = registry.snapshot();
  EXPECT_EQ(valueOf(snap, "asyncstate_records_in_total", job), 5000);
  EXPECT_EQ(valueOf(snap, "asyncstate_records_out_total", job), static_cast<double>(sink.values.size()));
  EXPECT_EQ(valueOf(snap, "asyncstate_records_processed_total", job),
            static_cast<double>(stats.controller.recordsProcessed));
  EXPECT_EQ(valueOf(snap, "asyncstate_in_flight_records", job), 0) << "the run drained";
  EXPECT_EQ(valueOf(snap, "asyncstate_requests_total", job), static_cast<double>(stats.controller.requestsSent));
  const CacheStats cacheStats = cache.cacheStats();
  EXPECT_GT(cacheStats.hits, 0U);
  EXPECT_EQ(valueOf(snap, "asyncstate_cache_hits_total", job), static_cast<double>(cacheStats.hits));
  EXPECT_EQ(valueOf(snap, "asyncstate_cache_misses_total", job), static_cast<double>(cacheStats.misses));
  EXPECT_EQ(valueOf(snap, "asyncstate_cache_capacity_bytes", job), 1 << 20);
  double batches = 0;
  for (const char* reason : {"size", "timeout", "drain"}) {
    batches += valueOf(snap, "asyncstate_batches_total", {{"job_name", "clicks"}, {"reason", reason}});
  }
  EXPECT_EQ(batches, static_cast<double>(stats.controller.batchesSent));
  const MetricSample* latency = snap.sample("asyncstate_record_duration_seconds", job);
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ(latency->histogram.count(), runner.controller().recordLatency().count());
  EXPECT_GT(valueOf(snap, "asyncstate_pool_allocations_total", job), 0);
}

// Runs the click job over 2000 clicks on a backend that fails `errorRate` of its requests.
RunStats runOnFaultyBackend(double errorRate, const RunnerOptions& options) {
  MemoryBackend memory;
  LatencyOptions faults;
  faults.latency = std::chrono::microseconds(0);
  faults.errorRate = errorRate;
  LatencyInjectingBackend faulty(memory, faults);
  CountClicks function;
  ClickRunner runner(
      faulty, function, [](const test::Click& c) { return c.user; }, [](const test::Click& c) { return c.timeMillis; },
      options);
  VectorSource<test::Click> source(test::generateClicks(2000, 40));
  VectorCollector<std::string> sink;
  return runner.run(source, sink);
}

TEST(JobMetrics, CountsFailuresByStateOperationAndOutcome) {
  MetricsRegistry registry;
  JobMetrics metrics(registry);
  std::ostringstream log;
  RunnerOptions options = test::clickJobOptions();
  options.controller.errorHandler = metrics.countingErrorHandler(logAndContinue(log));
  const RunStats stats = runOnFaultyBackend(0.2, options);
  metrics.publish(stats);
  ASSERT_GT(stats.controller.unhandledFailures, 0U);

  const MetricsSnapshot snap = registry.snapshot();
  const MetricFamily* failures = snap.find("asyncstate_failures_total");
  ASSERT_NE(failures, nullptr);
  double counted = 0;
  for (const MetricSample& s : failures->samples) {
    counted += s.value;
    EXPECT_EQ(s.labels.at(0), (std::pair<std::string, std::string>{"state", "count"}));
    EXPECT_EQ(s.labels.at(2), (std::pair<std::string, std::string>{"outcome", "continue"}));
  }
  EXPECT_EQ(counted, static_cast<double>(stats.controller.unhandledFailures));
  EXPECT_EQ(valueOf(snap, "asyncstate_unhandled_failures_total"), counted);
}

// What the record error policy made of failed records, one series per outcome, in step
// with the controller's own accounting.
TEST(JobMetrics, CountsFailedRecordsByErrorPolicyOutcome) {
  MetricsRegistry registry;
  JobMetrics metrics(registry);
  RunnerOptions options = test::clickJobOptions();
  std::size_t deadLetters = 0;
  RecordRetryOptions retry;
  retry.maxAttempts = 2;
  retry.initialBackoff = std::chrono::milliseconds(0);
  options.controller.recordErrors = retryFailedRecords(retry, RecordFailureAction::DeadLetter);
  options.controller.recordErrors.deadLetter = [&](const FailedRecord&) { ++deadLetters; };
  const RunStats stats = runOnFaultyBackend(0.1, options);
  metrics.publish(stats);
  const RecordErrorMetrics& counts = stats.controller.recordErrors;
  ASSERT_GT(counts.retries, 0U);
  ASSERT_GT(counts.deadLettered, 0U);

  const MetricsSnapshot snap = registry.snapshot();
  const auto outcome = [&](const char* name) {
    return valueOf(snap, "asyncstate_failed_records_total", {{"outcome", name}});
  };
  EXPECT_EQ(outcome("retried"), static_cast<double>(counts.retries));
  EXPECT_EQ(outcome("dead_lettered"), static_cast<double>(deadLetters));
  EXPECT_EQ(outcome("skipped"), 0);
  EXPECT_EQ(outcome("failed_task"), 0);
  EXPECT_EQ(valueOf(snap, "asyncstate_records_retried_to_success_total"), static_cast<double>(counts.retriedToSuccess));
  EXPECT_EQ(outcome("retried") + outcome("dead_lettered"), static_cast<double>(counts.failedAttempts))
      << "every failed attempt has exactly one outcome";
}

TEST(JobMetrics, WatermarkLagIsProcessingTimeMinusTheWatermark) {
  MetricsRegistry registry;
  JobMetrics metrics(registry);
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'100));
  metrics.publishWatermark(1'700'000'000'000, std::chrono::milliseconds(1), now);
  const MetricsSnapshot snap = registry.snapshot();
  EXPECT_DOUBLE_EQ(valueOf(snap, "asyncstate_watermark_seconds"), 1'700'000'000.0);
  EXPECT_DOUBLE_EQ(valueOf(snap, "asyncstate_watermark_lag_seconds"), 100.0);
}

TEST(JobMetrics, RecordsCheckpointAndRestoreDurationAndSize) {
  MetricsRegistry registry;
  JobMetrics metrics(registry);
  Savepoint checkpoint;
  checkpoint.add("count", StateKind::Value, "key", "", "12345");
  checkpoint.metadata()["pos"] = "7";
  metrics.checkpointTaken(std::chrono::milliseconds(30), checkpoint);
  metrics.restored(std::chrono::milliseconds(10), checkpoint);
  const MetricsSnapshot snap = registry.snapshot();
  EXPECT_EQ(valueOf(snap, "asyncstate_checkpoint_size_bytes"), 3 + 5 + 3 + 1);
  EXPECT_EQ(valueOf(snap, "asyncstate_restore_size_bytes"), 12);
  EXPECT_EQ(snap.sample("asyncstate_checkpoint_duration_seconds")->histogram.count(), 1U);
  EXPECT_DOUBLE_EQ(snap.sample("asyncstate_restore_duration_seconds")->histogram.sum, 0.010);
}

TEST(JobMetrics, PublishesTheHotKeyShare) {
  MetricsRegistry registry;
  JobMetrics metrics(registry);
  std::ostringstream log;
  HotKeyMonitor hotKeys({.maxWindowShare = 0.5, .minInFlight = 4}, &log);
  for (std::size_t n = 1; n <= 6; ++n) hotKeys.recordWaiting("sku-1", n, 8);
  hotKeys.recordUnblocked("sku-1", std::chrono::milliseconds(250), 6, 8);
  metrics.publish(hotKeys);
  MetricsSnapshot snap = registry.snapshot();
  EXPECT_DOUBLE_EQ(valueOf(snap, "asyncstate_hot_key_window_ratio", {{"key", "sku-1"}}), 0.75);
  EXPECT_EQ(valueOf(snap, "asyncstate_hot_key_waiting_records", {{"key", "sku-1"}}), 6);
  EXPECT_DOUBLE_EQ(valueOf(snap, "asyncstate_hot_key_blocked_seconds", {{"key", "sku-1"}}), 0.25);
  EXPECT_EQ(valueOf(snap, "asyncstate_hot_key_warnings_total"), 1);

  // The key drains: its series goes away instead of staying behind as a stale gauge.
  hotKeys.recordUnblocked("sku-1", std::chrono::milliseconds(1), 0, 2);
  metrics.publish(hotKeys);
  snap = registry.snapshot();
  EXPECT_TRUE(snap.find("asyncstate_hot_key_window_ratio")->samples.empty());
  EXPECT_THROW(registry.gauge("asyncstate_hot_key_window_ratio", "x"), std::invalid_argument);
}

TEST(JobMetrics, ExpositionOfTheWholeSetIsWellFormed) {
  MetricsRegistry registry;
  JobMetrics metrics(registry, {{"job_name", "a \"quoted\"\\name\n"}});
  metrics.batchSent(64, BatchReason::Size);
  metrics.backendRoundTrip(std::chrono::milliseconds(2));
  const std::string text = toPrometheusText(registry.snapshot());
  EXPECT_NE(text.find("asyncstate_batch_size_requests_bucket{job_name=\"a \\\"quoted\\\"\\\\name\\n\",le=\"64\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE asyncstate_backend_request_duration_seconds histogram"), std::string::npos);
}

}  // namespace
}  // namespace asyncstate
