#pragma once
// The remote backend: Redis (standalone or Redis Cluster) through hiredis.
//
// Keys. Every Redis key of a job carries the hash tag {<job>:<key group>}, so a key
// group is one Cluster slot and a batch's requests of one key group can run as one
// atomic script on one node:
//   {job:kg}:<len(state)>:<state>:<key bytes>:v   value, list blob, accumulator (string)
//   {job:kg}:<len(state)>:<state>:<key bytes>:h   map entries (hash userKey -> value)
//   {job:kg}:<len(state)>:<state>:<key bytes>:z   map user keys (sorted set, all scores 0)
//   {job:kg}:b:<batch id>                         batch marker (see idempotence)
//   {job:meta}:states                             state name -> kind
// The sorted set gives Scan its order: ZRANGEBYLEX orders members by their bytes
// (memcmp), which is the interface's "ascending by user key bytes", and a cursor is
// just the last user key returned, so a chunk costs O(log n + limit) however large
// the map.
//
// Batches. executeBatch() groups the requests by key group (keeping their order),
// turns each group into one EVALSHA of a Lua script and hands the lot to the I/O
// thread, which pipelines them per node (append every command, then read every reply)
// and completes the requests from there. One script per key group runs atomically and
// in batch order, so requests of one key take effect in batch order.
//
// Idempotence. Disconnects, timeouts, TRYAGAIN/CLUSTERDOWN/LOADING and redirects are
// retried with bounded exponential backoff. A script whose reply was lost may or may
// not have run, and Append is not idempotent; so a script with writes first looks for
// its batch marker and, if the marker exists, returns the reply stored in it instead
// of running again; otherwise it runs and stores its reply (msgpack) under the marker
// with a TTL. A retried batch is therefore applied exactly once and even its reads
// answer as of the first run.
//
// Cluster. The backend reads CLUSTER SLOTS at start and routes every script to the
// master of its key group's slot; MOVED refreshes the slot map and resends, ASK sends
// ASKING plus the command to the importing node once. A standalone server answers
// CLUSTER SLOTS with an error and gets every slot.
//
// Users link hiredis themselves (pkg-config: hiredis).

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace asyncstate {

struct RedisOptions {
  // "host:port" of the server, or of any Cluster nodes (the rest are discovered).
  std::vector<std::string> seeds{"127.0.0.1:6379"};
  // Namespace of every key: two jobs (or two tests) on one Redis never see each other.
  std::string job = "asyncstate";
  std::chrono::milliseconds connectTimeout{1000};
  std::chrono::milliseconds commandTimeout{2000};
  int maxAttempts = 10;  // per command, not counting redirects
  std::chrono::milliseconds initialBackoff{10};
  std::chrono::milliseconds maxBackoff{500};
  // How long a batch marker (and the reply it keeps) lives: longer than any retry.
  std::chrono::seconds batchMarkerTtl{600};
};

struct RedisStats {
  std::uint64_t pipelines = 0;  // round trips to a node
  std::uint64_t commands = 0;
  std::uint64_t retries = 0;    // commands resent after a transient error
  std::uint64_t redirects = 0;  // MOVED / ASK
};

namespace detail {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

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

inline std::pair<std::string, int> splitAddress(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("redis: address '" + address + "' is not host:port");
  return {address.substr(0, colon), std::stoi(address.substr(colon + 1))};
}

inline timeval toTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
  return tv;
}

inline bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// One batch of one key group. KEYS[1] is the batch marker; each operation is 7
// arguments: op, key index, zset key index, user key, value, lex range start, limit.
inline constexpr std::string_view kBatchScript = R"lua(
local writes = ARGV[1] == '1'
if writes then
  local done = redis.call('GET', KEYS[1])
  if done then return cmsgpack.unpack(done) end
end
local out = {}
local n = (#ARGV - 2) / 7
for i = 0, n - 1 do
  local b = 2 + i * 7
  local op = ARGV[b + 1]
  local k = KEYS[tonumber(ARGV[b + 2])]
  local z = KEYS[tonumber(ARGV[b + 3])]
  local uk = ARGV[b + 4]
  local r = 1
  if op == 'g' then r = redis.call('GET', k)
  elseif op == 'G' then r = redis.call('HGET', k, uk)
  elseif op == 'p' then redis.call('SET', k, ARGV[b + 5])
  elseif op == 'P' then redis.call('HSET', k, uk, ARGV[b + 5]); redis.call('ZADD', z, 0, uk)
  elseif op == 'd' then redis.call('DEL', k)
  elseif op == 'D' then redis.call('HDEL', k, uk); redis.call('ZREM', z, uk)
  elseif op == 'a' then redis.call('APPEND', k, ARGV[b + 5])
  elseif op == 'c' then redis.call('DEL', k, z)
  elseif op == 's' then
    local limit = tonumber(ARGV[b + 7])
    local names = redis.call('ZRANGEBYLEX', z, ARGV[b + 6], '+', 'LIMIT', 0, limit + 1)
    local more = 0
    if #names > limit then names[#names] = nil; more = 1 end
    local values = {}
    for j = 1, #names do values[j] = redis.call('HGET', k, names[j]) end
    r = {names, values, more}
  end
  out[#out + 1] = r
end
if writes then redis.call('SET', KEYS[1], cmsgpack.pack(out), 'EX', ARGV[2]) end
return out
)lua";

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

  // Returns an empty string when connected, else why not.
  std::string connect(Node& node) {
    if (node.ctx != nullptr) return {};
    redisContext* ctx = redisConnectWithTimeout(node.host.c_str(), node.port, toTimeval(options_.connectTimeout));
    if (ctx == nullptr) return "cannot allocate a hiredis context";
    if (ctx->err != 0) {
      std::string why = "cannot connect to " + node.address + ": " + ctx->errstr;
      redisFree(ctx);
      return why;
    }
    redisSetTimeout(ctx, toTimeval(options_.commandTimeout));
    redisEnableKeepAlive(ctx);
    node.ctx = ctx;
    return {};
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

  static bool isTransientError(std::string_view error) {
    return startsWith(error, "TRYAGAIN") || startsWith(error, "CLUSTERDOWN") || startsWith(error, "LOADING") ||
           startsWith(error, "MASTERDOWN") || startsWith(error, "BUSY");
  }

  void sendPipeline(std::size_t nodeId, std::vector<Command*>& group, bool& transient, bool& moved,
                    std::string& lastError) {
    Node& node = nodes_[nodeId];
    std::string why = connect(node);
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
      // Every node is unreachable right now; the next attempt reports it per command.
    }
  }

  void refreshTopology() {
    std::string errors;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      Node& node = nodes_[i];
      const std::string why = connect(node);
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

}  // namespace detail

class RedisBackend final : public StateBackend {
 public:
  explicit RedisBackend(RedisOptions options) : options_(std::move(options)) {
    if (options_.job.empty() || options_.job.find_first_of("{}*?[]\\:") != std::string::npos) {
      throw std::invalid_argument("redis: job name '" + options_.job +
                                  "' must be non-empty without {}*?[]\\: (it is part of every key's hash tag)");
    }
    if (options_.seeds.empty()) throw std::invalid_argument("redis: no seed address given");
    std::random_device entropy;
    batchPrefix_ = (std::uint64_t{entropy()} << 32) ^ entropy() ^
                   static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    admin_ = std::make_unique<detail::RedisRouter>(options_, [](std::chrono::milliseconds d) {
      std::this_thread::sleep_for(d);
      return true;
    });
    admin_->requireReachable();
    io_ = std::thread([this] { ioLoop(); });
  }

  ~RedisBackend() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    io_.join();
  }

  RedisBackend(const RedisBackend&) = delete;
  RedisBackend& operator=(const RedisBackend&) = delete;

  std::string name() const override { return "redis"; }

  std::string describeConfiguration() const override {
    return "redis(" + admin_->describeTopology() + ", job '" + options_.job +
           "', batches pipelined on one I/O thread as one script per key group, up to " +
           std::to_string(options_.maxAttempts) + " attempts with backoff " +
           std::to_string(options_.initialBackoff.count()) + ".." + std::to_string(options_.maxBackoff.count()) +
           " ms, command timeout " + std::to_string(options_.commandTimeout.count()) + " ms)\n" +
           std::string(kNoLocalCacheWarning);
  }

  std::uint32_t registerState(const std::string& stateName, StateKind kind) override {
    for (std::uint32_t id = 0; id < registry_->size(); ++id) {
      const StateInfo& s = (*registry_)[id];
      if (s.name != stateName) continue;
      if (s.kind != kind) throw kindMismatch(stateName, s.kind, kind);
      return id;
    }
    const std::string kindByte(1, static_cast<char>(kind));
    admin_->runOne({"HSETNX", metaKey(), stateName, kindByte}, metaSlot());
    detail::RedisReplyPtr stored = admin_->runOne({"HGET", metaKey(), stateName}, metaSlot());
    if (stored->type == REDIS_REPLY_STRING && stored->len == 1 && stored->str[0] != kindByte[0]) {
      throw kindMismatch(stateName, static_cast<StateKind>(stored->str[0]), kind);
    }
    auto next = std::make_shared<std::vector<StateInfo>>(*registry_);
    next->push_back(StateInfo{stateName, kind});
    registry_ = std::move(next);
    return static_cast<std::uint32_t>(registry_->size() - 1);
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    Job job{std::move(batch), &sink, registry_, {}, {}};
    std::map<std::uint32_t, std::vector<std::size_t>> byGroup;
    for (std::size_t i = 0; i < job.requests.size(); ++i) byGroup[keyGroupOf(job.requests[i].key)].push_back(i);
    const std::uint64_t batchId = ++batchCounter_;
    for (auto& [group, indexes] : byGroup) {
      job.commands.push_back(scriptFor(job, group, indexes, batchId));
      job.members.push_back(std::move(indexes));
    }
    {
      std::lock_guard lock(mutex_);
      if (stopping_) throw BackendError("redis: executeBatch after the backend was stopped");
      queue_.push_back(std::move(job));
    }
    wake_.notify_one();
  }

  void snapshot(Savepoint& out) override {
    std::map<std::string, StateKind> kinds = storedKinds();
    for (const StateInfo& s : *registry_) kinds[s.name] = s.kind;
    for (const auto& [stateName, kind] : kinds) out.declare(stateName, kind);

    std::vector<detail::RedisRouter::Command> reads;
    std::vector<ParsedKey> parsed;
    for (const std::string& key : jobKeys()) {
      std::optional<ParsedKey> p = parseKey(key);
      if (!p || p->suffix == 'z') continue;
      auto kind = kinds.find(p->state);
      if (kind == kinds.end()) continue;
      detail::RedisRouter::Command c;
      c.args = {p->suffix == 'h' ? "HGETALL" : "GET", key};
      c.slot = detail::redisSlotOf(key);
      reads.push_back(std::move(c));
      parsed.push_back(std::move(*p));
    }
    reads = admin_->runAll(std::move(reads), "snapshot");
    for (std::size_t i = 0; i < reads.size(); ++i) {
      const redisReply* r = reads[i].reply.get();
      const ParsedKey& p = parsed[i];
      const StateKind kind = kinds[p.state];
      if (r->type == REDIS_REPLY_STRING) {
        out.add(p.state, kind, p.key, "", std::string(r->str, r->len));
      } else if (r->type == REDIS_REPLY_ARRAY) {
        for (std::size_t e = 0; e + 1 < r->elements; e += 2) {
          out.add(p.state, kind, p.key, std::string(r->element[e]->str, r->element[e]->len),
                  std::string(r->element[e + 1]->str, r->element[e + 1]->len));
        }
      }
    }
  }

  // Kinds are checked before anything is deleted. Redis has no multi-slot transaction,
  // so the replacement itself is not atomic: a failure midway throws BackendError and
  // the restore must be repeated.
  void restore(const Savepoint& in) override {
    const std::map<std::string, StateKind> stored = storedKinds();
    for (const auto& [stateName, state] : in.states()) {
      auto it = stored.find(stateName);
      if (it != stored.end() && it->second != state.kind) throw kindMismatch(stateName, it->second, state.kind);
      for (const StateInfo& s : *registry_) {
        if (s.name == stateName && s.kind != state.kind) throw kindMismatch(stateName, s.kind, state.kind);
      }
    }
    for (const auto& [stateName, state] : in.states()) registerState(stateName, state.kind);

    std::vector<detail::RedisRouter::Command> deletes;
    for (const std::string& key : jobKeys()) {
      if (!parseKey(key)) continue;
      detail::RedisRouter::Command c;
      c.args = {"UNLINK", key};
      c.slot = detail::redisSlotOf(key);
      deletes.push_back(std::move(c));
    }
    admin_->runAll(std::move(deletes), "restore (clearing the old contents)");

    std::vector<detail::RedisRouter::Command> writes;
    auto flush = [&] {
      admin_->runAll(std::move(writes), "restore (writing entries)");
      writes.clear();
    };
    for (const auto& [stateName, state] : in.states()) {
      for (const SavepointEntry& e : state.entries) {
        const std::string base = baseKey(keyGroupOf(e.key), stateName, e.key);
        const int slot = detail::redisSlotOf(base);
        auto add = [&](std::vector<std::string> args) {
          detail::RedisRouter::Command c;
          c.args = std::move(args);
          c.slot = slot;
          writes.push_back(std::move(c));
        };
        if (state.kind == StateKind::Map) {
          add({"HSET", base + ":h", e.userKey, e.value});
          add({"ZADD", base + ":z", "0", e.userKey});
        } else {
          add({"SET", base + ":v", e.value});
        }
        if (writes.size() >= 2000) flush();
      }
    }
    flush();
  }

  BackendStats stats() const override { return BackendStats{batches_.load(), requests_.load(), failures_.load()}; }

  RedisStats redisStats() const {
    std::lock_guard lock(statsMutex_);
    return redisStats_;
  }

 private:
  struct StateInfo {
    std::string name;
    StateKind kind;
  };

  struct Job {
    std::vector<StateRequest> requests;
    CompletionSink* sink;
    std::shared_ptr<const std::vector<StateInfo>> registry;  // for the names in error messages
    std::vector<detail::RedisRouter::Command> commands;      // one per key group
    std::vector<std::vector<std::size_t>> members;           // request indexes per command
  };

  struct ParsedKey {
    std::string state;
    std::string key;
    char suffix;
  };

  std::string tag(std::uint32_t keyGroup) const { return "{" + options_.job + ":" + std::to_string(keyGroup) + "}"; }
  std::string metaKey() const { return "{" + options_.job + ":meta}:states"; }
  int metaSlot() const { return detail::redisSlotOf(metaKey()); }

  std::string baseKey(std::uint32_t keyGroup, const std::string& stateName, const std::string& key) const {
    return tag(keyGroup) + ":" + std::to_string(stateName.size()) + ":" + stateName + ":" + key;
  }

  // Inverse of baseKey + suffix; nullopt for markers, metadata and foreign keys.
  std::optional<ParsedKey> parseKey(std::string_view key) const {
    const std::string head = "{" + options_.job + ":";
    if (!detail::startsWith(key, head)) return std::nullopt;
    const auto close = key.find("}:");
    if (close == std::string_view::npos || close + 2 >= key.size()) return std::nullopt;
    std::string_view rest = key.substr(close + 2);
    const auto colon = rest.find(':');
    if (colon == 0 || colon == std::string_view::npos || rest.find_first_not_of("0123456789") != colon)
      return std::nullopt;
    const std::size_t nameLength = std::stoul(std::string(rest.substr(0, colon)));
    rest.remove_prefix(colon + 1);
    if (rest.size() < nameLength + 1 + 2 || rest[nameLength] != ':' || rest[rest.size() - 2] != ':')
      return std::nullopt;
    ParsedKey p;
    p.state = std::string(rest.substr(0, nameLength));
    p.key = std::string(rest.substr(nameLength + 1, rest.size() - nameLength - 3));
    p.suffix = rest.back();
    return p;
  }

  std::invalid_argument kindMismatch(const std::string& stateName, StateKind have, StateKind want) const {
    return std::invalid_argument("redis job '" + options_.job + "': state '" + stateName + "' is " + toString(have) +
                                 ", not " + toString(want));
  }

  std::map<std::string, StateKind> storedKinds() {
    detail::RedisReplyPtr all = admin_->runOne({"HGETALL", metaKey()}, metaSlot());
    std::map<std::string, StateKind> kinds;
    for (std::size_t e = 0; e + 1 < all->elements; e += 2) {
      if (all->element[e + 1]->len != 1) continue;
      kinds[std::string(all->element[e]->str, all->element[e]->len)] =
          static_cast<StateKind>(all->element[e + 1]->str[0]);
    }
    return kinds;
  }

  // Every key of this job on every master: SCAN, so a large database is never blocked.
  std::vector<std::string> jobKeys() {
    std::vector<std::string> keys;
    for (std::size_t node : admin_->masters()) {
      std::string cursor = "0";
      do {
        std::vector<detail::RedisRouter::Command> scan(1);
        scan[0].args = {"SCAN", cursor, "MATCH", "{" + options_.job + ":*", "COUNT", "1000"};
        scan[0].node = node;
        scan = admin_->runAll(std::move(scan), "listing keys on " + admin_->address(node));
        const redisReply* r = scan[0].reply.get();
        cursor.assign(r->element[0]->str, r->element[0]->len);
        for (std::size_t i = 0; i < r->element[1]->elements; ++i) {
          keys.emplace_back(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
        }
      } while (cursor != "0");
    }
    return keys;
  }

  detail::RedisRouter::Command scriptFor(const Job& job, std::uint32_t group, const std::vector<std::size_t>& indexes,
                                         std::uint64_t batchId) const {
    std::vector<std::string> keys{tag(group) + ":b:" + std::to_string(batchPrefix_) + "-" + std::to_string(batchId)};
    std::unordered_map<std::string, std::size_t> keyIndex;
    auto indexOf = [&](std::string key) {
      auto [it, inserted] = keyIndex.try_emplace(key, keys.size() + 1);
      if (inserted) keys.push_back(std::move(key));
      return std::to_string(it->second);
    };
    bool writes = false;
    std::vector<std::string> ops;
    for (std::size_t i : indexes) {
      const StateRequest& r = job.requests[i];
      const StateInfo& state = job.registry->at(r.stateId);
      const std::string base = baseKey(group, state.name, r.key);
      const bool isMap = state.kind == StateKind::Map;
      std::string op;
      switch (r.type) {
        case RequestType::Get: op = isMap ? "G" : "g"; break;
        case RequestType::Put: op = isMap ? "P" : "p"; break;
        case RequestType::Delete: op = isMap ? "D" : "d"; break;
        case RequestType::Append: op = "a"; break;
        case RequestType::Scan: op = "s"; break;
        case RequestType::Clear: op = "c"; break;
      }
      writes = writes || (r.type != RequestType::Get && r.type != RequestType::Scan);
      const std::string main = indexOf(base + (isMap ? ":h" : ":v"));
      const std::string sorted = isMap ? indexOf(base + ":z") : main;
      ops.insert(ops.end(), {op, main, sorted, r.userKey, r.value,
                             r.cursor.empty() ? std::string("-") : "(" + r.cursor.substr(1), std::to_string(r.limit)});
    }
    detail::RedisRouter::Command c;
    c.script = true;
    c.slot = detail::redisSlotOf(keys.front());
    c.args.reserve(keys.size() + ops.size() + 3);
    c.args.push_back(std::to_string(keys.size()));
    for (std::string& k : keys) c.args.push_back(std::move(k));
    c.args.emplace_back(writes ? "1" : "0");
    c.args.push_back(std::to_string(options_.batchMarkerTtl.count()));
    for (std::string& o : ops) c.args.push_back(std::move(o));
    return c;
  }

  void ioLoop() {
    detail::RedisRouter router(options_, [this](std::chrono::milliseconds d) {
      std::unique_lock lock(mutex_);
      return !wake_.wait_for(lock, d, [this] { return stopping_; });
    });
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      if (stoppingNow()) {
        for (auto& c : job.commands) c.error = "redis backend stopped before the batch ran";
      } else {
        router.run(job.commands);
        std::lock_guard lock(statsMutex_);
        redisStats_ = router.stats();
      }
      deliver(job);
    }
  }

  bool stoppingNow() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  // Errors already name the node (or every seed) they came from.
  void deliver(Job& job) {
    ++batches_;
    requests_ += job.requests.size();
    for (std::size_t c = 0; c < job.commands.size(); ++c) {
      const auto& command = job.commands[c];
      const auto& members = job.members[c];
      const redisReply* reply = command.reply.get();
      std::string error = command.error;
      if (error.empty() &&
          (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != members.size())) {
        error = "unexpected script reply";
      }
      for (std::size_t m = 0; m < members.size(); ++m) {
        StateRequest& request = job.requests[members[m]];
        if (!error.empty()) {
          ++failures_;
          job.sink->fail(request.ticket,
                         std::make_exception_ptr(BackendError(
                             "redis: " + detail::describeRequest(request, job.registry->at(request.stateId).name) +
                             " failed: " + error)));
          continue;
        }
        job.sink->complete(request.ticket, decode(request, reply->element[m]));
      }
    }
  }

  static StateResult decode(const StateRequest& request, const redisReply* r) {
    StateResult result;
    if (request.type == RequestType::Get && r->type == REDIS_REPLY_STRING) {
      result.found = true;
      result.value.assign(r->str, r->len);
    } else if (request.type == RequestType::Scan && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
      const redisReply* names = r->element[0];
      const redisReply* values = r->element[1];
      for (std::size_t i = 0; i < names->elements && i < values->elements; ++i) {
        result.entries.emplace_back(std::string(names->element[i]->str, names->element[i]->len),
                                    std::string(values->element[i]->str, values->element[i]->len));
      }
      result.more = r->element[2]->integer != 0;
      if (!result.entries.empty()) result.nextCursor = "@" + result.entries.back().first;
    }
    return result;
  }

  RedisOptions options_;
  std::unique_ptr<detail::RedisRouter> admin_;  // task thread only
  std::shared_ptr<const std::vector<StateInfo>> registry_ = std::make_shared<std::vector<StateInfo>>();
  std::uint64_t batchPrefix_ = 0;
  std::uint64_t batchCounter_ = 0;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;

  mutable std::mutex statsMutex_;
  RedisStats redisStats_;
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::thread io_;
};

}  // namespace asyncstate
