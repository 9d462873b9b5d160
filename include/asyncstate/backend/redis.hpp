#pragma once
// The remote backend: Redis (standalone or Redis Cluster) through hiredis.
//
// Keys: see redis_key_schema.hpp. Every key of a job carries the hash tag
// {<job>:<key group>}, so a batch's requests of one key group can run as one atomic
// script on one node. The sorted set of a map gives Scan its order: ZRANGEBYLEX orders
// members by their bytes (memcmp), which is the interface's "ascending by user key
// bytes", and a cursor is just the last user key returned, so a chunk costs
// O(log n + limit) however large the map.
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
// Lost data. A server can lose the job's state without an error: a restart without
// persistence, FLUSHALL, a failover to an empty replica, eviction. The backend refuses
// servers whose eviction policy could evict state keys (allkeys-*), and writes a
// generation marker into every key group at start; every batch script checks its key
// group's marker first and fails when it is missing or replaced, so lost state is
// never read as empty nor written over (snapshot() checks all markers the same way).
//
// Lightweight checkpoints (RedisOptions::lightweightCheckpoints, LightweightCheckpoints).
// Writes belong to the open checkpoint epoch E. Each batch script, before it first
// writes a key (or map entry) in E, keeps the key's pre-image in the key group's undo
// hash {job:kg}:u:E, in the same script and slot as the write (redis_scripts.hpp).
// commitCheckpoint() runs one script in the job's meta slot that moves the last commit
// marker {job:meta}:c into the history hash {job:meta}:ch, writes the new one (E, the
// job's generation, the key groups E wrote and the caller's metadata) and drops the
// history's ids that fell out of retention (RedisOptions::retainedCheckpoints = N);
// then it UNLINKs the undo hashes no retained checkpoint needs any more -- those of the
// epoch of the new oldest retained checkpoint, in the key groups its marker names -- and
// opens E+1. Its cost is one script plus one UNLINK per key group the dropped epoch
// wrote, whatever the state's size; Redis holds the pre-images of the last N-1 closed
// epochs plus the open one. A marker of the single-marker format (no history, no key
// groups) reads as the one retained checkpoint, whose epoch may have written any group.
//
// rollBackTo(k), for a retained k: first the rollback intent {job:meta}:r = k is written;
// then per key group one script applies u:(open), u:(last), ..., u:(k+1), newest first
// (so the oldest pre-image of a key is the one left), and deletes them; then one meta
// script makes k the last marker, drops the history's newer ids and deletes the intent.
// Every step is safe to crash in and to repeat: a key group done has no undo hashes
// left; an intent left behind is completed by the next start, lastCheckpoint(),
// retainedCheckpoints(), commitCheckpoint() or rollBackTo() (a rollback to an older
// retained id goes on from there); until then batches fail and a commit script refuses
// to run, and rollBackTo() of a newer id is refused -- a partly rolled-back store is
// never taken for a checkpoint. Any id not retained is refused (std::invalid_argument)
// before anything is touched. A crash between a commit's script and its UNLINKs leaves
// the undo hashes of the epochs up to the oldest retained checkpoint's (several when
// retainedCheckpoints shrank); the commit's marker names the first of them, and the
// next start deletes them all.
//
// Security. Credentials (ACL user + password, or the legacy password) are sent in AUTH
// on every connection and reconnection; refused credentials fail at once, naming the
// node and the user, never the password. aclRules(job) is the least-privilege ACL for
// one job; deleteJobKeys(options) removes one job's keys and nothing else.
//
// Users link hiredis themselves (pkg-config: hiredis).

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/backend/redis_cluster.hpp>
#include <asyncstate/backend/redis_connection.hpp>
#include <asyncstate/backend/redis_key_schema.hpp>
#include <asyncstate/backend/redis_options.hpp>
#include <asyncstate/lightweight_checkpoint.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>
#include <asyncstate/state_registry.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <bitset>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
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

class RedisBackend final : public StateBackend, public LightweightCheckpoints {
 public:
  explicit RedisBackend(RedisOptions options)
      : options_(std::move(options)),
        keys_(options_.job),
        registry_(std::make_shared<StateRegistry<>>("redis job '" + options_.job + "'")) {
    if (options_.seeds.empty()) throw std::invalid_argument("redis: no seed address given");
    if (options_.retainedCheckpoints == 0) {
      throw std::invalid_argument(
          "redis: RedisOptions::retainedCheckpoints is 0; at least 1 (the last committed "
          "lightweight checkpoint) must be retained for a recovery to return to");
    }
    std::random_device entropy;
    batchPrefix_ = (std::uint64_t{entropy()} << 32) ^ entropy() ^
                   static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    admin_ = std::make_unique<detail::RedisRouter>(options_, [](std::chrono::milliseconds d) {
      std::this_thread::sleep_for(d);
      return true;
    });
    admin_->requireReachable();
    refuseEvictingServers();
    establishGeneration();
    resumeCheckpoints();
    io_ = std::thread([this] { ioLoop(); });
  }

  // The ACL rules a Redis user needs to run job `job` and nothing else: its keys only,
  // no Pub/Sub, and exactly the commands the backend and its script send. Use as
  // `ACL SETUSER <user> on ><password> <rules>` (or a `user` line in an ACL file).
  static std::string aclRules(const std::string& job) {
    const detail::RedisKeySchema keys(job);
    return "resetkeys ~" + keys.pattern() +
           " resetchannels -@all +ping +info +cluster|slots +asking +script|load +evalsha"
           " +get +set +del +unlink +exists +append +hget +hset +hsetnx +hexists +hdel +hgetall +hkeys +zadd +zrem"
           " +zrangebylex +scan";
  }

  // Deletes every key of job `options.job` -- state, markers, metadata -- on every
  // master, found by SCAN with the job's pattern (so a large database is never
  // blocked) and checked against the job's prefix again before each UNLINK: keys of
  // other jobs are never touched. Run it when no backend of the job is running (a
  // running one fails its next batches, having lost its generation markers).
  // Returns how many keys were deleted.
  static std::size_t deleteJobKeys(const RedisOptions& options) {
    const detail::RedisKeySchema keys(options.job);
    detail::RedisRouter router(options, [](std::chrono::milliseconds d) {
      std::this_thread::sleep_for(d);
      return true;
    });
    router.requireReachable();
    std::vector<detail::RedisRouter::Command> deletes;
    for (const std::string& key : scanJobKeys(router, keys)) deletes.push_back(unlink(key));
    const std::size_t count = deletes.size();
    router.runAll(std::move(deletes), "deleting the keys of job '" + options.job + "'");
    return count;
  }

  const std::string& generation() const { return generation_; }

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
    return "redis(" + admin_->describeTopology() + ", job '" + options_.job + "' generation " + generation_ + ", as " +
           options_.credentials.describe() +
           ", eviction policy checked, batches pipelined on one I/O thread as one script per key group, up to " +
           std::to_string(options_.maxAttempts) + " attempts with backoff " +
           std::to_string(options_.initialBackoff.count()) + ".." + std::to_string(options_.maxBackoff.count()) +
           " ms, command timeout " + std::to_string(options_.commandTimeout.count()) + " ms" +
           (options_.lightweightCheckpoints ? ", lightweight checkpoints (pre-images kept per epoch)" : "") + ")\n" +
           std::string(kNoLocalCacheWarning);
  }

  std::uint32_t registerState(const std::string& stateName, StateKind kind) override {
    if (const std::optional<std::uint32_t> id = registry_->existing(stateName, kind)) return *id;
    const std::string kindByte(1, static_cast<char>(kind));
    admin_->runOne({"HSETNX", keys_.metaKey(), stateName, kindByte}, keys_.metaSlot());
    detail::RedisReplyPtr stored = admin_->runOne({"HGET", keys_.metaKey(), stateName}, keys_.metaSlot());
    if (stored->type == REDIS_REPLY_STRING && stored->len == 1 && stored->str[0] != kindByte[0]) {
      throw kindMismatch(stateName, static_cast<StateKind>(stored->str[0]), kind);
    }
    // Copied, not changed: batches on the I/O thread hold the registry they were made with.
    auto next = std::make_shared<StateRegistry<>>(*registry_);
    const std::uint32_t id = next->add(stateName, kind);
    registry_ = std::move(next);
    return id;
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    if (pendingRollBack_) {
      // Its writes would land in a store that is partly rolled back, and in undo
      // hashes the rest of the rollback would then apply.
      for (const StateRequest& request : batch) {
        ++failures_;
        sink.fail(
            request.ticket,
            std::make_exception_ptr(BackendError(
                "redis job '" + options_.job + "': the rollback to checkpoint " + std::to_string(*pendingRollBack_) +
                " is unfinished, so the store is partly rolled back; complete it first (rollBackTo(" +
                std::to_string(*pendingRollBack_) + ") or lastCheckpoint())")));
      }
      return;
    }
    failures_ += registry_->rejectInvalid(batch, sink);
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
      if (!stopping_) {
        queue_.push_back(std::move(job));
        ++unfinishedBatches_;
        wake_.notify_one();
        return;
      }
    }
    // Some requests may have been answered above, so the batch cannot be refused by
    // throwing (StateBackend::executeBatch): the rest are answered with the failure.
    const auto stopped = std::make_exception_ptr(BackendError("redis: executeBatch after the backend was stopped"));
    for (const StateRequest& request : job.requests) sink.fail(request.ticket, stopped);
  }

  void snapshot(Savepoint& out) override {
    verifyGeneration("snapshot");
    std::map<std::string, StateKind> kinds = storedKinds();
    for (const auto& state : *registry_) kinds[state.name] = state.kind;
    for (const auto& [stateName, kind] : kinds) out.declare(stateName, kind);

    std::vector<detail::RedisRouter::Command> reads;
    std::vector<detail::RedisKeySchema::ParsedKey> parsed;
    for (const std::string& key : jobKeys()) {
      std::optional<detail::RedisKeySchema::ParsedKey> p = keys_.parse(key);
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
      const detail::RedisKeySchema::ParsedKey& p = parsed[i];
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
    refuseLightweightCheckpoint(in.metadata(), "redis job '" + options_.job + "'");
    const std::map<std::string, StateKind> stored = storedKinds();
    for (const auto& [stateName, state] : in.states()) {
      auto it = stored.find(stateName);
      if (it != stored.end() && it->second != state.kind) throw kindMismatch(stateName, it->second, state.kind);
    }
    registry_->requireKindsOf(in);
    for (const auto& [stateName, state] : in.states()) registerState(stateName, state.kind);
    // The retained checkpoints and their pre-images describe the old contents: rolled
    // back onto the restored ones they would mix the two. The markers go first, so no
    // checkpoint is left whose pre-images are gone; an unfinished rollback goes too. Also
    // without lightweightCheckpoints: a process before this one may have made them.
    std::vector<detail::RedisRouter::Command> markers;
    for (const std::string& key : {keys_.checkpointMarker(), keys_.checkpointHistory(), keys_.rollBackIntent()}) {
      markers.push_back(unlink(key));
    }
    admin_->runAll(std::move(markers), "restore (discarding the lightweight checkpoints of the old contents)");
    pendingRollBack_.reset();
    epochGroups_.reset();
    retainedGroups_.clear();

    // The old contents and every undo hash found, whichever process's retention made it
    // (the markers that named them are gone, so nothing could roll back onto them).
    std::vector<detail::RedisRouter::Command> deletes;
    for (const std::string& key : jobKeys()) {
      if (keys_.parse(key) || keys_.undoHashEpoch(key)) deletes.push_back(unlink(key));
    }
    admin_->runAll(std::move(deletes), "restore (clearing the old contents)");

    std::vector<detail::RedisRouter::Command> writes;
    auto flush = [&] {
      admin_->runAll(std::move(writes), "restore (writing entries)");
      writes.clear();
    };
    for (const auto& [stateName, state] : in.states()) {
      for (const SavepointEntry& e : state.entries) {
        const std::string base = keys_.baseKey(keyGroupOf(e.key), stateName, e.key);
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
    // The restored contents are this generation's: a restore onto a server that lost
    // the job's data is how the job recovers, so the markers are written again.
    writeGenerationMarkers();
    // And they are the checkpoint a crash now rolls back to, with the savepoint's
    // metadata (the runner's position): the old commit marker no longer matches them.
    if (options_.lightweightCheckpoints) commitCheckpoint(in.metadata());
  }

  bool lightweightCheckpointsEnabled() const override { return options_.lightweightCheckpoints; }

  std::uint64_t commitCheckpoint(const std::map<std::string, std::string>& metadata) override {
    requireLightweightCheckpoints("commitCheckpoint()");
    {
      // A batch still queued would keep its pre-images in the committed epoch's undo
      // hash: its writes would then be undone by a rollback to this very checkpoint.
      std::lock_guard lock(mutex_);
      if (unfinishedBatches_ != 0) {
        throw std::logic_error("redis job '" + options_.job + "': commitCheckpoint() with " +
                               std::to_string(unfinishedBatches_) +
                               " batches unfinished; wait for every completion first (the runner drains)");
      }
    }
    if (pendingRollBack_) settledHistory();
    const std::uint64_t id = epoch_;
    // The oldest epoch whose undo hashes may still exist: the one after the oldest
    // retained checkpoint. The UNLINKs below start there.
    const std::uint64_t firstHeld = retainedGroups_.empty() ? id : retainedGroups_.begin()->first + 1;
    Savepoint marker;
    marker.metadata() = metadata;
    marker.metadata()[kMarkerId] = std::to_string(id);
    marker.metadata()[kMarkerGeneration] = generation_;
    marker.metadata()[kMarkerGroups] = encodeGroups(epochGroups_);
    marker.metadata()[kMarkerPreImagesFrom] = std::to_string(firstHeld);
    // Through the batch script, so the markers change only while the job's generation
    // marker (same slot) is this backend's -- a server that lost the job never gets a
    // marker that would send a later recovery to a position its state does not have --
    // and only while no rollback is unfinished (not even one of another process).
    // When the id is committed already (a resend, or another subtask of a parallel job on
    // the same store), this marker replaces the last one: it names every key group, since
    // the key groups the others wrote are not this backend's to know.
    Savepoint everyGroup = marker;
    everyGroup.metadata().erase(kMarkerGroups);
    std::string idField;
    Serializer<std::string>::write(idField, kMarkerId);
    Serializer<std::string>::write(idField, std::to_string(id));
    std::vector<detail::RedisRouter::Command> commit(1);
    commit[0] = metaScript({keys_.checkpointMarker(), keys_.checkpointHistory(), keys_.rollBackIntent()});
    commit[0].args.insert(commit[0].args.end(), {"x", "5", "5", "", "", "-", "0"});
    commit[0].args.insert(commit[0].args.end(), {"S", "3", "3", idField, everyGroup.serialize(), "-", "0"});
    commit[0].args.insert(commit[0].args.end(), {"C", "3", "4", std::to_string(id), marker.serialize(),
                                                 std::to_string(id - 1), std::to_string(options_.retainedCheckpoints)});
    admin_->runAll(std::move(commit), "committing checkpoint " + std::to_string(id) + " of job '" + options_.job + "'");
    // Rolling back to the oldest retained checkpoint needs the undo hashes of the epochs
    // after it only: those of the epochs up to it go (each marker names its epoch's key
    // groups). A crash before these UNLINKs leaves them -- several epochs' worth when the
    // retention shrank -- and the next start deletes them, from the epoch the marker
    // just committed names (kMarkerPreImagesFrom).
    retainedGroups_[id] = epochGroups_;
    epoch_ = id + 1;
    epochGroups_.reset();
    const std::uint64_t oldest = std::max<std::uint64_t>(
        retainedGroups_.begin()->first, id >= options_.retainedCheckpoints ? id + 1 - options_.retainedCheckpoints : 0);
    std::vector<detail::RedisRouter::Command> unlinks;
    for (std::uint64_t epoch = firstHeld; epoch <= oldest; ++epoch) appendUnlinks(unlinks, epoch, groupsOfEpoch(epoch));
    retainedGroups_.erase(retainedGroups_.begin(), retainedGroups_.lower_bound(oldest));
    const std::size_t deletes = unlinks.size();
    admin_->runAll(std::move(unlinks),
                   "deleting the pre-images no retained checkpoint needs after committing " + std::to_string(id));
    std::lock_guard lock(statsMutex_);
    checkpointStats_.lastCommitDeletes = deletes;
    return id;
  }

  LightweightCheckpoint lastCheckpoint() override {
    History history = settledHistory();
    if (history.retained.empty()) return {};
    return std::move(history.retained.back());
  }

  std::vector<LightweightCheckpoint> retainedCheckpoints() override { return settledHistory().retained; }

  void rollBackTo(std::uint64_t id) override {
    requireLightweightCheckpoints("rollBackTo()");
    const History history = readHistory();
    const bool retained = std::any_of(history.retained.begin(), history.retained.end(),
                                      [&](const LightweightCheckpoint& c) { return c.id == id; }) ||
                          (id == 0 && history.retained.empty());
    // Checked before anything is touched. While a rollback is unfinished the store is
    // partly rolled back: it is no longer any checkpoint newer than that rollback's
    // target, but every retained one up to the target can still be reached.
    if (history.intent && (id > *history.intent || !retained)) {
      throw std::invalid_argument(
          "redis job '" + options_.job + "': cannot roll back to checkpoint " + std::to_string(id) +
          ": the rollback to checkpoint " + std::to_string(*history.intent) +
          " is unfinished and the store is partly rolled back; roll back to " + std::to_string(*history.intent) +
          " (or an older retained checkpoint: " + describeIds(history, *history.intent) +
          ") to complete it; nothing was touched");
    }
    if (!retained) {
      throw std::invalid_argument(
          "redis job '" + options_.job + "': cannot roll back to checkpoint " + std::to_string(id) +
          ": it is not retained (retained: " + describeIds(history) +
          "; RedisOptions::retainedCheckpoints = " + std::to_string(options_.retainedCheckpoints) +
          "); restore a savepoint to go further back; nothing was touched");
    }
    verifyGeneration("rollback");
    pendingRollBack_ = id;
    if (history.intent != id) {
      std::vector<detail::RedisRouter::Command> intent(1);
      intent[0] = metaScript({keys_.rollBackIntent()});
      addOp(intent[0].args, "p", "3", std::to_string(id));
      admin_->runAll(std::move(intent),
                     "recording the rollback of job '" + options_.job + "' to checkpoint " + std::to_string(id));
    }
    undoEpochsAfter(history, id);
  }

  // Task thread only, like commitCheckpoint() and rollBackTo().
  RedisCheckpointStats checkpointStats() const {
    std::lock_guard lock(statsMutex_);
    RedisCheckpointStats s = checkpointStats_;
    s.epoch = epoch_;
    s.keyGroupsWritten = epochGroups_.count();
    return s;
  }

  BackendStats stats() const override { return BackendStats{batches_.load(), requests_.load(), failures_.load()}; }

  RedisStats redisStats() const {
    std::lock_guard lock(statsMutex_);
    return redisStats_;
  }

 private:
  struct Job {
    std::vector<StateRequest> requests;
    CompletionSink* sink;
    std::shared_ptr<const StateRegistry<>> registry;     // for the names in error messages
    std::vector<detail::RedisRouter::Command> commands;  // one per key group
    std::vector<std::vector<std::size_t>> members;       // request indexes per command
  };

  std::invalid_argument kindMismatch(const std::string& stateName, StateKind have, StateKind want) const {
    return std::invalid_argument("redis job '" + options_.job + "': state '" + stateName + "' is " + toString(have) +
                                 ", not " + toString(want));
  }

  std::map<std::string, StateKind> storedKinds() {
    detail::RedisReplyPtr all = admin_->runOne({"HGETALL", keys_.metaKey()}, keys_.metaSlot());
    std::map<std::string, StateKind> kinds;
    for (std::size_t e = 0; e + 1 < all->elements; e += 2) {
      if (all->element[e + 1]->len != 1) continue;
      kinds[std::string(all->element[e]->str, all->element[e]->len)] =
          static_cast<StateKind>(all->element[e + 1]->str[0]);
    }
    return kinds;
  }

  // Every key of this job on every master: SCAN, so a large database is never blocked.
  std::vector<std::string> jobKeys() { return scanJobKeys(*admin_, keys_); }

  // `pattern` narrows what the server returns; it must match only keys of the job.
  static std::vector<std::string> scanJobKeys(detail::RedisRouter& router, const detail::RedisKeySchema& schema,
                                              const std::string& pattern = {}) {
    std::vector<std::string> keys;
    for (std::size_t node : router.masters()) {
      std::string cursor = "0";
      do {
        std::vector<detail::RedisRouter::Command> scan(1);
        scan[0].args = {"SCAN", cursor, "MATCH", pattern.empty() ? schema.pattern() : pattern, "COUNT", "1000"};
        scan[0].node = node;
        scan = router.runAll(std::move(scan), "listing keys on " + router.address(node));
        const redisReply* r = scan[0].reply.get();
        cursor.assign(r->element[0]->str, r->element[0]->len);
        for (std::size_t i = 0; i < r->element[1]->elements; ++i) {
          std::string key(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
          if (schema.owns(key)) keys.push_back(std::move(key));
        }
      } while (cursor != "0");
    }
    return keys;
  }

  std::string stateLostAdvice() const {
    return " -- the server lost or replaced the state of job '" + options_.job + "' (generation " + generation_ +
           "): a restart without persistence, FLUSHALL/FLUSHDB, eviction, or a failover to a replica without the "
           "data. The batch was not run, so no empty state was read or written over; restore the last savepoint "
           "(restore() writes the markers again) or start the job anew after deleteJobKeys()";
  }

  // allkeys-* policies evict any key once maxmemory is reached, and the state keys have
  // no TTL, so they are candidates; noeviction and volatile-* never evict a key without
  // a TTL (only batch markers carry one). The policy is refused even when maxmemory is 0
  // today: both can be changed at run time with CONFIG SET.
  void refuseEvictingServers() {
    for (std::size_t node : admin_->masters()) {
      detail::RedisReplyPtr info;
      try {
        info = admin_->runOnNode({"INFO", "memory"}, node);
      } catch (const BackendError& e) {
        throw BackendError(std::string(e.what()) + " (the backend reads maxmemory_policy from INFO memory to make " +
                           "sure the server cannot evict the job's state; see RedisBackend::aclRules)");
      }
      const std::string text = info->str != nullptr ? std::string(info->str, info->len) : std::string();
      const std::string field = "maxmemory_policy:";
      const auto at = text.find(field);
      if (at == std::string::npos) {
        throw BackendError("redis: " + admin_->address(node) + " did not report maxmemory_policy in INFO memory");
      }
      const std::string policy = text.substr(at + field.size(), text.find_first_of("\r\n", at) - at - field.size());
      if (detail::startsWith(policy, "allkeys-")) {
        throw BackendError("redis: " + admin_->address(node) + " has maxmemory-policy " + policy +
                           ", which may evict the state of job '" + options_.job +
                           "' (its keys have no TTL) and lose it silently; configure noeviction (writes then fail "
                           "with OOM, visibly) or a volatile-* policy");
      }
    }
  }

  // Finds the job's generation, or starts one. The job marker {job:meta}:g is written
  // first (SET NX, so concurrent starters agree) with the value "<generation> starting",
  // then every key group's marker, then the job marker again without the suffix. A start
  // killed midway thus leaves a job marker that says so, and the next start completes it:
  // no batch ran before the start finished, so nothing can have been lost. A complete job
  // marker without all key-group markers, or key-group markers without the job marker,
  // means a node lost the job's data while it was not running: refuse to start.
  void establishGeneration() {
    const std::string jobMarker = keys_.jobGenerationMarker();
    const std::uint16_t jobSlot = detail::redisSlotOf(jobMarker);
    detail::RedisReplyPtr job = admin_->runOne({"GET", jobMarker}, jobSlot);
    if (job->type != REDIS_REPLY_STRING) {
      if (options_.expectExistingState) {
        throw BackendError("redis: job '" + options_.job + "' has no state on " + admin_->describeTopology() +
                           " but expectExistingState is set: the server lost the job's data while it was down "
                           "(or the job name or server is wrong); restore a savepoint into a new job instead");
      }
      const std::vector<std::string> found = groupGenerations();
      for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
        if (!found[group].empty()) {
          throw BackendError("redis: job '" + options_.job +
                             "' has key-group generation markers but lost its job marker " + jobMarker + " on " +
                             admin_->describeTopology() +
                             ": part of its data is gone; restore a savepoint or deleteJobKeys() and start anew");
        }
      }
      std::random_device entropy;
      char text[17];
      std::snprintf(text, sizeof text, "%08x%08x", entropy(), entropy());
      admin_->runOne({"SET", jobMarker, std::string(text) + kStartingSuffix, "NX"}, jobSlot);
      job = admin_->runOne({"GET", jobMarker}, jobSlot);
      if (job->type != REDIS_REPLY_STRING) {
        throw BackendError("redis: job '" + options_.job + "': the generation marker vanished right after it was set");
      }
    }
    const std::string_view value(job->str, job->len);
    if (value.ends_with(kStartingSuffix)) {
      generation_.assign(value.substr(0, value.size() - std::string_view(kStartingSuffix).size()));
      completeStart();
    } else {
      generation_.assign(value);
      verifyGeneration("start");
    }
  }

  // Writes the key-group markers a start (this one, a concurrent one or a killed one) has
  // not written yet, then marks the start complete. A key-group marker of another
  // generation is not overwritten (NX) and verifyGeneration() refuses it.
  void completeStart() {
    admin_->runAll(generationMarkerSets(true), "writing the generation markers of job '" + options_.job + "'");
    verifyGeneration("start");
    const std::string jobMarker = keys_.jobGenerationMarker();
    admin_->runOne({"SET", jobMarker, generation_}, detail::redisSlotOf(jobMarker));
  }

  void writeGenerationMarkers() {
    std::vector<detail::RedisRouter::Command> sets = generationMarkerSets(false);
    detail::RedisRouter::Command job;
    job.args = {"SET", keys_.jobGenerationMarker(), generation_};
    job.slot = detail::redisSlotOf(job.args[1]);
    sets.push_back(std::move(job));
    admin_->runAll(std::move(sets), "writing the generation markers of job '" + options_.job + "'");
  }

  // One SET of this generation per key group's marker (NX: only those missing).
  std::vector<detail::RedisRouter::Command> generationMarkerSets(bool onlyMissing) const {
    std::vector<detail::RedisRouter::Command> sets;
    sets.reserve(kMaxKeyGroups + 1);
    for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
      detail::RedisRouter::Command c;
      c.args = {"SET", keys_.generationMarker(group), generation_};
      if (onlyMissing) c.args.emplace_back("NX");
      c.slot = detail::redisSlotOf(c.args[1]);
      sets.push_back(std::move(c));
    }
    return sets;
  }

  // The value of every key group's marker ("" when missing), read in one pipeline.
  std::vector<std::string> groupGenerations() {
    std::vector<detail::RedisRouter::Command> gets;
    for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
      detail::RedisRouter::Command c;
      c.args = {"GET", keys_.generationMarker(group)};
      c.slot = detail::redisSlotOf(c.args[1]);
      gets.push_back(std::move(c));
    }
    gets = admin_->runAll(std::move(gets), "reading the generation markers of job '" + options_.job + "'");
    std::vector<std::string> out;
    out.reserve(gets.size());
    for (const auto& c : gets) {
      out.emplace_back(c.reply->type == REDIS_REPLY_STRING ? std::string(c.reply->str, c.reply->len) : std::string());
    }
    return out;
  }

  void verifyGeneration(const std::string& when) {
    const std::vector<std::string> found = groupGenerations();
    std::string lost;
    for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
      if (found[group] == generation_) continue;
      const std::string key = keys_.generationMarker(group);
      lost += (lost.empty() ? "" : ", ") + key + " on " +
              admin_->address(admin_->nodeOfSlot(detail::redisSlotOf(key))) +
              (found[group].empty() ? " missing" : " holds generation " + found[group]);
      if (lost.size() > 400) {
        lost += ", ...";
        break;
      }
    }
    if (!lost.empty()) {
      throw BackendError("redis: " + when + " of job '" + options_.job + "' refused: generation markers " + lost +
                         stateLostAdvice());
    }
  }

  static constexpr const char* kMarkerId = "redis.checkpoint.id";
  static constexpr const char* kMarkerGeneration = "redis.checkpoint.generation";
  // The key groups whose undo hash of the checkpoint's epoch holds pre-images (hex, key
  // group 0 in the last digit's lowest bit); markers written before it existed lack it.
  static constexpr const char* kMarkerGroups = "redis.checkpoint.groups";
  // The oldest epoch whose undo hashes could exist when the checkpoint was committed (the
  // commit's UNLINKs went from there up to the new oldest retained checkpoint's epoch);
  // markers written before it existed lack it.
  static constexpr const char* kMarkerPreImagesFrom = "redis.checkpoint.preimagesFrom";
  // A start names the undo hashes of at most this many dropped epochs one by one (up to
  // kMaxKeyGroups UNLINKs each); beyond it, it finds the ones that exist by SCAN.
  static constexpr std::uint64_t kMaxEpochsCleanedAtStart = 1024;
  // Key groups a rollback does per pipeline; progress is reported after each chunk.
  static constexpr std::uint32_t kRollBackChunk = 16;
  // Ends the job marker's value while its start has not written every key-group marker.
  static constexpr const char* kStartingSuffix = " starting";

  static detail::RedisRouter::Command unlink(const std::string& key) {
    detail::RedisRouter::Command c;
    c.args = {"UNLINK", key};
    c.slot = detail::redisSlotOf(key);
    return c;
  }

  // One operation of the batch script on KEYS[keyIndex] (see redis_scripts.hpp).
  static void addOp(std::vector<std::string>& args, const char* op, const std::string& keyIndex, std::string value) {
    args.insert(args.end(), {op, keyIndex, keyIndex, "", std::move(value), "-", "0"});
  }

  // The batch script in the job's meta slot, recording nothing, on `keys` (KEYS[3]
  // onwards): it runs only while the job's generation marker is this backend's.
  detail::RedisRouter::Command metaScript(const std::vector<std::string>& keys) const {
    const std::string meta = keys_.jobGenerationMarker();
    detail::RedisRouter::Command c;
    c.script = true;
    c.slot = detail::redisSlotOf(meta);
    c.args = {std::to_string(2 + keys.size()), meta, meta};
    c.args.insert(c.args.end(), keys.begin(), keys.end());
    c.args.insert(c.args.end(), {"0", "0", generation_, "0"});
    return c;
  }

  // The committed checkpoints in the store, oldest first, and an unfinished rollback.
  struct History {
    std::vector<LightweightCheckpoint> retained;
    std::map<std::uint64_t, std::bitset<kMaxKeyGroups>> groups;  // per retained id: its epoch's undo hashes
    std::map<std::uint64_t, std::uint64_t> preImagesFrom;        // per retained id, when its marker says
    std::optional<std::uint64_t> intent;                         // the target of an unfinished rollback
    std::uint64_t last() const { return retained.empty() ? 0 : retained.back().id; }
  };

  void requireLightweightCheckpoints(const char* what) const {
    if (!options_.lightweightCheckpoints) {
      throw std::logic_error("redis job '" + options_.job + "': " + what +
                             " needs RedisOptions::lightweightCheckpoints (pre-images are kept from the backend's "
                             "start only when it is set)");
    }
  }

  // The last marker, the older retained ones and the rollback intent: one pipeline.
  History readHistory() {
    const int slot = detail::redisSlotOf(keys_.checkpointMarker());
    std::vector<detail::RedisRouter::Command> reads(3);
    reads[0].args = {"GET", keys_.checkpointMarker()};
    reads[1].args = {"HGETALL", keys_.checkpointHistory()};
    reads[2].args = {"GET", keys_.rollBackIntent()};
    for (auto& r : reads) r.slot = slot;
    reads = admin_->runAll(std::move(reads), "reading the lightweight checkpoints of job '" + options_.job + "'");
    History history;
    const redisReply* older = reads[1].reply.get();
    for (std::size_t e = 0; e + 1 < older->elements; e += 2) {
      addMarker(history, std::string_view(older->element[e + 1]->str, older->element[e + 1]->len),
                keys_.checkpointHistory());
    }
    std::sort(history.retained.begin(), history.retained.end(),
              [](const LightweightCheckpoint& a, const LightweightCheckpoint& b) { return a.id < b.id; });
    // A marker written by the single-marker format is the one last marker: it reads the same.
    if (const redisReply* last = reads[0].reply.get(); last->type == REDIS_REPLY_STRING) {
      const std::uint64_t newestOlder = history.last();
      addMarker(history, std::string_view(last->str, last->len), keys_.checkpointMarker());
      if (history.last() <= newestOlder) {
        throw BackendError("redis: the checkpoint markers of job '" + options_.job + "' are corrupt: the last one, " +
                           keys_.checkpointMarker() + ", is not newer than " + std::to_string(newestOlder) + " in " +
                           keys_.checkpointHistory());
      }
    }
    if (const redisReply* intent = reads[2].reply.get(); intent->type == REDIS_REPLY_STRING) {
      const std::string text(intent->str, intent->len);
      history.intent = parseNumber(text);
      if (!history.intent) {
        throw BackendError("redis: the rollback intent " + keys_.rollBackIntent() + " of job '" + options_.job +
                           "' is corrupt: '" + text + "'");
      }
    }
    return history;
  }

  void addMarker(History& history, std::string_view bytes, const std::string& key) const {
    Savepoint marker;
    try {
      marker = Savepoint::parse(bytes);
    } catch (const std::exception& e) {
      throw BackendError("redis: the checkpoint marker " + key + " of job '" + options_.job +
                         "' is corrupt: " + e.what());
    }
    LightweightCheckpoint checkpoint;
    checkpoint.metadata = std::move(marker.metadata());
    auto& meta = checkpoint.metadata;
    const auto id = meta.find(kMarkerId);
    const auto generation = meta.find(kMarkerGeneration);
    const std::optional<std::uint64_t> number = id != meta.end() ? parseNumber(id->second) : std::nullopt;
    if (!number || generation == meta.end()) {
      throw BackendError("redis: the checkpoint marker " + key + " of job '" + options_.job +
                         "' lacks its id or generation");
    }
    if (generation->second != generation_) {
      throw BackendError("redis: the checkpoint marker " + key + " belongs to generation " + generation->second +
                         ", not the job's " + generation_ + stateLostAdvice());
    }
    checkpoint.id = *number;
    meta.erase(id);
    meta.erase(kMarkerGeneration);
    std::bitset<kMaxKeyGroups> groups;
    if (const auto written = meta.find(kMarkerGroups); written != meta.end()) {
      groups = decodeGroups(written->second, key);
      meta.erase(written);
    } else {
      groups.set();  // the single-marker format did not say: every key group may have one
    }
    if (const auto from = meta.find(kMarkerPreImagesFrom); from != meta.end()) {
      const std::optional<std::uint64_t> epoch = parseNumber(from->second);
      if (!epoch) {
        throw BackendError("redis: the checkpoint marker " + key + " of job '" + options_.job +
                           "' has a corrupt first pre-image epoch '" + from->second + "'");
      }
      history.preImagesFrom[checkpoint.id] = *epoch;
      meta.erase(from);
    }
    history.groups[checkpoint.id] = groups;
    history.retained.push_back(std::move(checkpoint));
  }

  // An id or epoch as the markers store it: decimal digits only, within 64 bits.
  static std::optional<std::uint64_t> parseNumber(std::string_view text) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
  }

  static std::string encodeGroups(const std::bitset<kMaxKeyGroups>& groups) {
    std::string hex(kMaxKeyGroups / 4, '0');
    for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
      if (groups.test(group)) {
        char& digit = hex[hex.size() - 1 - group / 4];
        const int value = (digit <= '9' ? digit - '0' : digit - 'a' + 10) | (1 << (group % 4));
        digit = static_cast<char>(value < 10 ? '0' + value : 'a' + value - 10);
      }
    }
    return hex;
  }

  std::bitset<kMaxKeyGroups> decodeGroups(const std::string& hex, const std::string& key) const {
    if (hex.size() != kMaxKeyGroups / 4 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      throw BackendError("redis: the checkpoint marker " + key + " of job '" + options_.job +
                         "' has corrupt key groups '" + hex + "'");
    }
    std::bitset<kMaxKeyGroups> groups;
    for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
      const char digit = hex[hex.size() - 1 - group / 4];
      const int value = digit <= '9' ? digit - '0' : digit - 'a' + 10;
      groups.set(group, (value >> (group % 4)) & 1);
    }
    return groups;
  }

  // The retained ids up to `upTo`, for error messages.
  static std::string describeIds(const History& history, std::uint64_t upTo = UINT64_MAX) {
    std::string ids;
    for (const LightweightCheckpoint& c : history.retained) {
      if (c.id <= upTo) ids += (ids.empty() ? "" : ", ") + std::to_string(c.id);
    }
    return ids.empty() ? "none" : ids;
  }

  // The history, after completing an unfinished rollback (this process's or a killed one's).
  History settledHistory() {
    History history = readHistory();
    if (!history.intent) {
      pendingRollBack_.reset();  // its intent was never written: nothing was touched
      return history;
    }
    pendingRollBack_ = history.intent;
    undoEpochsAfter(history, *history.intent);
    return readHistory();
  }

  // Undoes the epochs after `target` (the intent already says so): per key group one
  // script applies the undo hashes newest first, from the open epoch down to target+1,
  // and deletes them, so a repeat skips the key groups done. Then one script in the meta
  // slot makes `target` the last checkpoint and removes the intent.
  void undoEpochsAfter(const History& history, std::uint64_t target) {
    const std::uint64_t open = history.last() + 1;
    const std::size_t epochs = open - target;
    std::uint64_t restored = 0;
    for (std::uint32_t first = 0; first < kMaxKeyGroups; first += kRollBackChunk) {
      std::vector<detail::RedisRouter::Command> scripts;
      for (std::uint32_t group = first; group < first + kRollBackChunk; ++group) {
        const std::string generation = keys_.generationMarker(group);
        detail::RedisRouter::Command c;
        c.script = true;
        c.slot = detail::redisSlotOf(generation);
        c.args = {std::to_string(2 + epochs), generation, generation};
        for (std::uint64_t epoch = open; epoch > target; --epoch) c.args.push_back(keys_.undoHash(group, epoch));
        c.args.insert(c.args.end(), {"0", "0", generation_, "0"});
        for (std::size_t key = 3; key < 3 + epochs; ++key) addOp(c.args, "r", std::to_string(key), {});
        scripts.push_back(std::move(c));
      }
      scripts = admin_->runAll(std::move(scripts),
                               "rolling job '" + options_.job + "' back to checkpoint " + std::to_string(target));
      for (const auto& c : scripts) {
        if (c.reply->type != REDIS_REPLY_ARRAY) continue;
        for (std::size_t e = 0; e < c.reply->elements; ++e) {
          restored += static_cast<std::uint64_t>(c.reply->element[e]->integer);
        }
      }
      if (options_.onRollBackProgress) options_.onRollBackProgress(first + kRollBackChunk, kMaxKeyGroups);
    }
    std::vector<detail::RedisRouter::Command> finish(1);
    finish[0] = metaScript({keys_.checkpointMarker(), keys_.checkpointHistory(), keys_.rollBackIntent()});
    finish[0].args.insert(finish[0].args.end(), {"F", "3", "4", std::to_string(target), "", "-", "0"});
    addOp(finish[0].args, "d", "5", {});
    admin_->runAll(std::move(finish),
                   "finishing the rollback of job '" + options_.job + "' to checkpoint " + std::to_string(target));
    pendingRollBack_.reset();
    epoch_ = target + 1;
    epochGroups_.reset();
    retainedGroups_.erase(retainedGroups_.upper_bound(target), retainedGroups_.end());
    std::lock_guard lock(statsMutex_);
    checkpointStats_.lastRollBackPreImages = restored;
  }

  // At start: completes an unfinished rollback (whatever the options: the store must
  // not be used half rolled back), then resumes the epoch after the last checkpoint.
  void resumeCheckpoints() {
    if (!options_.lightweightCheckpoints) {
      const std::string intent = keys_.rollBackIntent();
      if (admin_->runOne({"GET", intent}, detail::redisSlotOf(intent))->type != REDIS_REPLY_STRING) return;
    }
    const History history = settledHistory();
    if (!options_.lightweightCheckpoints) return;
    epoch_ = history.last() + 1;
    retainedGroups_ = history.groups;
    // The process before may have written the open epoch in any key group.
    epochGroups_.set();
    // A crash right after a commit leaves the undo hashes of the epochs up to the oldest
    // retained checkpoint's, which no rollback needs (and so does an upgrade from the
    // single-marker format, whose commits deleted them later): deleted now, from the
    // epoch the last marker names. Dropped epochs' markers are gone, and with them which
    // key groups they wrote: all are unlinked.
    if (!history.retained.empty()) {
      const std::uint64_t oldest = history.retained.front().id;
      const auto named = history.preImagesFrom.find(history.last());
      std::uint64_t from = named != history.preImagesFrom.end() ? std::min(named->second, oldest) : oldest;
      std::vector<detail::RedisRouter::Command> unlinks;
      if (oldest - from <= kMaxEpochsCleanedAtStart) {
        for (std::uint64_t epoch = from; epoch <= oldest; ++epoch) appendUnlinks(unlinks, epoch, groupsOfEpoch(epoch));
      } else {
        // A retention shrunk by more epochs at once, or a corrupt marker: naming every
        // epoch's hashes could mean millions of commands, so the ones that exist are
        // found instead (one SCAN of each master).
        unlinks = undoHashesUpTo(oldest);
      }
      admin_->runAll(std::move(unlinks),
                     "deleting the pre-images no retained checkpoint of job '" + options_.job + "' needs");
    }
  }

  // UNLINKs of every undo hash of the job whose epoch is `last` or older.
  std::vector<detail::RedisRouter::Command> undoHashesUpTo(std::uint64_t last) {
    std::vector<detail::RedisRouter::Command> unlinks;
    for (const std::string& key : scanJobKeys(*admin_, keys_, keys_.undoHashPattern())) {
      const std::optional<std::uint64_t> epoch = keys_.undoHashEpoch(key);
      if (epoch && *epoch <= last) unlinks.push_back(unlink(key));
    }
    return unlinks;
  }

  // The key groups with an undo hash of committed epoch `epoch` (all when unknown).
  std::bitset<kMaxKeyGroups> groupsOfEpoch(std::uint64_t epoch) const {
    const auto it = retainedGroups_.find(epoch);
    return it != retainedGroups_.end() ? it->second : std::bitset<kMaxKeyGroups>().set();
  }

  void appendUnlinks(std::vector<detail::RedisRouter::Command>& unlinks, std::uint64_t epoch,
                     const std::bitset<kMaxKeyGroups>& groups) const {
    for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
      if (groups.test(group)) unlinks.push_back(unlink(keys_.undoHash(group, epoch)));
    }
  }

  detail::RedisRouter::Command scriptFor(const Job& job, std::uint32_t group, const std::vector<std::size_t>& indexes,
                                         std::uint64_t batchId) {
    std::vector<std::string> keys{keys_.generationMarker(group), keys_.batchMarker(group, batchPrefix_, batchId)};
    const bool writes = std::any_of(indexes.begin(), indexes.end(), [&](std::size_t i) {
      return job.requests[i].type != RequestType::Get && job.requests[i].type != RequestType::Scan;
    });
    const bool keepPreImages = writes && options_.lightweightCheckpoints;
    if (keepPreImages) {
      keys.push_back(keys_.undoHash(group, epoch_));
      epochGroups_.set(group);
    }
    std::unordered_map<std::string, std::size_t> keyIndex;
    auto indexOf = [&](std::string key) {
      auto [it, inserted] = keyIndex.try_emplace(key, keys.size() + 1);
      if (inserted) keys.push_back(std::move(key));
      return std::to_string(it->second);
    };
    std::vector<std::string> ops;
    for (std::size_t i : indexes) {
      const StateRequest& r = job.requests[i];
      const auto& state = job.registry->at(r.stateId);
      const std::string base = keys_.baseKey(group, state.name, r.key);
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
      const std::string main = indexOf(base + (isMap ? ":h" : ":v"));
      const std::string sorted = isMap ? indexOf(base + ":z") : main;
      ops.insert(ops.end(), {op, main, sorted, r.userKey, r.value, lexStart(r.cursor), std::to_string(r.limit)});
    }
    detail::RedisRouter::Command c;
    c.script = true;
    c.slot = detail::redisSlotOf(keys.front());
    c.args.reserve(keys.size() + ops.size() + 4);
    c.args.push_back(std::to_string(keys.size()));
    for (std::string& k : keys) c.args.push_back(std::move(k));
    c.args.emplace_back(writes ? "1" : "0");
    c.args.push_back(std::to_string(options_.batchMarkerTtl.count()));
    c.args.push_back(generation_);
    c.args.emplace_back(keepPreImages ? "1" : "0");
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
      // Before the completions: a caller that saw every completion sees the batch done.
      {
        std::lock_guard lock(mutex_);
        --unfinishedBatches_;
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
      if (error.find("ASYNCSTATE_STATE_LOST") != std::string::npos) error += stateLostAdvice();
      for (std::size_t m = 0; m < members.size(); ++m) {
        StateRequest& request = job.requests[members[m]];
        if (!error.empty()) {
          ++failures_;
          job.sink->fail(request.ticket,
                         std::make_exception_ptr(BackendError(
                             "redis: " + detail::describeRequest(request, job.registry->nameOf(request.stateId)) +
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
    } else if (request.type == RequestType::Scan) {
      bool more = false;
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        const redisReply* names = r->element[0];
        const redisReply* values = r->element[1];
        for (std::size_t i = 0; i < names->elements && i < values->elements; ++i) {
          result.entries.emplace_back(std::string(names->element[i]->str, names->element[i]->len),
                                      std::string(values->element[i]->str, values->element[i]->len));
        }
        more = r->element[2]->integer != 0;
      }
      result.finishScan(request.cursor, more);
    }
    return result;
  }

  // Where ZRANGEBYLEX starts for a cursor: "-" is before every member, "(k" just after
  // k, and "+" after every member (the end: nothing follows).
  static std::string lexStart(const ScanCursor& cursor) {
    if (cursor.atStart()) return "-";
    if (cursor.atEnd()) return "+";
    return "(" + cursor.lastUserKey();
  }

  RedisOptions options_;
  detail::RedisKeySchema keys_;
  std::unique_ptr<detail::RedisRouter> admin_;  // task thread only
  std::shared_ptr<const StateRegistry<>> registry_;
  std::uint64_t batchPrefix_ = 0;
  std::string generation_;  // written at start; read by the I/O thread only after that
  std::uint64_t batchCounter_ = 0;
  // Lightweight checkpoints, task thread only: the open epoch, the key groups that kept
  // pre-images in it (recorded in its commit marker), the same for each retained
  // committed epoch (whose undo hashes go when it falls out of retention), and the target
  // of a rollback this process left unfinished (batches are refused until it is done).
  std::uint64_t epoch_ = 1;
  std::bitset<kMaxKeyGroups> epochGroups_;
  std::map<std::uint64_t, std::bitset<kMaxKeyGroups>> retainedGroups_;
  std::optional<std::uint64_t> pendingRollBack_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::size_t unfinishedBatches_ = 0;  // queued or running on the I/O thread
  bool stopping_ = false;

  mutable std::mutex statsMutex_;
  RedisStats redisStats_;
  RedisCheckpointStats checkpointStats_;
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::thread io_;
};

}  // namespace asyncstate
