// MetricsHttpServer: serves the registry at /metrics as Prometheus text on loopback,
// reflects updates, refuses a port that is taken, and shuts down cleanly.
#include <asyncstate/metrics_http.hpp>

#include <gtest/gtest.h>

namespace asyncstate {
namespace {

httplib::Result get(const MetricsHttpServer& server, const std::string& path) {
  httplib::Client client(server.host(), server.port());
  return client.Get(path);
}

TEST(MetricsHttpServer, ServesThePrometheusTextOnLoopback) {
  MetricsRegistry registry;
  Counter& records = registry.counter("asyncstate_records_in_total", "Records read.");
  records.inc(5);
  MetricsHttpServer server(registry);
  EXPECT_EQ(server.host(), "127.0.0.1");
  EXPECT_GT(server.port(), 0);
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");

  auto response = get(server, "/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), kPrometheusContentType);
  EXPECT_EQ(response->body, toPrometheusText(registry.snapshot()));
  EXPECT_NE(response->body.find("asyncstate_records_in_total 5\n"), std::string::npos);

  records.inc();
  response = get(server, "/metrics");
  ASSERT_TRUE(response);
  EXPECT_NE(response->body.find("asyncstate_records_in_total 6\n"), std::string::npos) << "every scrape is fresh";
}

TEST(MetricsHttpServer, AnswersOtherPathsWithNotFound) {
  MetricsRegistry registry;
  MetricsHttpServer server(registry, {.path = "/custom"});
  auto response = get(server, "/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 404);
  response = get(server, "/custom");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(MetricsHttpServer, RefusesAPortThatIsTaken) {
  MetricsRegistry registry;
  MetricsHttpServer first(registry);
  try {
    MetricsHttpServer second(registry, {.port = first.port()});
    FAIL() << "a second server bound port " << first.port();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(get(first, "/metrics")) << "the first server still serves";
}

TEST(MetricsHttpServer, RejectsBadOptions) {
  MetricsRegistry registry;
  EXPECT_THROW(MetricsHttpServer(registry, {.path = "metrics"}), std::invalid_argument);
  EXPECT_THROW(MetricsHttpServer(registry, {.threads = 0}), std::invalid_argument);
}

TEST(MetricsHttpServer, StopsCleanlyRightAfterStartAndAfterServing) {
  MetricsRegistry registry;
  for (int i = 0; i < 20; ++i) {
    MetricsHttpServer server(registry);
    if (i % 2 == 0) {
      EXPECT_TRUE(get(server, "/metrics"));
    }
  }
}

}  // namespace
}  // namespace asyncstate
