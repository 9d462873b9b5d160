// MetricsRegistry: metrics by name and labels, validation of Prometheus names, exact
// import of a LatencyHistogram, and snapshots taken while the task thread publishes.
#include <asyncstate/metrics_registry.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace asyncstate {
namespace {

TEST(MetricsRegistry, ReturnsTheSameMetricForTheSameNameAndLabels) {
  MetricsRegistry registry;
  Counter& a = registry.counter("x_total", "help", {{"state", "s"}});
  Counter& b = registry.counter("x_total", "help", {{"state", "s"}});
  Counter& c = registry.counter("x_total", "help", {{"state", "t"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  a.inc();
  b.inc(2);
  c.inc(-5);  // counters never go down
  const MetricsSnapshot snap = registry.snapshot();
  ASSERT_NE(snap.sample("x_total", {{"state", "s"}}), nullptr);
  EXPECT_EQ(snap.sample("x_total", {{"state", "s"}})->value, 3);
  EXPECT_EQ(snap.sample("x_total", {{"state", "t"}})->value, 0);
  EXPECT_EQ(snap.find("x_total")->type, MetricType::Counter);
}

TEST(MetricsRegistry, RejectsInvalidNamesAndConflictingRegistrations) {
  MetricsRegistry registry;
  EXPECT_THROW(registry.counter("1bad", "h"), std::invalid_argument);
  EXPECT_THROW(registry.counter("bad-name", "h"), std::invalid_argument);
  EXPECT_THROW(registry.gauge("g", "h", {{"__reserved", "v"}}), std::invalid_argument);
  EXPECT_THROW(registry.gauge("g", "h", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  EXPECT_THROW(registry.latencyHistogram("h_seconds", "h", {{"le", "1"}}), std::invalid_argument);
  registry.gauge("g", "h");
  EXPECT_THROW(registry.counter("g", "h"), std::invalid_argument);
  EXPECT_THROW(registry.gauge("g", "other help"), std::invalid_argument);
  EXPECT_TRUE(registry.snapshot().find("1bad") == nullptr) << "a rejected metric leaves nothing behind";
}

TEST(Histogram, CountsIntoCumulativeBuckets) {
  Histogram h({1, 2, 4});
  for (double v : {0.5, 1.0, 1.5, 3.0, 100.0}) h.observe(v);
  const HistogramData d = h.data();
  EXPECT_EQ(d.cumulative, (std::vector<std::uint64_t>{2, 3, 4, 5})) << "le is inclusive";
  EXPECT_DOUBLE_EQ(d.sum, 106.0);
  EXPECT_EQ(d.count(), 5U);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({}), std::invalid_argument);
}

TEST(Histogram, ImportsALatencyHistogramExactly) {
  LatencyHistogram latencies;
  Histogram direct(Histogram::latencyBounds());
  // Whole microseconds off the power-of-two edges, where both count alike.
  for (const auto d :
       {std::chrono::microseconds(3), std::chrono::microseconds(15), std::chrono::microseconds(17),
        std::chrono::microseconds(1023), std::chrono::microseconds(1025), std::chrono::microseconds(5000),
        std::chrono::microseconds(20'000'000), std::chrono::microseconds(900'000'000)}) {
    latencies.add(d);
    direct.observe(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
  }
  Histogram imported(Histogram::latencyBounds());
  imported.assign(latencies);
  const HistogramData a = imported.data();
  const HistogramData b = direct.data();
  EXPECT_EQ(a.cumulative, b.cumulative);
  EXPECT_EQ(a.count(), 8U);
  EXPECT_EQ(a.cumulative[0], 2U) << "3 µs and 15 µs are below 16 µs";
  EXPECT_EQ(a.cumulative[a.cumulative.size() - 2], 7U) << "900 s is above the largest bound";
  EXPECT_DOUBLE_EQ(a.sum, b.sum);
  EXPECT_THROW(Histogram({1, 2}).assign(latencies), std::logic_error);
}

TEST(MetricsRegistry, SnapshotsWhileAnotherThreadPublishes) {
  MetricsRegistry registry;
  Counter& records = registry.counter("records_total", "h");
  Histogram& latency = registry.latencyHistogram("latency_seconds", "h");
  constexpr int kUpdates = 20000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < kUpdates; ++i) {
      records.inc();
      latency.observe(std::chrono::microseconds(i % 3000));
      if (i % 1000 == 0) registry.gauge("late_" + std::to_string(i / 1000), "registered while read");
    }
    done = true;
  });
  double last = 0;
  while (!done) {
    const MetricsSnapshot snap = registry.snapshot();
    const double now = snap.sample("records_total")->value;
    EXPECT_GE(now, last) << "a counter never goes back";
    last = now;
  }
  writer.join();
  const MetricsSnapshot snap = registry.snapshot();
  EXPECT_EQ(snap.sample("records_total")->value, kUpdates);
  EXPECT_EQ(snap.sample("latency_seconds")->histogram.count(), static_cast<std::uint64_t>(kUpdates));
  EXPECT_NE(snap.find("late_19"), nullptr);
}

}  // namespace
}  // namespace asyncstate
