// Prometheus text exposition 0.0.4: the exact text, escaping of hostile label values
// (quotes, backslashes, newlines, invalid UTF-8) and histogram series.
#include <asyncstate/prometheus.hpp>

#include <gtest/gtest.h>

namespace asyncstate {
namespace {

TEST(PrometheusText, WritesCountersGaugesAndHistograms) {
  MetricsRegistry registry;
  registry.counter("asyncstate_records_in_total", "Records read.", {{"job_name", "orders"}}).inc(42);
  registry.gauge("asyncstate_in_flight_records", "In flight.").set(7);
  Histogram& h = registry.histogram("asyncstate_batch_size_requests", "Per batch.", {1, 4});
  h.observe(1);
  h.observe(3);
  h.observe(9);
  EXPECT_EQ(toPrometheusText(registry.snapshot()),
            "# HELP asyncstate_batch_size_requests Per batch.\n"
            "# TYPE asyncstate_batch_size_requests histogram\n"
            "asyncstate_batch_size_requests_bucket{le=\"1\"} 1\n"
            "asyncstate_batch_size_requests_bucket{le=\"4\"} 2\n"
            "asyncstate_batch_size_requests_bucket{le=\"+Inf\"} 3\n"
            "asyncstate_batch_size_requests_sum 13\n"
            "asyncstate_batch_size_requests_count 3\n"
            "# HELP asyncstate_in_flight_records In flight.\n"
            "# TYPE asyncstate_in_flight_records gauge\n"
            "asyncstate_in_flight_records 7\n"
            "# HELP asyncstate_records_in_total Records read.\n"
            "# TYPE asyncstate_records_in_total counter\n"
            "asyncstate_records_in_total{job_name=\"orders\"} 42\n");
}

TEST(PrometheusText, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.gauge("hot", "a \\ backslash\nand a line", {{"key", "say \"hi\"\\n\nnext"}}).set(1);
  const std::string text = toPrometheusText(registry.snapshot());
  EXPECT_NE(text.find("# HELP hot a \\\\ backslash\\nand a line\n"), std::string::npos) << text;
  EXPECT_NE(text.find("hot{key=\"say \\\"hi\\\"\\\\n\\nnext\"} 1\n"), std::string::npos) << text;
}

TEST(PrometheusText, ReplacesInvalidUtf8) {
  EXPECT_EQ(toValidUtf8("caf\xC3\xA9"), "caf\xC3\xA9") << "valid UTF-8 stays";
  EXPECT_EQ(toValidUtf8(std::string("a\xFF\x00z", 4)), std::string("a\\xFF\0z", 7));
  EXPECT_EQ(toValidUtf8("\xC0\xAF"), "\\xC0\\xAF") << "overlong encodings are invalid";
  EXPECT_EQ(toValidUtf8("\xED\xA0\x80"), "\\xED\\xA0\\x80") << "surrogates are invalid";
  EXPECT_EQ(toValidUtf8("\xE2\x82"), "\\xE2\\x82") << "a cut sequence is invalid";
  EXPECT_EQ(escapeLabelValue("\xFF"), "\\\\xFF") << "the replacement's backslash is escaped like any other";
}

TEST(PrometheusText, FormatsSpecialValues) {
  EXPECT_EQ(formatPrometheusValue(0.5), "0.5");
  EXPECT_EQ(formatPrometheusValue(1e-05), "1e-05");
  EXPECT_EQ(formatPrometheusValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(formatPrometheusValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(formatPrometheusValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(formatPrometheusValue(123456789.0), "123456789");
}

TEST(PrometheusText, LatencyBucketsAreInSeconds) {
  MetricsRegistry registry;
  registry.latencyHistogram("d_seconds", "h").observe(std::chrono::milliseconds(3));
  const std::string text = toPrometheusText(registry.snapshot());
  EXPECT_NE(text.find("d_seconds_bucket{le=\"1.6e-05\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("d_seconds_bucket{le=\"0.004096\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("d_seconds_sum 0.003\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace asyncstate
