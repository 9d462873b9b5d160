#pragma once
// The byte-level contract between the controller and a state store. States encode keys
// and values (serializer.hpp); a backend stores bytes under (state, key[, user key]).
// The controller hands over whole batches; the backend answers each request exactly
// once, from any thread, with a result or an error.

#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asyncstate {

// Defined in <asyncstate/savepoint.hpp>.
template <class = void>
class BasicSavepoint;
using Savepoint = BasicSavepoint<>;

enum class StateKind : std::uint8_t { Value = 1, List = 2, Map = 3, Reducing = 4, Aggregating = 5 };

inline const char* toString(StateKind kind) {
  switch (kind) {
    case StateKind::Value: return "value";
    case StateKind::List: return "list";
    case StateKind::Map: return "map";
    case StateKind::Reducing: return "reducing";
    case StateKind::Aggregating: return "aggregating";
  }
  return "unknown";
}

enum class RequestType : std::uint8_t {
  Get,     // value, list blob, accumulator; for a map: the entry under userKey
  Put,     // replace what Get reads
  Delete,  // remove what Get reads
  Append,  // list: append `value` (one or more framed elements) to the blob
  Scan,    // map: up to `limit` entries after `cursor`, ascending by user key
  Clear,   // remove everything the state holds for `key` (a whole map, list or value)
};

inline const char* toString(RequestType type) {
  switch (type) {
    case RequestType::Get: return "get";
    case RequestType::Put: return "put";
    case RequestType::Delete: return "delete";
    case RequestType::Append: return "append";
    case RequestType::Scan: return "scan";
    case RequestType::Clear: return "clear";
  }
  return "unknown";
}

// Number of key groups: the unit of rescaling and of Redis Cluster slot placement.
inline constexpr std::uint32_t kMaxKeyGroups = 128;

// FNV-1a over the key bytes: stable across processes and platforms, which savepoints need.
inline std::uint32_t keyGroupOf(std::string_view keyBytes) {
  std::uint32_t hash = 2166136261u;
  for (unsigned char c : keyBytes) {
    hash ^= c;
    hash *= 16777619u;
  }
  return hash % kMaxKeyGroups;
}

// Where a Scan of one key's map resumes. Before the first chunk it is at the start; a
// backend answers each chunk with the cursor after the chunk's last user key, or with
// the end when no entry follows. Because it names a user key, not a position, entries
// inserted or removed between chunks never make a scan repeat or skip an entry that
// existed throughout, and every backend seeks to it in O(log n) (see memory.hpp,
// rocksdb.hpp, redis.hpp). Callers treat it as opaque and pass nextCursor back as it is.
class ScanCursor {
 public:
  ScanCursor() = default;  // the start

  static ScanCursor start() { return {}; }
  static ScanCursor after(std::string lastUserKey) { return ScanCursor(Position::After, std::move(lastUserKey)); }
  static ScanCursor end() { return ScanCursor(Position::End, {}); }

  bool atStart() const noexcept { return position_ == Position::Start; }
  bool atEnd() const noexcept { return position_ == Position::End; }

  // The user key the scan resumes after: entries strictly greater follow. Only a cursor
  // made by after() has one (an empty user key is a key like any other, not the start).
  const std::string& lastUserKey() const {
    if (position_ != Position::After) {
      throw std::logic_error(std::string("ScanCursor::lastUserKey() of the ") + (atStart() ? "start" : "end"));
    }
    return lastUserKey_;
  }

  friend bool operator==(const ScanCursor&, const ScanCursor&) = default;

 private:
  enum class Position : std::uint8_t { Start, After, End };
  ScanCursor(Position position, std::string lastUserKey) : position_(position), lastUserKey_(std::move(lastUserKey)) {}

  Position position_ = Position::Start;
  std::string lastUserKey_;
};

struct StateRequest {
  RequestType type = RequestType::Get;
  std::uint32_t stateId = 0;  // as returned by StateBackend::registerState
  std::uint32_t keyGroup = 0;
  std::string key;           // encoded current key
  std::string userKey;       // map entries only
  std::string value;         // Put / Append payload
  ScanCursor cursor;         // Scan: the start for the first chunk, then the previous nextCursor
  std::uint32_t limit = 0;   // Scan chunk size
  std::uint64_t ticket = 0;  // echoed in the completion
};

struct StateResult {
  bool found = false;                                        // Get: an entry exists
  std::string value;                                         // Get
  std::vector<std::pair<std::string, std::string>> entries;  // Scan: (userKey, value), ascending userKey
  ScanCursor nextCursor;                                     // Scan: pass back to continue
  bool more = false;                                         // Scan: entries remain after this chunk

  // How every backend ends a Scan answer, once `entries` holds the chunk: `more` says
  // whether an entry follows the chunk's last. A chunk with entries resumes after its
  // last user key; an empty one that has more (limit 0) resumes where it started.
  void finishScan(const ScanCursor& requested, bool moreFollow) {
    more = moreFollow;
    if (!more) {
      nextCursor = ScanCursor::end();
    } else if (entries.empty()) {
      nextCursor = requested;
    } else {
      nextCursor = ScanCursor::after(entries.back().first);
    }
  }
};

// Where a backend reports outcomes. Thread-safe: backends may call it from their own
// I/O threads; the controller moves the completion to the task thread.
class CompletionSink {
 public:
  virtual ~CompletionSink() = default;
  virtual void complete(std::uint64_t ticket, StateResult result) = 0;
  virtual void fail(std::uint64_t ticket, std::exception_ptr error) = 0;
};

struct BackendStats {
  std::uint64_t batches = 0;
  std::uint64_t requests = 0;
  std::uint64_t failures = 0;
};

class StateBackend {
 public:
  virtual ~StateBackend() = default;

  virtual std::string name() const = 0;

  // Idempotent per name; the same name with another kind is an error.
  virtual std::uint32_t registerState(const std::string& stateName, StateKind kind) = 0;

  // Executes a batch. Requests take effect in batch order, and batches in the order
  // executeBatch was called (a wrapper that delays completions must not reorder
  // effects: delay the answers, not the writes). Each
  // request's ticket is completed or failed exactly once, on any thread, possibly
  // before this returns. A backend that throws instead must not have answered or applied
  // any request of the batch: the controller then fails them all with the exception.
  virtual void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) = 0;

  // Called on the task thread when the controller has nothing else to do but wait for
  // this backend; backends that complete inline need not override it.
  virtual void poll() {}

  // Writes every entry in the canonical savepoint form; waits for nothing in flight
  // (the controller drains first).
  virtual void snapshot(Savepoint& out) = 0;

  // Replaces all contents with the savepoint's; registered states keep their ids.
  virtual void restore(const Savepoint& in) = 0;

  // The most requests a batch needs to pay off on this backend, or 0: no limit below the
  // controller's batch size. Batching amortizes a round trip; a backend that answers in
  // the task's process has none to amortize, and a large batch there only holds a whole
  // wave of requests, answers and waiting continuations, which then no longer fit in
  // the cache (bench/analysis.md, controller overhead).
  virtual std::size_t preferredBatchSize() const { return 0; }

  // Logged by the controller at start, so that slow defaults are never silent.
  virtual std::string describeConfiguration() const { return name(); }

  virtual BackendStats stats() const { return {}; }
};

}  // namespace asyncstate
