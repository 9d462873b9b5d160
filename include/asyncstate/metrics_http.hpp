#pragma once
// MetricsHttpServer: serves a MetricsRegistry as Prometheus text at /metrics, from a
// background thread, on 127.0.0.1 unless configured otherwise. Optional: it needs
// cpp-httplib (Debian: libcpp-httplib-dev), so link asyncstate::metrics_http (the
// CMake package's HTTP component) or the cpp-httplib pkg-config module.
//
// Scrapes only read the registry (atomics and a short lock), so they never stall the
// task thread. The destructor stops the server and joins its thread.

#include <asyncstate/metrics_registry.hpp>
#include <asyncstate/prometheus.hpp>

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace asyncstate {

struct MetricsHttpOptions {
  std::string host = "127.0.0.1";  // loopback: expose the endpoint further only deliberately
  int port = 0;                    // 0: a free port chosen by the kernel (read it back with port())
  std::string path = "/metrics";
  int threads = 1;  // concurrent scrapes served at once
};

class MetricsHttpServer {
 public:
  explicit MetricsHttpServer(const MetricsRegistry& registry, MetricsHttpOptions options = {})
      : registry_(registry), options_(std::move(options)) {
    if (options_.path.empty() || options_.path.front() != '/') {
      throw std::invalid_argument("MetricsHttpServer: path must start with '/', not '" + options_.path + "'");
    }
    if (options_.threads < 1) throw std::invalid_argument("MetricsHttpServer: threads must be at least 1");
    const int threads = options_.threads;
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would let a second
    // process bind the same port and silently take half of the scrapes.
    server_.set_socket_options([](socket_t socket) {
      const int yes = 1;
      ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // One request per connection and short reads: a scrape holds a worker briefly, and
    // the destructor never waits long for an idle keep-alive connection.
    server_.set_keep_alive_max_count(1);
    server_.set_read_timeout(std::chrono::seconds(2));
    server_.Get(options_.path, [this](const httplib::Request&, httplib::Response& response) {
      response.set_content(toPrometheusText(registry_.snapshot()), std::string(kPrometheusContentType));
    });
    port_ = options_.port == 0 ? server_.bind_to_any_port(options_.host) : bindTo(options_.port);
    if (port_ < 0) {
      throw std::runtime_error("MetricsHttpServer: cannot listen on " + options_.host + ":" +
                               std::to_string(options_.port) + " (address in use, or not a local address)");
    }
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      listenReturned_ = true;
    });
    // stop() only stops a server that is running: wait for that, so the destructor
    // (also when called right away) cannot miss it and join a thread that never ends.
    while (!server_.is_running() && !listenReturned_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  ~MetricsHttpServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const noexcept { return port_; }
  const std::string& host() const noexcept { return options_.host; }
  // The address to scrape, e.g. "http://127.0.0.1:9464/metrics".
  std::string url() const { return "http://" + options_.host + ":" + std::to_string(port_) + options_.path; }

 private:
  int bindTo(int port) { return server_.bind_to_port(options_.host, port) ? port : -1; }

  const MetricsRegistry& registry_;
  MetricsHttpOptions options_;
  httplib::Server server_;
  int port_ = -1;
  std::atomic<bool> listenReturned_{false};
  std::thread thread_;
};

}  // namespace asyncstate
