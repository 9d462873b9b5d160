// Against the real thing: a job on the memory backend publishes its metrics, a real
// Prometheus (Debian's) scrapes the /metrics endpoint every second, and its query API
// agrees with what the job measured itself; the shipped alert rules load in it.
#include "click_job.hpp"
#include "prometheus_server.hpp"

#include <asyncstate/job_metrics.hpp>
#include <asyncstate/metrics_http.hpp>

#include <gtest/gtest.h>

namespace asyncstate {
namespace {

using test::ClickRunner;
using test::CountClicks;

TEST(PrometheusScrape, SeriesAgreeWithWhatTheJobMeasured) {
  MemoryBackend memory;
  CachingBackend cache(memory, 16 * 1024);  // small: some reads miss, so the hit rate is not trivially 0 or 1
  MetricsRegistry registry;
  JobMetrics metrics(registry);
  CountClicks function;
  RunnerOptions options = test::clickJobOptions();
  options.progressEvery = 1000;
  options.onProgress = [&](const RunStats& s) { metrics.publish(s); };
  options.onWatermark = [&](std::int64_t watermark) {
    metrics.publishWatermark(watermark, std::chrono::milliseconds(1));
  };
  ClickRunner runner(
      cache, function, [](const test::Click& c) { return c.user; }, [](const test::Click& c) { return c.timeMillis; },
      options);
  const auto startMillis =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  VectorSource<test::Click> source(test::generateClicks(6000, 300, startMillis - 60'000));
  VectorCollector<std::string> sink;
  const RunStats stats = runner.run(source, sink);
  metrics.publish(stats);
  metrics.publish(runner.controller());
  metrics.publish(cache.cacheStats());
  HotKeyMonitor hotKeys({.maxWindowShare = 0.5, .minInFlight = 4}, nullptr);
  hotKeys.recordWaiting("sku \"7\"\\eu\n", 9, 10);  // a hostile key: quotes, backslash, newline
  metrics.publish(hotKeys);
  const CacheStats cacheStats = cache.cacheStats();
  ASSERT_GT(cacheStats.hits, 0U);
  ASSERT_GT(cacheStats.misses, 0U);

  MetricsHttpServer endpoint(registry);
  test::PrometheusServer prometheus(PROMETHEUS_BINARY, {"127.0.0.1:" + std::to_string(endpoint.port())},
                                    {std::filesystem::path(MONITORING_DIR) / "alerts.yml"});

  const auto records = prometheus.awaitQuery("asyncstate_records_in_total{job=\"asyncstate\"}");
  ASSERT_TRUE(records.has_value()) << "no scrape arrived; prometheus log:\n" << prometheus.log();
  EXPECT_EQ(*records, static_cast<double>(stats.records));
  EXPECT_EQ(prometheus.query("up{job=\"asyncstate\"}"), 1.0);
  EXPECT_EQ(prometheus.query("asyncstate_records_processed_total"),
            static_cast<double>(stats.controller.recordsProcessed));
  EXPECT_EQ(prometheus.query("asyncstate_records_out_total"), static_cast<double>(sink.values.size()));
  const auto hitRate =
      prometheus.query("asyncstate_cache_hits_total / (asyncstate_cache_hits_total + asyncstate_cache_misses_total)");
  ASSERT_TRUE(hitRate.has_value());
  EXPECT_NEAR(*hitRate, cacheStats.hitRate(), 1e-12);
  EXPECT_EQ(prometheus.query("asyncstate_record_duration_seconds_count"),
            static_cast<double>(runner.controller().recordLatency().count()));
  EXPECT_EQ(prometheus.query("asyncstate_hot_key_window_ratio{key=\"sku \\\"7\\\"\\\\eu\\n\"}"), 0.9)
      << "the escaped key arrives intact";
  const auto lag = prometheus.query("time() - asyncstate_watermark_seconds");
  ASSERT_TRUE(lag.has_value());
  EXPECT_GT(*lag, 0) << "the job's event time lies in the past";

  // promtool's linter agrees with the exposition (names, units, suffixes, escaping).
  httplib::Client scraper("127.0.0.1", endpoint.port());
  const auto scrape = scraper.Get("/metrics");
  ASSERT_TRUE(scrape);
  const auto exposition =
      std::filesystem::temp_directory_path() / ("asyncstate-exposition-" + std::to_string(::getpid()));
  std::ofstream(exposition) << scrape->body;
  const auto lint = exposition.string() + ".lint";
  const int status = std::system(
      (std::string(PROMTOOL_BINARY) + " check metrics < " + exposition.string() + " > " + lint + " 2>&1").c_str());
  EXPECT_EQ(status, 0) << test::fileText(lint);
  std::filesystem::remove(exposition);
  std::filesystem::remove(lint);

  const auto rules = prometheus.get("/api/v1/rules");
  ASSERT_TRUE(rules.has_value());
  for (const char* alert : {"AsyncStateCacheMissRatioHigh", "AsyncStateStoreErrors", "AsyncStateWatermarkLagHigh",
                            "AsyncStateCheckpointSlow", "AsyncStateHotKey"}) {
    EXPECT_NE(rules->find(std::string("\"name\":\"") + alert + "\""), std::string::npos) << alert << " not loaded";
  }
  EXPECT_EQ(rules->find("\"health\":\"err\""), std::string::npos) << *rules;
}

}  // namespace
}  // namespace asyncstate
