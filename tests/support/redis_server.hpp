#pragma once
// Test harness: a private redis-server (or a three-node Redis Cluster) on free
// loopback ports, in a temporary directory, stopped by the destructor -- also when a
// test fails (a ChildProcess: even a crashed test binary leaves no server behind).

#include "child_process.hpp"

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asyncstate::test {

inline bool portIsFree(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A port the kernel considers free now (and, for cluster nodes, port + 10000 too: the
// cluster bus). Another process may take it before the server binds; the server then
// fails to start and the harness tries another port.
inline int pickFreePort(bool withClusterBus) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    const int port = ntohs(addr.sin_port);
    if (port + 10000 > 65535 && withClusterBus) continue;
    if (!withClusterBus || portIsFree(port + 10000)) return port;
  }
  throw std::runtime_error("redis harness: no free loopback port found");
}

inline std::string readFileTail(const std::filesystem::path& path, std::size_t maxBytes = 2000) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  return text.size() > maxBytes ? text.substr(text.size() - maxBytes) : text;
}

// Sends one command and returns its reply as text (or "ERR..."); for test set-up and
// checks. With a password, authenticates first (AUTH [user] password).
inline std::string redisQuery(int port, const std::vector<std::string>& args,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(2000),
                              const std::vector<std::string>& auth = {}) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  redisContext* ctx = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (ctx == nullptr || ctx->err != 0) {
    std::string why = ctx ? ctx->errstr : "no context";
    if (ctx) redisFree(ctx);
    throw std::runtime_error("redis harness: cannot connect to 127.0.0.1:" + std::to_string(port) + ": " + why);
  }
  redisSetTimeout(ctx, tv);
  auto send = [ctx](const std::vector<std::string>& command) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const std::string& a : command) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return static_cast<redisReply*>(redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
  };
  if (!auth.empty()) {
    std::vector<std::string> command{"AUTH"};
    command.insert(command.end(), auth.begin(), auth.end());
    if (redisReply* authReply = send(command)) freeReplyObject(authReply);
  }
  auto* reply = send(args);
  std::string text;
  if (reply == nullptr) {
    text = std::string("ERR connection: ") + ctx->errstr;
  } else if (reply->type == REDIS_REPLY_INTEGER) {
    text = std::to_string(reply->integer);
  } else if (reply->str != nullptr) {
    text.assign(reply->str, reply->len);
  } else if (reply->type == REDIS_REPLY_ARRAY) {
    text = std::to_string(reply->elements);
  }
  if (reply) freeReplyObject(reply);
  redisFree(ctx);
  return text;
}

class RedisServer {
 public:
  // With an admin password the server runs with `requirepass` and every query() of the
  // harness authenticates as the default user.
  explicit RedisServer(std::vector<std::string> extraArgs = {}, bool cluster = false, std::string adminPassword = {})
      : adminPassword_(std::move(adminPassword)) {
    char pattern[] = "/tmp/asyncstate-redis-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("redis harness: mkdtemp failed");
    dir_ = pattern;
    std::string lastError;
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = pickFreePort(cluster);
      std::vector<std::string> args{"/usr/bin/redis-server",
                                    "--port",
                                    std::to_string(port_),
                                    "--bind",
                                    "127.0.0.1",
                                    "--dir",
                                    dir_.string(),
                                    "--save",
                                    "",
                                    "--appendonly",
                                    "no",
                                    "--logfile",
                                    (dir_ / "redis.log").string(),
                                    "--daemonize",
                                    "no"};
      if (cluster) {
        args.insert(args.end(),
                    {"--cluster-enabled", "yes", "--cluster-config-file",
                     (dir_ / ("nodes-" + std::to_string(port_) + ".conf")).string(), "--cluster-node-timeout", "2000"});
      }
      if (!adminPassword_.empty()) args.insert(args.end(), {"--requirepass", adminPassword_});
      args.insert(args.end(), extraArgs.begin(), extraArgs.end());
      args_ = args;
      process_.start(args);
      if (waitUntilReady()) return;
      lastError = readFileTail(dir_ / "redis.log");
      stopProcess();
    }
    std::filesystem::remove_all(dir_);
    throw std::runtime_error("redis harness: redis-server did not start; log:\n" + lastError);
  }

  ~RedisServer() {
    stopProcess();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::filesystem::path& dir() const { return dir_; }
  std::string query(const std::vector<std::string>& args) const {
    return redisQuery(port_, args, std::chrono::milliseconds(2000), adminAuth());
  }

  // Stops the server and starts it again on the same port and configuration. Without
  // persistence (the harness default) it comes back empty: a lost-data scenario.
  void restart() {
    stopProcess();
    process_.start(args_);
    if (!waitUntilReady()) {
      throw std::runtime_error("redis harness: redis-server did not restart; log:\n" +
                               readFileTail(dir_ / "redis.log"));
    }
  }

 private:
  bool waitUntilReady() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_.running()) return false;
      try {
        if (redisQuery(port_, {"PING"}, std::chrono::milliseconds(200), adminAuth()) == "PONG") return true;
      } catch (const std::runtime_error&) {
        // not listening yet
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  void stopProcess() { process_.stop(std::chrono::seconds(5)); }

  std::vector<std::string> adminAuth() const {
    if (adminPassword_.empty()) return {};
    return {adminPassword_};
  }

  std::string adminPassword_;
  std::vector<std::string> args_;
  std::filesystem::path dir_;
  int port_ = 0;
  ChildProcess process_;
};

// Three masters, no replicas, slots split evenly by redis-cli --cluster create.
class RedisCluster {
 public:
  explicit RedisCluster(int nodes = 3, const std::string& adminPassword = {}) {
    for (int i = 0; i < nodes; ++i) {
      nodes_.push_back(std::make_unique<RedisServer>(std::vector<std::string>{}, true, adminPassword));
    }
    // timeout(1) bounds redis-cli, which waits for the nodes to agree and never gives up.
    // REDISCLI_AUTH keeps the password off the command line.
    std::string command = adminPassword.empty() ? std::string() : "REDISCLI_AUTH='" + adminPassword + "' ";
    command += "timeout 60 /usr/bin/redis-cli --cluster create";
    for (const auto& n : nodes_) command += " " + n->address();
    const auto log = nodes_.front()->dir() / "cluster-create.log";
    command += " --cluster-replicas 0 --cluster-yes > " + log.string() + " 2>&1";
    if (std::system(command.c_str()) != 0) {
      throw std::runtime_error("redis harness: cluster create failed:\n" + readFileTail(log));
    }
    waitUntilHealthy();
  }

  void waitUntilHealthy() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (const auto& n : nodes_) {
      while (n->query({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline) {
          throw std::runtime_error("redis harness: cluster not healthy within 20 s: " + n->query({"CLUSTER", "INFO"}));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }

  // Moves `slots` slots from node `from` to node `to`, keys included (redis-cli reshard).
  void reshard(std::size_t from, std::size_t to, int slots) const {
    const std::string fromId = nodes_.at(from)->query({"CLUSTER", "MYID"});
    const std::string toId = nodes_.at(to)->query({"CLUSTER", "MYID"});
    const auto log = nodes_.front()->dir() / "cluster-reshard.log";
    const std::string command = "timeout 120 /usr/bin/redis-cli --cluster reshard " + nodes_.front()->address() +
                                " --cluster-from " + fromId + " --cluster-to " + toId + " --cluster-slots " +
                                std::to_string(slots) + " --cluster-yes > " + log.string() + " 2>&1";
    if (std::system(command.c_str()) != 0) {
      throw std::runtime_error("redis harness: reshard failed:\n" + readFileTail(log));
    }
    waitUntilHealthy();
  }

  std::size_t size() const { return nodes_.size(); }
  const RedisServer& node(std::size_t i) const { return *nodes_.at(i); }
  std::vector<std::string> seeds() const { return {nodes_.front()->address()}; }

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace asyncstate::test
