#pragma once
// A backend capability: checkpoints whose cost does not depend on the state's size.
// A backend that offers it keeps, while it runs, what it needs to undo every write
// since the last checkpoint (Redis: the pre-image of each key written, see
// backend/redis.hpp). Committing a checkpoint then only marks that point; rolling back
// undoes the writes since it, in proportion to them. The newest few committed checkpoints
// are retained (a backend option) and any retained one can be rolled back to; full
// savepoints (StateBackend::snapshot/restore) stay the portable form for moving between
// backends and for going back further.
//
// The runner uses it when RunnerOptions::lightweightCheckpoints is set and the backend
// has it enabled (runner.hpp); it stores its own position in the checkpoint's metadata.

#include <asyncstate/detail/printable_bytes.hpp>
#include <asyncstate/serializer.hpp>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace asyncstate {

// The metadata field of a runner checkpoint taken as a lightweight checkpoint: its id.
// Such a savepoint holds the runner's position and no state; restoring it means rolling
// the backend back to that id (EmbeddedRunner::restore), never replacing the state
// with its (empty) contents, which a backend's restore() therefore refuses.
inline constexpr const char* kLightweightCheckpointField = "checkpoint.lightweight";

// Every backend's restore() calls this with the savepoint's metadata before touching
// anything; `backend` names the backend in the error.
inline void refuseLightweightCheckpoint(const std::map<std::string, std::string>& savepointMetadata,
                                        const std::string& backend) {
  const auto it = savepointMetadata.find(kLightweightCheckpointField);
  if (it == savepointMetadata.end()) return;
  // The runner stores the id encoded; anything else is shown as it is.
  const std::string id = it->second.size() == sizeof(std::uint64_t) ? std::to_string(decode<std::uint64_t>(it->second))
                                                                    : detail::printableBytes(it->second);
  throw std::invalid_argument(
      backend + ": restore() was given lightweight checkpoint " + id +
      ", which holds the runner's position and no state; nothing was touched (restore it with "
      "EmbeddedRunner::restore or recover(), which roll back to it, or restore a full savepoint)");
}

struct LightweightCheckpoint {
  std::uint64_t id = 0;  // 0: no checkpoint was committed yet
  std::map<std::string, std::string> metadata;
};

class LightweightCheckpoints {
 public:
  virtual ~LightweightCheckpoints() = default;

  // Whether this backend instance records what it needs (a backend option turns it on,
  // since recording must begin with the first write).
  virtual bool lightweightCheckpointsEnabled() const = 0;

  // Commits every write made so far, together with `metadata`, as the next checkpoint
  // and returns its id (ids count up from 1). Nothing may be in flight (the runner
  // drains first).
  virtual std::uint64_t commitCheckpoint(const std::map<std::string, std::string>& metadata) = 0;

  // The last committed checkpoint, read from the store (id 0 when there is none).
  virtual LightweightCheckpoint lastCheckpoint() = 0;

  // The checkpoints that can be rolled back to, read from the store, oldest first.
  virtual std::vector<LightweightCheckpoint> retainedCheckpoints() = 0;

  // Undoes every write after checkpoint `id`, which must be a retained one (0: every
  // write since recording began, while nothing was committed yet); checkpoints newer
  // than `id` are no longer retained afterwards. Refuses any other id with
  // std::invalid_argument before touching anything. Safe to repeat after a crash
  // midway, and a crash midway never leaves a state that a roll-back to another id
  // could mistake for a checkpoint.
  virtual void rollBackTo(std::uint64_t id) = 0;
};

}  // namespace asyncstate
