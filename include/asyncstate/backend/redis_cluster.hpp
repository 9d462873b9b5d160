#pragma once
// Redis Cluster routing: slots of keys, connections to the nodes, the slot map, and
// pipelined execution with retries and redirects. A standalone server is a "cluster"
// whose one node owns every slot.

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/backend/redis_connection.hpp>
#include <asyncstate/backend/redis_options.hpp>
#include <asyncstate/backend/redis_scripts.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asyncstate::detail {

// CRC16-CCITT (XModem), the hash Redis Cluster uses for slots.
inline std::uint16_t crc16(std::string_view bytes) {
  std::uint16_t crc = 0;
  for (unsigned char b : bytes) {
    crc ^= static_cast<std::uint16_t>(b << 8);
    for (int i = 0; i < 8; ++i)
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021) : static_cast<std::uint16_t>(crc << 1);
  }
  return crc;
}

// Slot of a key, honouring the first non-empty {hash tag}.
inline int redisSlotOf(std::string_view key) {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) & 16383;
}

// Connections to the nodes, the slot map, and pipelined execution with retries and
// redirects. Used by one thread at a time (the I/O thread, or the task thread for
// registration, snapshot and restore, each with its own router).
class RedisRouter {
 public:
  struct Command {
    std::vector<std::string> args;  // for a script: numkeys, keys..., args... (EVALSHA sha is prepended)
    bool script = false;
    int slot = -1;         // routed by slot, or
    std::size_t node = 0;  // to this node when slot < 0
    RedisReplyPtr reply;   // the outcome: a reply,
    std::string error;     // or why it failed for good
    bool done = false;
    std::optional<std::size_t> askNode;
    int redirects = 0;
  };

  // Interruptible wait between attempts; returns false when the backend is stopping.
  using Sleeper = std::function<bool(std::chrono::milliseconds)>;

  RedisRouter(const RedisOptions& options, Sleeper sleeper) : options_(options), sleeper_(std::move(sleeper)) {
    for (const std::string& seed : options_.seeds) nodeIndex(seed);
    refreshTopologyQuietly();
  }

  RedisRouter(const RedisRouter&) = delete;
  RedisRouter& operator=(const RedisRouter&) = delete;

  ~RedisRouter() {
    for (Node& node : nodes_) {
      if (node.ctx != nullptr) redisFree(node.ctx);
    }
  }

  // Throws BackendError naming every seed when none answers.
  void requireReachable() { refreshTopology(); }

  std::vector<std::size_t> masters() const {
    std::vector<std::size_t> out(slots_.begin(), slots_.end());
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  std::string address(std::size_t node) const { return nodes_.at(node).address; }
  std::size_t nodeOfSlot(int slot) const { return slots_.at(static_cast<std::size_t>(slot)); }

  std::string describeTopology() const {
    const auto m = masters();
    std::string text = cluster_ ? "cluster of " + std::to_string(m.size()) + " masters (" : "standalone (";
    for (std::size_t i = 0; i < m.size(); ++i) text += (i ? ", " : "") + nodes_[m[i]].address;
    return text + ")";
  }

  const RedisStats& stats() const { return stats_; }

  // Runs every command to a final outcome: a reply, or an error naming the node. Never
  // blocks longer than maxAttempts x (timeouts + backoff).
  void run(std::vector<Command>& commands) {
    std::chrono::milliseconds backoff = options_.initialBackoff;
    for (int attempt = 1;; ++attempt) {
      std::map<std::size_t, std::vector<Command*>> byNode;
      for (Command& c : commands) {
        if (c.done) continue;
        const std::size_t node = c.askNode     ? *c.askNode
                                 : c.slot >= 0 ? slots_[static_cast<std::size_t>(c.slot)]
                                               : c.node;
        byNode[node].push_back(&c);
      }
      if (byNode.empty()) return;
      bool transient = false;
      bool moved = false;
      std::string lastError;
      for (auto& [node, group] : byNode) sendPipeline(node, group, transient, moved, lastError);
      if (moved || transient) refreshTopologyQuietly();
      if (!transient) continue;  // redirects and NOSCRIPT resend at once
      if (attempt >= options_.maxAttempts || !sleeper_(backoff)) {
        const std::string reason = attempt >= options_.maxAttempts
                                       ? "gave up after " + std::to_string(attempt) + " attempts: " + lastError
                                       : "redis backend is shutting down (last error: " + lastError + ")";
        for (Command& c : commands) {
          if (!c.done) {
            c.error = reason;
            c.done = true;
          }
        }
        return;
      }
      backoff = std::min(backoff * 2, options_.maxBackoff);
    }
  }

  // Runs one command and throws on failure (registration, snapshot, restore).
  RedisReplyPtr runOne(std::vector<std::string> args, int slot) {
    std::vector<Command> one(1);
    one[0].args = std::move(args);
    one[0].slot = slot;
    run(one);
    if (!one[0].error.empty()) throw BackendError("redis: " + one[0].args.front() + ": " + one[0].error);
    return std::move(one[0].reply);
  }

  // Runs one command on one node (a per-node check such as INFO) and throws on failure.
  RedisReplyPtr runOnNode(std::vector<std::string> args, std::size_t node) {
    std::vector<Command> one(1);
    one[0].args = std::move(args);
    one[0].node = node;
    run(one);
    if (!one[0].error.empty()) throw BackendError("redis: " + one[0].args.front() + ": " + one[0].error);
    return std::move(one[0].reply);
  }

  std::vector<Command> runAll(std::vector<Command> commands, const std::string& what) {
    run(commands);
    for (const Command& c : commands) {
      if (!c.error.empty()) throw BackendError("redis: " + what + ": " + c.error);
    }
    return commands;
  }

 private:
  struct Node {
    std::string address;
    std::string host;
    int port = 0;
    redisContext* ctx = nullptr;
    bool scriptLoaded = false;
  };

  std::size_t nodeIndex(const std::string& address) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].address == address) return i;
    }
    auto [host, port] = splitAddress(address);
    nodes_.push_back(Node{address, host, port, nullptr, false});
    return nodes_.size() - 1;
  }

  static void disconnect(Node& node) {
    if (node.ctx != nullptr) redisFree(node.ctx);
    node.ctx = nullptr;
    node.scriptLoaded = false;
  }

  // Returns an empty string when connected, else why not; `rejected` when the server
  // refused the credentials.
  std::string connect(Node& node, bool* rejected = nullptr) {
    if (node.ctx != nullptr) return {};
    RedisConnectAttempt attempt = openRedisConnection(node.host, node.port, node.address, options_);
    if (rejected != nullptr) *rejected = attempt.rejected;
    node.ctx = attempt.ctx;
    return attempt.error;
  }

  // The script is loaded on every (re)connection: a restarted or new node has no cache.
  std::string loadScript(Node& node) {
    if (node.scriptLoaded) return {};
    const char* argv[] = {"SCRIPT", "LOAD", kBatchScript.data()};
    const std::size_t lens[] = {6, 4, kBatchScript.size()};
    RedisReplyPtr reply(static_cast<redisReply*>(redisCommandArgv(node.ctx, 3, argv, lens)));
    if (!reply) {
      std::string why = "connection to " + node.address + " lost: " + node.ctx->errstr;
      disconnect(node);
      return why;
    }
    if (reply->type != REDIS_REPLY_STRING) {
      return "SCRIPT LOAD on " + node.address + " failed: " + std::string(reply->str ? reply->str : "");
    }
    sha_.assign(reply->str, reply->len);
    node.scriptLoaded = true;
    return {};
  }

  // Missing or refused credentials, or a command the ACL user may not run.
  static bool isAccessError(std::string_view error) {
    return startsWith(error, "NOAUTH") || startsWith(error, "NOPERM") || startsWith(error, "WRONGPASS");
  }

  static bool isTransientError(std::string_view error) {
    return startsWith(error, "TRYAGAIN") || startsWith(error, "CLUSTERDOWN") || startsWith(error, "LOADING") ||
           startsWith(error, "MASTERDOWN") || startsWith(error, "BUSY");
  }

  void sendPipeline(std::size_t nodeId, std::vector<Command*>& group, bool& transient, bool& moved,
                    std::string& lastError) {
    Node& node = nodes_[nodeId];
    bool rejected = false;
    std::string why = connect(node, &rejected);
    if (rejected) {
      for (Command* c : group) {
        c->error = why;
        c->done = true;
      }
      return;
    }
    if (why.empty() && std::any_of(group.begin(), group.end(), [](Command* c) { return c->script; })) {
      why = loadScript(node);
    }
    if (!why.empty()) {
      transient = true;
      lastError = why;
      stats_.retries += group.size();
      return;
    }
    ++stats_.pipelines;
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (Command* c : group) {
      if (c->askNode) redisAppendCommand(node.ctx, "ASKING");
      argv.clear();
      lens.clear();
      if (c->script) {
        argv = {"EVALSHA", sha_.c_str()};
        lens = {7, sha_.size()};
      }
      for (const std::string& a : c->args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      redisAppendCommandArgv(node.ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
      ++stats_.commands;
    }
    for (std::size_t i = 0; i < group.size(); ++i) {
      Command& c = *group[i];
      const bool asked = c.askNode.has_value();
      c.askNode.reset();
      void* raw = nullptr;
      if (asked && redisGetReply(node.ctx, &raw) == REDIS_OK) freeReplyObject(raw);
      if (node.ctx->err != 0 || redisGetReply(node.ctx, &raw) != REDIS_OK) {
        // The connection is gone; this and every later reply of the pipeline are lost.
        // Their commands are retried: scripts are idempotent through their markers.
        lastError = "connection to " + node.address + " lost: " + node.ctx->errstr;
        transient = true;
        stats_.retries += group.size() - i;
        disconnect(node);
        return;
      }
      RedisReplyPtr reply(static_cast<redisReply*>(raw));
      if (reply->type != REDIS_REPLY_ERROR) {
        c.reply = std::move(reply);
        c.done = true;
        continue;
      }
      const std::string error(reply->str, reply->len);
      const bool isMoved = startsWith(error, "MOVED ");
      if ((isMoved || startsWith(error, "ASK ")) && ++c.redirects <= 16) {
        ++stats_.redirects;
        // "MOVED <slot> <host:port>"
        const std::string target = error.substr(error.rfind(' ') + 1);
        const std::size_t to = nodeIndex(target);
        if (isMoved) {
          moved = true;
          if (c.slot >= 0) slots_[static_cast<std::size_t>(c.slot)] = to;
        } else {
          c.askNode = to;
        }
      } else if (startsWith(error, "NOSCRIPT") && ++c.redirects <= 16) {
        nodes_[nodeId].scriptLoaded = false;
      } else if (isTransientError(error)) {
        transient = true;
        lastError = node.address + " replied " + error;
        ++stats_.retries;
      } else {
        c.error = node.address + " replied " + error;
        c.done = true;
      }
    }
  }

  void refreshTopologyQuietly() {
    try {
      refreshTopology();
    } catch (const BackendError&) {  // NOLINT(bugprone-empty-catch)
      // No node is reachable, or one refused the credentials, right now; the commands
      // report it when they run.
    }
  }

  void refreshTopology() {
    std::string errors;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      Node& node = nodes_[i];
      bool rejected = false;
      const std::string why = connect(node, &rejected);
      if (rejected) throw BackendError("redis: " + why);
      if (!why.empty()) {
        errors += (errors.empty() ? "" : "; ") + why;
        continue;
      }
      RedisReplyPtr reply(static_cast<redisReply*>(redisCommand(node.ctx, "CLUSTER SLOTS")));
      if (!reply) {
        errors += (errors.empty() ? "" : "; ") + ("connection to " + node.address + " lost: " + node.ctx->errstr);
        disconnect(node);
        continue;
      }
      if (reply->type == REDIS_REPLY_ERROR && isAccessError({reply->str, reply->len})) {
        throw BackendError("redis: " + node.address + " refused CLUSTER SLOTS to " + options_.credentials.describe() +
                           ": " + std::string(reply->str, reply->len));
      }
      if (reply->type == REDIS_REPLY_ERROR) {
        // "ERR This instance has cluster support disabled": a standalone server.
        cluster_ = false;
        std::fill(slots_.begin(), slots_.end(), i);
        return;
      }
      cluster_ = true;
      for (std::size_t r = 0; r < reply->elements; ++r) {
        const redisReply* range = reply->element[r];
        if (range->elements < 3) continue;
        const redisReply* master = range->element[2];
        std::string host(master->element[0]->str, master->element[0]->len);
        if (host.empty()) host = node.host;
        const std::size_t target = nodeIndex(host + ":" + std::to_string(master->element[1]->integer));
        for (long long s = range->element[0]->integer; s <= range->element[1]->integer; ++s) {
          slots_[static_cast<std::size_t>(s)] = target;
        }
      }
      return;
    }
    throw BackendError("redis: no node reachable: " + errors);
  }

  const RedisOptions& options_;
  Sleeper sleeper_;
  std::vector<Node> nodes_;
  std::vector<std::size_t> slots_ = std::vector<std::size_t>(16384, 0);
  bool cluster_ = false;
  std::string sha_;
  RedisStats stats_;
};

}  // namespace asyncstate::detail
