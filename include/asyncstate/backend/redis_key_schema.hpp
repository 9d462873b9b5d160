#pragma once
// Where a job's state lives in Redis. Every key of a job starts with the hash tag
// {<job>:<key group>} (or {<job>:meta}), so one key group is one Cluster slot and the
// pattern "{<job>:*" matches exactly the job's keys -- which is what ACL key patterns,
// SCAN and deleteJobKeys rely on:
//   {job:kg}:<len(state)>:<state>:<key bytes>:v   value, list blob, accumulator (string)
//   {job:kg}:<len(state)>:<state>:<key bytes>:h   map entries (hash userKey -> value)
//   {job:kg}:<len(state)>:<state>:<key bytes>:z   map user keys (sorted set, all scores 0)
//   {job:kg}:b:<batch id>                         batch marker (idempotent retries)
//   {job:kg}:g                                    generation marker of the key group
//   {job:kg}:u:<epoch>                            undo hash: pre-images of the keys written
//                                                 in a checkpoint epoch (redis_scripts.hpp)
//   {job:meta}:states                             state name -> kind
//   {job:meta}:g                                  the job's generation (written first)
//   {job:meta}:c                                  the last committed lightweight checkpoint
//   {job:meta}:ch                                 the older retained ones (hash id -> marker)
//   {job:meta}:r                                  rollback intent: the id being rolled back to

#include <asyncstate/backend/redis_cluster.hpp>
#include <asyncstate/backend/redis_connection.hpp>

#include <charconv>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace asyncstate::detail {

class RedisKeySchema {
 public:
  struct ParsedKey {
    std::string state;
    std::string key;
    char suffix;
  };

  // The job name is part of every hash tag and of the glob patterns above, so it may
  // not contain the characters that would end the tag or act as a wildcard.
  explicit RedisKeySchema(std::string job) : job_(std::move(job)) {
    if (job_.empty() || job_.find_first_of("{}*?[]\\:") != std::string::npos) {
      throw std::invalid_argument("redis: job name '" + job_ +
                                  "' must be non-empty without {}*?[]\\: (it is part of every key's hash tag)");
    }
  }

  const std::string& job() const { return job_; }

  // Glob matching every key of the job and nothing of another job ("{a:*" cannot match
  // "{ab:...}" because job names contain no ':').
  std::string pattern() const { return "{" + job_ + ":*"; }
  bool owns(std::string_view key) const { return startsWith(key, "{" + job_ + ":"); }

  std::string tag(std::uint32_t keyGroup) const { return "{" + job_ + ":" + std::to_string(keyGroup) + "}"; }
  std::string metaKey() const { return "{" + job_ + ":meta}:states"; }
  int metaSlot() const { return redisSlotOf(metaKey()); }

  std::string baseKey(std::uint32_t keyGroup, const std::string& stateName, const std::string& key) const {
    return tag(keyGroup) + ":" + std::to_string(stateName.size()) + ":" + stateName + ":" + key;
  }

  // Every batch script checks its key group's marker, so a node that lost the job's
  // data is noticed by the next batch that touches it (see redis_scripts.hpp).
  std::string generationMarker(std::uint32_t keyGroup) const { return tag(keyGroup) + ":g"; }
  std::string jobGenerationMarker() const { return "{" + job_ + ":meta}:g"; }

  // Lightweight checkpoints (redis.hpp): the pre-images of epoch `epoch` in one key
  // group; the commit markers and the rollback intent, in the same slot as the job's
  // generation marker.
  std::string undoHash(std::uint32_t keyGroup, std::uint64_t epoch) const {
    return tag(keyGroup) + ":u:" + std::to_string(epoch);
  }
  // The epoch of an undo hash of this job; nullopt for every other key. Strict, so a
  // state key whose user key bytes contain "}:u:" is not taken for one.
  std::optional<std::uint64_t> undoHashEpoch(std::string_view key) const {
    const std::string prefix = "{" + job_ + ":";
    if (!startsWith(key, prefix)) return std::nullopt;
    key.remove_prefix(prefix.size());
    const auto close = key.find("}:u:");
    if (close == 0 || close == std::string_view::npos ||
        key.substr(0, close).find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    key.remove_prefix(close + 4);
    std::uint64_t epoch = 0;
    const auto [end, error] = std::from_chars(key.data(), key.data() + key.size(), epoch);
    if (key.empty() || error != std::errc() || end != key.data() + key.size()) return std::nullopt;
    return epoch;
  }
  // Glob for SCAN: every undo hash of the job, and possibly state keys (undoHashEpoch decides).
  std::string undoHashPattern() const { return "{" + job_ + ":*}:u:*"; }
  std::string checkpointMarker() const { return "{" + job_ + ":meta}:c"; }
  std::string checkpointHistory() const { return "{" + job_ + ":meta}:ch"; }
  std::string rollBackIntent() const { return "{" + job_ + ":meta}:r"; }

  std::string batchMarker(std::uint32_t keyGroup, std::uint64_t prefix, std::uint64_t batchId) const {
    return tag(keyGroup) + ":b:" + std::to_string(prefix) + "-" + std::to_string(batchId);
  }

  // Inverse of baseKey + suffix; nullopt for markers, metadata and foreign keys.
  std::optional<ParsedKey> parse(std::string_view key) const {
    if (!owns(key)) return std::nullopt;
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

 private:
  std::string job_;
};

}  // namespace asyncstate::detail
