// Against the real thing: a real Prometheus (Debian's) scrapes /metrics every second,
// and its query API agrees with what the job measured itself -- for the example job
// (examples/ecommerce, run as its own process with --metrics-port) and for a test job
// with hostile label values; the shipped alert rules load in it.
#include "../support/child_process.hpp"
#include "click_job.hpp"
#include "prometheus_server.hpp"

#include <asyncstate/job_metrics.hpp>
#include <asyncstate/metrics_http.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <regex>
#include <thread>

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

#ifdef ECOMMERCE_JOB_BINARY
// What the example job printed about each run: "measured run=<run> name=value ...".
std::map<std::string, std::map<std::string, double>> measuredRuns(const std::string& output) {
  std::map<std::string, std::map<std::string, double>> runs;
  static const std::regex line(R"(measured run=(\w+)((?: \w+=[^ \n]+)+))");
  static const std::regex field(R"( (\w+)=([^ \n]+))");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), line); it != std::sregex_iterator(); ++it) {
    const std::string fields = (*it)[2].str();
    auto& run = runs[(*it)[1].str()];
    for (auto f = std::sregex_iterator(fields.begin(), fields.end(), field); f != std::sregex_iterator(); ++f) {
      run[(*f)[1].str()] = std::stod((*f)[2].str());
    }
  }
  return runs;
}

// Polls until the query's value is `expected` (a scrape during the run sees earlier
// values); the last value seen, or nullopt, after `limit`.
std::optional<double> awaitValue(const test::PrometheusServer& prometheus, const std::string& promql, double expected,
                                 std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::optional<double> value;
  while (std::chrono::steady_clock::now() < deadline) {
    value = prometheus.query(promql);
    if (value && std::abs(*value - expected) <= 1e-12 * std::max(1.0, std::abs(expected))) return value;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return value;
}

TEST(PrometheusScrape, ExampleJobSeriesAgreeWithWhatItPrinted) {
  const int port = test::freeLoopbackPort();
  test::PrometheusServer prometheus(PROMETHEUS_BINARY, {"127.0.0.1:" + std::to_string(port)});
  const auto output = std::filesystem::temp_directory_path() / ("asyncstate-example-" + std::to_string(::getpid()));
  test::ChildProcess job;
  job.start({ECOMMERCE_JOB_BINARY, "--events", "3000", "--remote-events", "600", "--latency-us", "200", "--cache-kib",
             "16", "--metrics-port", std::to_string(port), "--serve-after-s", "300"},
            output);
  // The job prints what it measured, then keeps serving its final metrics.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (test::fileText(output).find("serving the final metrics") == std::string::npos) {
    ASSERT_TRUE(job.running()) << "the example job exited (status " << job.exitStatus() << "):\n"
                               << test::fileText(output);
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << test::fileText(output);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string printed = test::fileText(output);
  std::filesystem::remove(output);
  const auto runs = measuredRuns(printed);
  ASSERT_EQ(runs.size(), 6U) << printed;
  for (const auto& [run, measured] : runs) {
    SCOPED_TRACE(run);
    const std::string labels = "{job=\"asyncstate\",run=\"" + run + "\"}";
    EXPECT_EQ(awaitValue(prometheus, "asyncstate_records_in_total" + labels, measured.at("records_in")),
              measured.at("records_in"))
        << prometheus.log();
    EXPECT_EQ(prometheus.query("asyncstate_records_processed_total" + labels), measured.at("records_processed"));
    // The observer's events: one batch-size sample and one round trip per batch sent.
    EXPECT_EQ(prometheus.query("asyncstate_batch_size_requests_count" + labels), measured.at("batches"));
    EXPECT_EQ(prometheus.query("asyncstate_backend_request_duration_seconds_count" + labels), measured.at("batches"));
    EXPECT_GT(prometheus.query("asyncstate_watermark_wait_duration_seconds_count" + labels).value_or(0), 0);
    const auto hitRate = prometheus.query("asyncstate_cache_hits_total" + labels + " / (asyncstate_cache_hits_total" +
                                          labels + " + asyncstate_cache_misses_total" + labels + ")");
    ASSERT_TRUE(hitRate.has_value());
    EXPECT_NEAR(*hitRate, measured.at("cache_hit_rate"), 1e-12);
    EXPECT_GT(*hitRate, 0);
    EXPECT_LT(*hitRate, 1);
  }
  EXPECT_EQ(prometheus.query("up{job=\"asyncstate\"}"), 1.0);
  job.stop();
}
#endif

}  // namespace
}  // namespace asyncstate
