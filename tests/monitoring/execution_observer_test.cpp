// ExecutionObserver: the controller reports each batch (size, reason) and, for an
// observer that asks, each batch's round trip by its own clock; the runner reports
// checkpoints, restores and watermarks; JobMetrics attached as the observer turns them
// into its series.
#include "../support/controller_fixture.hpp"
#include "../support/test_backends.hpp"
#include "click_job.hpp"

#include <asyncstate/execution_observer.hpp>
#include <asyncstate/job_metrics.hpp>

#include <gtest/gtest.h>

#include <limits>
#include <utility>
#include <vector>

namespace asyncstate {
namespace {

using testing::HoldingBackend;
using testing::ManualClock;

class RecordingObserver final : public ExecutionObserver {
 public:
  explicit RecordingObserver(bool roundTrips) : roundTrips_(roundTrips) {}
  void batchSent(std::size_t requests, BatchReason reason) override { batches.emplace_back(requests, reason); }
  bool measuresRoundTrips() const override { return roundTrips_; }
  void backendRoundTrip(std::chrono::nanoseconds duration) override { roundTrips.push_back(duration); }
  void checkpointTaken(std::chrono::nanoseconds, const Savepoint& checkpoint) override {
    checkpointBytes.push_back(JobMetrics::payloadBytes(checkpoint));
  }
  void restored(std::chrono::nanoseconds, const Savepoint& checkpoint) override {
    restoredBytes.push_back(JobMetrics::payloadBytes(checkpoint));
  }
  void watermarkEmitted(std::int64_t watermark, std::chrono::nanoseconds) override { watermarks.push_back(watermark); }

  std::vector<std::pair<std::size_t, BatchReason>> batches;
  std::vector<std::chrono::nanoseconds> roundTrips;
  std::vector<std::uint64_t> checkpointBytes;
  std::vector<std::uint64_t> restoredBytes;
  std::vector<std::int64_t> watermarks;

 private:
  bool roundTrips_;
};

using Batches = std::vector<std::pair<std::size_t, BatchReason>>;
using std::chrono::milliseconds;

ControllerOptions observed(ExecutionObserver& observer, ManualClock& clock) {
  ControllerOptions options;
  options.log = nullptr;
  options.batchSize = 2;
  options.bufferTimeout = milliseconds(100);
  options.clock = clock.clock();
  options.observer = &observer;
  return options;
}

TEST(ExecutionObserver, ControllerReportsBatchesAndTheirRoundTripsByItsClock) {
  HoldingBackend backend;
  ManualClock clock;
  RecordingObserver observer(true);
  AsyncExecutionController controller(backend, observed(observer, clock));
  ValueState<int> value(controller, ValueStateDescriptor<int>("v"));
  auto read = [&] { (void)value.asyncValue(); };

  controller.processRecord(1, read);
  controller.processRecord(2, read);  // the batch is full: sent
  controller.processRecord(3, read);  // starts the next batch
  clock.advance(milliseconds(5));
  backend.answerAll();
  controller.poll();
  EXPECT_EQ(observer.batches, (Batches{{2, BatchReason::Size}}));
  EXPECT_EQ(observer.roundTrips, std::vector<std::chrono::nanoseconds>{milliseconds(5)});

  clock.advance(milliseconds(100));
  controller.poll();  // the partial batch's timeout expired
  clock.advance(milliseconds(7));
  backend.answerAll();
  controller.poll();
  backend.answerAtOnce = true;
  controller.processRecord(4, read);
  controller.drain();
  EXPECT_EQ(observer.batches, (Batches{{2, BatchReason::Size}, {1, BatchReason::Timeout}, {1, BatchReason::Drain}}));
  EXPECT_EQ(observer.roundTrips,
            (std::vector<std::chrono::nanoseconds>{milliseconds(5), milliseconds(7), milliseconds(0)}));
  EXPECT_EQ(controller.metrics().batchesSent, observer.batches.size());
}

// Tickets as the TicketTable makes them: a slot in the low 32 bits, its generation above.
std::vector<StateRequest> requestsWithTickets(std::initializer_list<std::uint64_t> tickets) {
  std::vector<StateRequest> batch(tickets.size());
  std::size_t i = 0;
  for (std::uint64_t ticket : tickets) batch[i++].ticket = ticket;
  return batch;
}

TEST(ExecutionObserver, RoundTripsOfBatchesAnsweredOutOfOrderAndOfReusedSlots) {
  using TimePoint = detail::RoundTripTimer::TimePoint;
  const TimePoint t0{};
  const std::uint64_t nextGeneration = std::uint64_t{1} << 32;
  detail::RoundTripTimer timer;
  timer.sent(requestsWithTickets({0, 1}), t0);
  timer.sent(requestsWithTickets({2}), t0 + milliseconds(1));
  timer.sent(requestsWithTickets({3, 4}), t0 + milliseconds(2));
  EXPECT_EQ(timer.batchesInFlight(), 3U);

  // The last batch finishes first, the first one last.
  EXPECT_EQ(timer.answered(4, t0 + milliseconds(10)), std::nullopt);
  EXPECT_EQ(timer.answered(4, t0 + milliseconds(10)), std::nullopt) << "a repeated answer is not a second request";
  EXPECT_EQ(timer.answered(3, t0 + milliseconds(12)), milliseconds(10));
  EXPECT_EQ(timer.answered(0, t0 + milliseconds(13)), std::nullopt);
  EXPECT_EQ(timer.answered(2, t0 + milliseconds(14)), milliseconds(13));
  EXPECT_EQ(timer.answered(nextGeneration | 1, t0 + milliseconds(15)), std::nullopt) << "another generation";
  EXPECT_EQ(timer.answered(1, t0 + milliseconds(15)), milliseconds(15));
  EXPECT_EQ(timer.batchesInFlight(), 0U);

  // Slots come back with a new generation; an answer for the old ticket is not this one.
  timer.sent(requestsWithTickets({nextGeneration | 0, 99}), t0 + milliseconds(20));
  EXPECT_EQ(timer.answered(0, t0 + milliseconds(21)), std::nullopt);
  EXPECT_EQ(timer.answered(99, t0 + milliseconds(22)), std::nullopt);
  EXPECT_EQ(timer.answered(nextGeneration | 0, t0 + milliseconds(25)), milliseconds(5));
  EXPECT_EQ(timer.answered(12345, t0 + milliseconds(25)), std::nullopt) << "never sent";
  EXPECT_EQ(timer.batchesInFlight(), 0U);
}

TEST(ExecutionObserver, RoundTripsAreNotTimedUnlessTheObserverAsks) {
  HoldingBackend backend;
  backend.answerAtOnce = true;
  ManualClock clock;
  RecordingObserver observer(false);
  AsyncExecutionController controller(backend, observed(observer, clock));
  ValueState<int> value(controller, ValueStateDescriptor<int>("v"));
  for (int key = 0; key < 5; ++key) controller.processRecord(key, [&] { (void)value.asyncValue(); });
  controller.drain();
  EXPECT_EQ(observer.batches, (Batches{{2, BatchReason::Size}, {2, BatchReason::Size}, {1, BatchReason::Drain}}));
  EXPECT_TRUE(observer.roundTrips.empty());
}

TEST(ExecutionObserver, RunnerReportsWatermarksCheckpointsAndRestores) {
  MemoryBackend memory;
  RecordingObserver observer(true);
  test::CountClicks function;
  RunnerOptions options = test::clickJobOptions();
  options.controller.observer = &observer;
  options.checkpointEvery = 1000;
  std::vector<Savepoint> checkpoints;
  options.onCheckpoint = [&](const Savepoint& sp) { checkpoints.push_back(sp); };
  auto user = [](const test::Click& c) { return c.user; };
  auto time = [](const test::Click& c) { return c.timeMillis; };
  VectorSource<test::Click> source(test::generateClicks(2000, 30));
  VectorCollector<std::string> sink;
  {
    test::ClickRunner runner(memory, function, user, time, options);
    (void)runner.run(source, sink);
    EXPECT_EQ(observer.roundTrips.size(), runner.controller().metrics().batchesSent);
  }
  EXPECT_EQ(observer.watermarks,
            (std::vector<std::int64_t>{499, 999, 1499, 1999, std::numeric_limits<std::int64_t>::max()}));
  ASSERT_EQ(checkpoints.size(), 2U);
  EXPECT_EQ(observer.checkpointBytes, (std::vector<std::uint64_t>{JobMetrics::payloadBytes(checkpoints[0]),
                                                                  JobMetrics::payloadBytes(checkpoints[1])}));

  MemoryBackend fresh;
  test::ClickRunner restored(fresh, function, user, time, options);
  (void)restored.restore(checkpoints[0], source);
  EXPECT_EQ(observer.restoredBytes, std::vector<std::uint64_t>{JobMetrics::payloadBytes(checkpoints[0])});
}

double histogramCount(const MetricsSnapshot& snap, std::string_view name) {
  const MetricSample* sample = snap.sample(name);
  if (sample == nullptr) throw std::runtime_error("no series " + std::string(name));
  return static_cast<double>(sample->histogram.count());
}

TEST(ExecutionObserver, JobMetricsAttachedAsTheObserverFillsTheEventSeries) {
  MemoryBackend memory;
  MetricsRegistry registry;
  JobMetrics metrics(registry);
  test::CountClicks function;
  RunnerOptions options = test::clickJobOptions();
  options.controller.observer = &metrics;
  options.checkpointEvery = 1500;
  test::ClickRunner runner(
      memory, function, [](const test::Click& c) { return c.user; }, [](const test::Click& c) { return c.timeMillis; },
      options);
  VectorSource<test::Click> source(test::generateClicks(3000, 40, 1'000'000));
  VectorCollector<std::string> sink;
  const RunStats stats = runner.run(source, sink);
  const MetricsSnapshot snap = registry.snapshot();
  const auto batches = static_cast<double>(stats.controller.batchesSent);
  EXPECT_EQ(histogramCount(snap, "asyncstate_batch_size_requests"), batches);
  EXPECT_EQ(snap.sample("asyncstate_batch_size_requests")->histogram.sum,
            static_cast<double>(stats.controller.requestsSent));
  EXPECT_EQ(histogramCount(snap, "asyncstate_backend_request_duration_seconds"), batches);
  EXPECT_EQ(histogramCount(snap, "asyncstate_checkpoint_duration_seconds"), 2.0);
  EXPECT_GT(snap.sample("asyncstate_checkpoint_size_bytes")->value, 0.0);
  EXPECT_EQ(histogramCount(snap, "asyncstate_watermark_wait_duration_seconds"), static_cast<double>(stats.watermarks));
  // The last finite watermark: the largest timestamp, 1'000'000 + 2999 ms.
  EXPECT_DOUBLE_EQ(snap.sample("asyncstate_watermark_seconds")->value, 1002.999);
  EXPECT_GT(snap.sample("asyncstate_watermark_lag_seconds")->value, 0.0);
}

}  // namespace
}  // namespace asyncstate
