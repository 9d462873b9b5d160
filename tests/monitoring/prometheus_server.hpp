#pragma once
// Test harness: a private Prometheus on a free loopback port, in a temporary directory,
// scraping the targets it is given every second and loading the given rule files;
// stopped by pid in the destructor (a ChildProcess: a crashed test binary leaves no
// server behind).

#include "../support/child_process.hpp"

#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asyncstate::test {

inline std::string fileText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class PrometheusServer {
 public:
  PrometheusServer(const std::string& binary, const std::vector<std::string>& targets,
                   const std::vector<std::filesystem::path>& ruleFiles = {}) {
    char pattern[] = "/tmp/asyncstate-prometheus-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("prometheus harness: mkdtemp failed");
    dir_ = pattern;
    writeConfig(targets, ruleFiles);
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = freeLoopbackPort();
      process_.start({binary, "--config.file=" + (dir_ / "prometheus.yml").string(),
                      "--storage.tsdb.path=" + (dir_ / "data").string(),
                      "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
                     dir_ / "prometheus.log");
      if (waitUntilReady()) return;
      stop();
    }
    const std::string log = fileText(dir_ / "prometheus.log");
    std::filesystem::remove_all(dir_);
    throw std::runtime_error("prometheus harness: prometheus did not start; log:\n" + log);
  }

  ~PrometheusServer() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const noexcept { return port_; }
  std::string log() const { return fileText(dir_ / "prometheus.log"); }

  // GET on the HTTP API; the body, or nullopt when the request failed.
  std::optional<std::string> get(const std::string& pathAndQuery) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(std::chrono::seconds(5));
    auto response = client.Get(pathAndQuery);
    if (!response || response->status != 200) return std::nullopt;
    return response->body;
  }

  // The value of an instant query's first result (/api/v1/query), or nullopt when the
  // query has no result yet.
  std::optional<double> query(const std::string& promql) const {
    const auto body = get("/api/v1/query?query=" + httplib::detail::encode_query_param(promql));
    if (!body) return std::nullopt;
    static const std::regex value(R"re("value":\[[^,\]]+,"([^"]+)"\])re");
    std::smatch match;
    if (!std::regex_search(*body, match, value)) return std::nullopt;
    return std::stod(match[1].str());
  }

  // Polls a query until it has a value (Prometheus scrapes every second); nullopt after `limit`.
  std::optional<double> awaitQuery(const std::string& promql,
                                   std::chrono::seconds limit = std::chrono::seconds(30)) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto v = query(promql)) return v;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return std::nullopt;
  }

 private:
  void writeConfig(const std::vector<std::string>& targets, const std::vector<std::filesystem::path>& ruleFiles) {
    std::ofstream config(dir_ / "prometheus.yml");
    config << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n";
    if (!ruleFiles.empty()) {
      config << "rule_files:\n";
      for (const auto& file : ruleFiles) config << "  - '" << file.string() << "'\n";
    }
    config << "scrape_configs:\n  - job_name: asyncstate\n    static_configs:\n      - targets:\n";
    for (const std::string& target : targets) config << "          - '" << target << "'\n";
  }

  bool waitUntilReady() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_.running()) return false;
      if (get("/-/ready")) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  void stop() { process_.stop(std::chrono::seconds(10)); }

  std::filesystem::path dir_;
  int port_ = 0;
  ChildProcess process_;
};

}  // namespace asyncstate::test
