#pragma once
// What a RedisBackend is told (servers, job namespace, timeouts, retries) and what it
// counts about its traffic.

#include <asyncstate/backend/redis_credentials.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace asyncstate {

struct RedisOptions {
  // "host:port" of the server, or of any Cluster nodes (the rest are discovered).
  std::vector<std::string> seeds{"127.0.0.1:6379"};
  // Namespace of every key: two jobs (or two tests) on one Redis never see each other.
  std::string job = "asyncstate";
  // Sent in AUTH on every connection and reconnection, to every node.
  RedisCredentials credentials;
  // A job that restarts on state it left in Redis sets this: the backend then refuses
  // to start when the job's generation markers are missing (the server lost the data
  // while the job was down) instead of starting empty.
  bool expectExistingState = false;
  std::chrono::milliseconds connectTimeout{1000};
  std::chrono::milliseconds commandTimeout{2000};
  int maxAttempts = 10;  // per command, not counting redirects
  std::chrono::milliseconds initialBackoff{10};
  std::chrono::milliseconds maxBackoff{500};
  // How long a batch marker (and the reply it keeps) lives: longer than any retry.
  std::chrono::seconds batchMarkerTtl{600};
  // Lightweight checkpoints (LightweightCheckpoints): every batch also keeps the
  // pre-image of each key it writes first in a checkpoint epoch, so a checkpoint costs
  // the same whatever the state's size and a rollback costs as much as the writes since.
  bool lightweightCheckpoints = false;
  // How many committed lightweight checkpoints rollBackTo() can return to (at least 1;
  // the newest ones are kept). Going back k checkpoints needs the pre-images of the k
  // epochs after the target, so Redis holds one copy of every key written in the last
  // `retainedCheckpoints - 1` checkpoint intervals plus the open one.
  std::uint32_t retainedCheckpoints = 3;
  // Called by rollBackTo() after each chunk of key groups it has rolled back, with how
  // many are done of kMaxKeyGroups: progress for a long rollback. Throwing from it
  // abandons the rollback midway, as a crash would; the next call or start completes it.
  std::function<void(std::uint32_t done, std::uint32_t total)> onRollBackProgress;
};

// What the lightweight checkpoints of a RedisBackend touched (see redis.hpp).
struct RedisCheckpointStats {
  std::uint64_t epoch = 0;                  // the open checkpoint epoch: last committed id + 1
  std::uint64_t keyGroupsWritten = 0;       // key groups with pre-images in the open epoch
  std::uint64_t lastCommitDeletes = 0;      // undo hashes the last commit deleted (of the epoch
                                            // that fell out of retention)
  std::uint64_t lastRollBackPreImages = 0;  // pre-images the last rollback wrote back
};

struct RedisStats {
  std::uint64_t pipelines = 0;  // round trips to a node
  std::uint64_t commands = 0;
  std::uint64_t retries = 0;    // commands resent after a transient error
  std::uint64_t redirects = 0;  // MOVED / ASK
};

}  // namespace asyncstate
