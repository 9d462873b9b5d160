#pragma once
// The embedded on-disk backend: RocksDB, one column family per state.
//
// Layout. Every state has a column family "state:<name>"; its kind is recorded in the
// default column family under "kind:<name>" so that reopening a database finds the
// states and rejects a kind change. The default column family holds nothing else, and
// no other column family exists: a directory that differs is rejected as foreign. Inside a column family the row key is
//   u32 big-endian length of the key | key bytes [| user key bytes]
// so one key's map entries form a contiguous prefix range that no other key's prefix
// can overlap, and the bytewise comparator orders them by user key.
//
// Batches. A batch is cut into segments: reads (MultiGet for Gets, prefix iterators for
// Scans) followed by the writes (one WriteBatch). A segment ends
// just before a read of a (state, key) that the segment already writes, so every read
// sees exactly the writes that precede it in the batch, while reads of untouched keys
// still go out together in one MultiGet. Typical batches (reads of many keys, then the
// updates their continuations issue in the next batch) are a single segment.
//
// Lists. Append is a RocksDB merge with a concatenating operator: a blind write with
// no read, which keeps appends inside the WriteBatch and away from the read path.
//
// Lightweight checkpoints (RocksDbOptions::checkpointRoot, LightweightCheckpoints).
// commitCheckpoint() is an incremental checkpoint into the root (rocksdb_checkpoint.hpp)
// whose manifest also holds the caller's metadata: it copies the table files written
// since the last one, so its cost follows the writes, not the state's size. The root's
// newest retain() checkpoints are retained. rollBackTo(C) replaces the database by
// checkpoint C, swapped in next to it so that a crash at any point leaves either the
// old database or a complete copy of C that the next open finishes swapping in:
//   1. C is materialized into <db>.rollback-C (staged in <db>.rollback-C.restoring and
//      renamed when complete). From this rename on, the roll-back is decided.
//   2. The checkpoints newer than C lose their manifests (newest first).
//   3. <db> is renamed to <db>.rollback-old, then 4. <db>.rollback-C to <db>.
//   5. <db>.rollback-old is deleted and the database is opened again.
// Opening a backend first finishes what it finds: a staging directory is deleted (the
// roll-back never happened), a complete <db>.rollback-C is swapped in as from step 2,
// and a leftover <db>.rollback-old is deleted (or renamed back, were <db> missing). It
// likewise finishes or undoes an interrupted restoreCheckpoint() (<db>.replaced and
// <db>.restoring; see finishInterruptedRestore()).
// Checkpoint 0 is the empty database: recording starts when the backend first opens a
// database without state with a root that holds no checkpoint, and marks the root
// (STARTED-EMPTY); a database that already holds state is refused with a root that holds
// neither a checkpoint nor that mark -- even one that exists, empty, made by hand --
// since rollBackTo(0) would empty it.
//
// Users link librocksdb themselves (CMake: find_package(RocksDB) and RocksDB::rocksdb).

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/backend/path_lock.hpp>
#include <asyncstate/backend/rocksdb_checkpoint.hpp>
#include <asyncstate/lightweight_checkpoint.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>
#include <asyncstate/state_registry.hpp>

#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace asyncstate {

struct RocksDbOptions {
  std::filesystem::path path;  // database directory; created if missing
  // fsync the WAL on every write batch. Off: a process crash loses nothing (the WAL is
  // written before a batch completes), a machine crash may lose the last batches.
  bool sync = false;
  std::size_t writeBufferBytes = 64u << 20;
  // Lightweight checkpoints (LightweightCheckpoints) are enabled exactly when this is
  // set: commitCheckpoint() checkpoints incrementally into this directory, which stands
  // for remote storage and has one writer (see rocksdb_checkpoint.hpp). The braces keep
  // `RocksDbOptions{path}` free of g++'s -Wmissing-field-initializers.
  std::filesystem::path checkpointRoot{};  // NOLINT(readability-redundant-member-init)
  // Called after each step of rollBackTo() and of restoreCheckpoint()'s swap that is on
  // disk: a test throws here to interrupt it as a crash would (the backend is then closed).
  std::function<void(std::string_view step)> onRollBackStep{};  // NOLINT(readability-redundant-member-init)
};

class RocksDbBackend final : public StateBackend, public LightweightCheckpoints {
 public:
  explicit RocksDbBackend(RocksDbOptions options) : RocksDbBackend(std::move(options), std::nullopt) {}

 private:
  // `lock`: the path's lock, when the caller had to take it first (restoreFromCheckpoint).
  RocksDbBackend(RocksDbOptions options, std::optional<detail::PathLock> lock)
      : options_(std::move(options)), lock_(std::move(lock)) {
    // "<db>/" names the same directory as "<db>"; the roll-back's siblings need its name.
    if (!options_.path.has_filename()) options_.path = options_.path.parent_path();
    if (!lock_) lock_.emplace(options_.path);  // before the recovery below renames anything (path_lock.hpp)
    finishInterruptedRollBack();
    finishInterruptedRestore();
    open();
    try {
      if (!options_.checkpointRoot.empty()) startRecording();
    } catch (...) {
      close();
      throw;
    }
  }

  struct ExistingOnly {};
  // Opens the database at options.path without ever creating one: what restoreCheckpoint()
  // checks must already be a database, and not become an empty one.
  RocksDbBackend(RocksDbOptions options, ExistingOnly) : options_(std::move(options)), createIfMissing_(false) {
    open();
  }

 public:
  ~RocksDbBackend() override { close(); }

  RocksDbBackend(const RocksDbBackend&) = delete;
  RocksDbBackend& operator=(const RocksDbBackend&) = delete;

  std::string name() const override { return "rocksdb"; }

  std::string describeConfiguration() const override {
    return "rocksdb(path=" + options_.path.string() + ", WAL on, sync=" + (options_.sync ? "on" : "off") +
           ", write buffer " + std::to_string(options_.writeBufferBytes >> 20) +
           " MiB, list append via merge operator, incremental checkpoints keep the newest " +
           std::to_string(retainedCheckpoints_) +
           (options_.checkpointRoot.empty() ? std::string()
                                            : ", lightweight checkpoints into " + options_.checkpointRoot.string()) +
           ")";
  }

  std::uint32_t registerState(const std::string& stateName, StateKind kind) override {
    requireOpen("registering state '" + stateName + "'");
    return states_.add(stateName, kind, [this](const std::string& name, StateKind newKind) {
      return createColumnFamily(name, newKind);
    });
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    ++stats_.batches;
    stats_.requests += batch.size();
    if (db_ == nullptr) {
      for (const StateRequest& request : batch) {
        ++stats_.failures;
        sink.fail(request.ticket, std::make_exception_ptr(BackendError(closedMessage())));
      }
      return;
    }
    const InFlight inFlight(executing_);
    stats_.failures += states_.rejectInvalid(batch, sink);
    std::size_t begin = 0;
    while (begin < batch.size()) {
      const std::size_t end = segmentEnd(batch, begin);
      if (!runSegment(batch, begin, end, sink)) {
        // Later requests may depend on the writes that failed; running them would break
        // batch order, so they fail too, naming the cause.
        for (std::size_t i = end; i < batch.size(); ++i) {
          ++stats_.failures;
          sink.fail(batch[i].ticket,
                    std::make_exception_ptr(BackendError("rocksdb " + options_.path.string() + ": " +
                                                         detail::describeRequest(batch[i], stateName(batch[i])) +
                                                         " not executed: an earlier write in the same batch failed")));
        }
        return;
      }
      begin = end;
    }
  }

  void snapshot(Savepoint& out) override {
    requireOpen("snapshot");
    const rocksdb::Snapshot* snap = db_->GetSnapshot();
    rocksdb::ReadOptions read;
    read.snapshot = snap;
    try {
      for (const auto& state : states_) {
        out.declare(state.name, state.kind);
        std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, state.data));
        for (it->SeekToFirst(); it->Valid(); it->Next()) {
          auto [key, userKey] = decodeRowKey(it->key(), state.name);
          out.add(state.name, state.kind, std::move(key), std::move(userKey), it->value().ToString());
        }
        check(it->status(), "snapshot of state '" + state.name + "'");
      }
    } catch (...) {
      db_->ReleaseSnapshot(snap);
      throw;
    }
    db_->ReleaseSnapshot(snap);
  }

  // Kinds are checked before anything is deleted; the deletion of the old contents and
  // the new entries then commit as one atomic WriteBatch. With lightweight checkpoints
  // the restored contents are then committed as the next one, with the savepoint's
  // metadata, since they are what a crash must now roll back to.
  void restore(const Savepoint& in) override {
    requireOpen("restore");
    refuseLightweightCheckpoint(in.metadata(), "rocksdb " + options_.path.string());
    states_.requireKindsOf(in);
    for (const auto& [stateName, state] : in.states()) registerState(stateName, state.kind);
    rocksdb::WriteBatch batch;
    for (const auto& state : states_) {
      // No row key starts with 0xFFFFFFFF (a key of 4 GiB), so this range covers them all.
      check(batch.DeleteRange(state.data, rocksdb::Slice(), rocksdb::Slice("\xff\xff\xff\xff\xff", 5)),
            "restore: clearing state '" + state.name + "'");
    }
    for (const auto& [stateName, state] : in.states()) {
      rocksdb::ColumnFamilyHandle* handle = states_.at(registerState(stateName, state.kind)).data;
      for (const SavepointEntry& e : state.entries) {
        check(batch.Put(handle, rowKey(e.key, e.userKey), e.value), "restore: writing state '" + stateName + "'");
      }
    }
    check(db_->Write(writeOptions(), &batch), "restore");
    if (!options_.checkpointRoot.empty()) commitCheckpoint(in.metadata());
  }

  bool lightweightCheckpointsEnabled() const override { return !options_.checkpointRoot.empty(); }

  std::uint64_t commitCheckpoint(const std::map<std::string, std::string>& metadata) override {
    requireLightweight("commitCheckpoint()");
    return checkpoint(options_.checkpointRoot, metadata).id;
  }

  LightweightCheckpoint lastCheckpoint() override {
    requireLightweight("lastCheckpoint()");
    const RocksDbCheckpointStore store(options_.checkpointRoot);
    const std::vector<std::uint64_t> ids = store.list();
    if (ids.empty()) return {};
    CheckpointHandle handle = store.read(ids.back());
    return LightweightCheckpoint{handle.id, std::move(handle.metadata)};
  }

  std::vector<LightweightCheckpoint> retainedCheckpoints() override {
    requireLightweight("retainedCheckpoints()");
    const RocksDbCheckpointStore store(options_.checkpointRoot);
    std::vector<LightweightCheckpoint> retained;
    for (std::uint64_t id : store.list()) {
      CheckpointHandle handle = store.read(id);
      retained.push_back(LightweightCheckpoint{handle.id, std::move(handle.metadata)});
    }
    return retained;
  }

  // See the header comment for the steps. Registered states keep their ids; states the
  // checkpoint does not have are registered again, empty. A failure before the database
  // was moved leaves it open as it was; after that the backend stays closed and a new
  // one on the same path finishes the roll-back.
  void rollBackTo(std::uint64_t id) override {
    namespace fs = std::filesystem;
    requireLightweight("rollBackTo()");
    const RocksDbCheckpointStore store(options_.checkpointRoot);
    const std::vector<std::uint64_t> retained = store.list();
    if (id == 0 ? !retained.empty() : std::find(retained.begin(), retained.end(), id) == retained.end()) {
      std::string ids;
      for (std::uint64_t r : retained) ids += (ids.empty() ? "" : ", ") + std::to_string(r);
      throw std::invalid_argument("rocksdb " + options_.path.string() + ": cannot roll back to checkpoint " +
                                  std::to_string(id) + ": the retained ones in " + options_.checkpointRoot.string() +
                                  " are [" + ids + "]; nothing was touched");
    }
    if (id == 0) {
      clearStates();
      return;
    }
    const CheckpointHandle handle = store.read(id);  // a corrupt manifest fails before anything is touched
    std::vector<std::pair<std::string, StateKind>> registered;
    registered.reserve(states_.size());
    for (const auto& state : states_) registered.emplace_back(state.name, state.kind);
    const fs::path target = rollBackDirectory(id);
    close();
    try {
      store.materialize(handle, target);
    } catch (const std::exception& e) {
      // The database was not touched: it opens as it was.
      closedBecause_ = "copying checkpoint " + std::to_string(id) + " failed (" + e.what() + ") and reopening too";
      open();
      keepStateIds(registered);
      throw;
    }
    try {
      rolledBackStep("materialized");
      swapInRolledBack(target, id);
      open();
    } catch (const std::exception& e) {
      closedBecause_ = "a roll-back to checkpoint " + std::to_string(id) + " failed midway (" + e.what() + ")";
      throw;
    }
    keepStateIds(registered);
    uploaded_.clear();
    uploadedRoot_ = options_.checkpointRoot;
    for (const CheckpointFile& file : handle.files) {
      if (!file.sharedName.empty()) uploaded_[file.name] = file;
    }
  }

  // An incremental native checkpoint into `root` (see rocksdb_checkpoint.hpp): flushes
  // the memtables, then copies the live files, except table files an earlier checkpoint
  // of this backend already put into the root, which the new checkpoint references. File
  // deletions are paused meanwhile so that compactions cannot remove a file being copied.
  // Afterwards only the newest checkpoints are kept (retain()), and shared files that no
  // kept checkpoint references are deleted.
  CheckpointHandle checkpoint(const std::filesystem::path& root) { return checkpoint(root, {}); }

  // As above, with `metadata` kept in the manifest.
  CheckpointHandle checkpoint(const std::filesystem::path& root, const std::map<std::string, std::string>& metadata) {
    requireOpen("checkpoint");
    const RocksDbCheckpointStore store(root);
    if (uploadedRoot_ != root) {
      uploaded_.clear();
      uploadedRoot_ = root;
    }
    check(db_->DisableFileDeletions(), "checkpoint: pausing file deletions");
    CheckpointHandle handle;
    try {
      std::vector<rocksdb::LiveFileStorageInfo> live;
      rocksdb::LiveFilesStorageInfoOptions listing;
      listing.wal_size_for_flush = 0;  // always flush: the checkpoint's data is in table files
      check(db_->GetLiveFilesStorageInfo(listing, &live), "checkpoint: listing the live files");
      handle = store.begin();
      handle.metadata = metadata;
      for (const rocksdb::LiveFileStorageInfo& info : live) {
        const std::filesystem::path source = std::filesystem::path(info.directory) / info.relative_filename;
        if (info.file_type == rocksdb::kTableFile || info.file_type == rocksdb::kBlobFile) {
          const auto known = uploaded_.find(info.relative_filename);
          if (known != uploaded_.end() && known->second.size == info.size && store.hasShared(known->second)) {
            CheckpointFile reused = known->second;
            reused.copied = false;
            handle.files.push_back(std::move(reused));
          } else {
            CheckpointFile file = store.upload(source, info.size);
            uploaded_[info.relative_filename] = file;
            handle.files.push_back(std::move(file));
          }
        } else if (!info.replacement_contents.empty()) {
          handle.files.push_back(
              RocksDbCheckpointStore::storePrivate(handle, info.relative_filename, {}, 0, info.replacement_contents));
        } else {
          handle.files.push_back(
              RocksDbCheckpointStore::storePrivate(handle, info.relative_filename, source, info.size, {}));
        }
      }
      store.commit(handle);
    } catch (...) {
      db_->EnableFileDeletions(/*force=*/false).PermitUncheckedError();
      throw;
    }
    check(db_->EnableFileDeletions(/*force=*/false), "checkpoint: resuming file deletions");
    const std::vector<std::string> deleted = store.retainNewest(retainedCheckpoints_);
    std::erase_if(uploaded_, [&](const auto& entry) {
      return std::find(deleted.begin(), deleted.end(), entry.second.sharedName) != deleted.end();
    });
    return handle;
  }

  // How many checkpoints checkpoint() keeps in a root, newest first (default 3).
  void retain(std::size_t checkpoints) {
    if (checkpoints == 0) throw std::invalid_argument("rocksdb: retain(0): at least one checkpoint must be kept");
    retainedCheckpoints_ = checkpoints;
  }

  // Ids of the complete checkpoints in `root`, oldest first.
  static std::vector<std::uint64_t> checkpoints(const std::filesystem::path& root) {
    return RocksDbCheckpointStore(root).list();
  }

  // Opens checkpoint `id` of `root` as a new database at `options.path` (missing or an
  // empty directory): its table files are hard-linked there (copied when `root` is on
  // another file system), the few files RocksDB appends to are copied, sizes and
  // checksums are checked, and RocksDB opens them as they are; no entry is rewritten. A missing or corrupt manifest
  // or file fails with a BackendError and leaves `options.path` as it was. The restored
  // backend's next checkpoint into `root` copies only files that are new since `id`.
  static std::unique_ptr<RocksDbBackend> restoreFromCheckpoint(const std::filesystem::path& root, std::uint64_t id,
                                                               RocksDbOptions options) {
    const RocksDbCheckpointStore store(root);
    const CheckpointHandle handle = store.read(id);
    const std::filesystem::path target = options.path;
    // Taken before materialize() replaces <path>.restoring, which may be the staged copy
    // of a backend in use on the path.
    detail::PathLock lock(target);
    const bool targetExisted = std::filesystem::exists(target);
    store.materialize(handle, target);
    std::unique_ptr<RocksDbBackend> backend;
    try {
      backend.reset(new RocksDbBackend(std::move(options), std::move(lock)));
    } catch (...) {
      // RocksDB refused the files: put the target back as it was (missing or empty).
      std::error_code ignored;
      std::filesystem::remove_all(target, ignored);
      if (targetExisted) std::filesystem::create_directory(target, ignored);
      throw;
    }
    backend->uploadedRoot_ = root;
    for (const CheckpointFile& file : handle.files) {
      if (!file.sharedName.empty()) backend->uploaded_[file.name] = file;
    }
    return backend;
  }

  // Compacts every state down to its last level, rewriting all table files: a smaller
  // database and fewer files, at the price of copying them all at the next checkpoint.
  void compact() {
    requireOpen("compact");
    rocksdb::CompactRangeOptions options;
    options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    check(db_->CompactRange(options, defaultHandle_, nullptr, nullptr), "compacting the state kinds");
    for (const auto& state : states_) {
      check(db_->CompactRange(options, state.data, nullptr, nullptr), "compacting state '" + state.name + "'");
    }
  }

  // A consistent, hard-linked copy of the database in `dir` (which must not exist):
  // RocksDB's native checkpoint, cheaper than a savepoint and restorable only here.
  void createCheckpoint(const std::filesystem::path& dir) {
    requireOpen("checkpoint");
    rocksdb::Checkpoint* raw = nullptr;
    check(rocksdb::Checkpoint::Create(db_, &raw), "checkpoint");
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    check(checkpoint->CreateCheckpoint(dir.string()), "checkpoint to " + dir.string());
  }

  // Replaces the database with the checkpoint in `dir`. The checkpoint is copied and
  // opened, never created (and its state kinds checked), before the live database is
  // touched, so a missing, empty, incomplete or broken checkpoint leaves the current
  // contents in place. Registered states keep their ids. The copy is then swapped in by
  // two renames, each on disk before the next step; finishInterruptedRestore() says what
  // a crash at each step leaves. A failure after the database was closed leaves the
  // backend closed, naming why, and a new backend on the path finishes or undoes the swap.
  void restoreCheckpoint(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    requireOpen("restoring checkpoint " + dir.string());
    if (!fs::is_directory(dir)) {
      throw BackendError("rocksdb: checkpoint " + dir.string() + " does not exist; nothing was restored");
    }
    // Opened as usual, a directory without CURRENT (empty, or a copy that lost files)
    // would become a new, empty database and replace the live one.
    if (!fs::exists(dir / "CURRENT")) {
      throw BackendError("rocksdb: checkpoint " + dir.string() +
                         " is not a RocksDB database (no CURRENT file: empty or incomplete); nothing was restored");
    }
    const fs::path replaced = siblingPath(".replaced");
    if (fs::exists(replaced)) {
      // Opening removed any .replaced this backend left, so this one is someone else's.
      throw BackendError("rocksdb " + options_.path.string() + ": cannot restore checkpoint " + dir.string() + ": " +
                         replaced.string() + " exists; nothing was restored");
    }
    const fs::path staging = siblingPath(".restoring");
    fs::remove_all(staging);
    try {
      fs::copy(dir, staging, fs::copy_options::recursive);
      const RocksDbBackend probe(RocksDbOptions{staging, false, options_.writeBufferBytes}, ExistingOnly{});
      for (const auto& other : probe.states_) states_.requireKind(other.name, other.kind, "checkpoint " + dir.string());
    } catch (const BackendError& e) {
      // Opening the copy failed; its message names the copy, the caller knows `dir`.
      fs::remove_all(staging);
      throw BackendError("rocksdb: checkpoint " + dir.string() + " cannot be opened (" + e.what() +
                         "); nothing was restored");
    } catch (...) {
      fs::remove_all(staging);
      throw;
    }
    // The swap deletes the old database once the copy has its place: by then the copy
    // must be on disk, not only in the page cache (RocksDB synced only what it wrote). A
    // failure here leaves the copy, which the next restore or open deletes.
    for (const fs::directory_entry& entry : fs::recursive_directory_iterator(staging)) detail::syncPath(entry.path());
    detail::syncPath(staging);
    std::vector<std::pair<std::string, StateKind>> registered;
    registered.reserve(states_.size());
    for (const auto& state : states_) registered.emplace_back(state.name, state.kind);
    close();
    uploaded_.clear();  // the swapped-in files are another lineage: their names may repeat
    try {
      swapIn(staging, replaced, "restore: ");
      open();
    } catch (const std::exception& e) {
      closedBecause_ = "restoring checkpoint " + dir.string() + " failed midway (" + e.what() + ")";
      throw;
    }
    keepStateIds(registered);
  }

  BackendStats stats() const override { return stats_; }

 private:
  // Each registered state's column family.
  using ColumnFamilies = StateRegistry<rocksdb::ColumnFamilyHandle*>;

  class ConcatMerge final : public rocksdb::AssociativeMergeOperator {
   public:
    bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* merged,
               rocksdb::Logger*) const override {
      merged->clear();
      if (existing != nullptr) merged->assign(existing->data(), existing->size());
      merged->append(value.data(), value.size());
      return true;
    }
    const char* Name() const override { return "asyncstate.concat"; }
  };

  // Counts the executeBatch() calls running, which commitCheckpoint() and rollBackTo()
  // refuse to run beside.
  class InFlight {
   public:
    explicit InFlight(std::atomic<int>& count) : count_(count) { count_.fetch_add(1, std::memory_order_acq_rel); }
    ~InFlight() { count_.fetch_sub(1, std::memory_order_acq_rel); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    std::atomic<int>& count_;
  };

  std::string closedMessage() const {
    return "rocksdb " + options_.path.string() + " is closed: " + closedBecause_ +
           "; open a new backend on it, which finishes or undoes what was interrupted";
  }

  void requireOpen(const std::string& what) const {
    if (db_ == nullptr) throw BackendError(what + ": " + closedMessage());
  }

  void requireLightweight(const char* what) const {
    if (options_.checkpointRoot.empty()) {
      throw std::logic_error("rocksdb " + options_.path.string() + ": " + what +
                             " needs RocksDbOptions::checkpointRoot (lightweight checkpoints)");
    }
    if (executing_.load(std::memory_order_acquire) != 0) {
      throw std::logic_error("rocksdb " + options_.path.string() + ": " + what +
                             " while a batch executes; wait for every completion first (the runner drains)");
    }
    requireOpen(what);
  }

  // Reorders the states so that every one in `registered` (the states before the database
  // was replaced) has its old id; those the database lacks are created empty.
  void keepStateIds(const std::vector<std::pair<std::string, StateKind>>& registered) {
    ColumnFamilies reordered(states_.owner());
    for (const auto& [stateName, kind] : registered) {
      const auto* reopened = states_.find(stateName);
      if (reopened != nullptr && reopened->kind != kind) {
        throw BackendError("rocksdb " + options_.path.string() + ": state '" + stateName + "' is " +
                           toString(reopened->kind) + " in the replacement database, " + toString(kind) + " before");
      }
      reordered.add(stateName, kind, [&](const std::string& name, StateKind newKind) {
        return reopened != nullptr ? reopened->data : createColumnFamily(name, newKind);
      });
    }
    for (const auto& rest : states_) {
      reordered.add(rest.name, rest.kind, [&](const std::string&, StateKind) { return rest.data; });
    }
    states_ = std::move(reordered);
  }

  // Roll-back to checkpoint 0: every state empty (they stay registered), in one write.
  void clearStates() {
    rocksdb::WriteBatch batch;
    for (const auto& state : states_) {
      check(batch.DeleteRange(state.data, rocksdb::Slice(), rocksdb::Slice("\xff\xff\xff\xff\xff", 5)),
            "roll-back to checkpoint 0: clearing state '" + state.name + "'");
    }
    check(db_->Write(syncWrite(), &batch), "roll-back to checkpoint 0");
  }

  bool holdsState() const {
    for (const auto& state : states_) {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), state.data));
      it->SeekToFirst();
      check(it->status(), "reading state '" + state.name + "'");
      if (it->Valid()) return true;
    }
    return false;
  }

  // Checkpoint 0 is the empty database (see the header comment): recording starts only
  // on a database without state, and the root says so from then on.
  void startRecording() {
    const RocksDbCheckpointStore store(options_.checkpointRoot);
    if (!store.list().empty()) return;
    if (store.startedEmpty()) return;  // began on an empty database; a crash came before the first commit
    if (holdsState()) {
      throw BackendError("rocksdb " + options_.path.string() + ": holds state, and checkpoint root " +
                         options_.checkpointRoot.string() +
                         " holds no checkpoint of it: lightweight checkpoints start from an empty database or from "
                         "a checkpoint in the root (take one with checkpoint(root) before enabling them)");
    }
    store.markStartedEmpty();
  }

  std::filesystem::path siblingPath(const std::string& suffix) const {
    return options_.path.parent_path() / (options_.path.filename().string() + suffix);
  }
  std::filesystem::path rollBackDirectory(std::uint64_t id) const {
    return siblingPath(".rollback-" + std::to_string(id));
  }
  std::filesystem::path replacedByRollBack() const { return siblingPath(".rollback-old"); }
  void syncParent() const {
    detail::syncPath(options_.path.parent_path().empty() ? std::filesystem::path(".") : options_.path.parent_path());
  }

  void rolledBackStep(std::string_view step) const {
    if (options_.onRollBackStep) options_.onRollBackStep(step);
  }

  // Steps 2-5 of a roll-back, from the complete copy `rolledBack` of checkpoint `id`;
  // repeatable from any point.
  void swapInRolledBack(const std::filesystem::path& rolledBack, std::uint64_t id) {
    if (!options_.checkpointRoot.empty()) RocksDbCheckpointStore(options_.checkpointRoot).dropNewerThan(id);
    rolledBackStep("newer checkpoints dropped");
    swapIn(rolledBack, replacedByRollBack(), "");
  }

  // Moves the database (if there is one) aside to `movedAside` and `incoming` into its
  // place, each rename on disk before the next step, then deletes what was moved aside.
  // The step names, prefixed by `stepPrefix`, are what the crash tests interrupt.
  void swapIn(const std::filesystem::path& incoming, const std::filesystem::path& movedAside,
              std::string_view stepPrefix) {
    namespace fs = std::filesystem;
    if (fs::exists(options_.path)) {
      fs::remove_all(movedAside);
      fs::rename(options_.path, movedAside);
      syncParent();
    }
    rolledBackStep(std::string(stepPrefix) + "database moved aside");
    fs::rename(incoming, options_.path);
    syncParent();
    rolledBackStep(std::string(stepPrefix) + "checkpoint swapped in");
    fs::remove_all(movedAside);
  }

  // Before opening: finishes or undoes what an interrupted rollBackTo() left (see the
  // header comment), so that no half-restored database is ever opened.
  void finishInterruptedRollBack() {
    namespace fs = std::filesystem;
    const fs::path parent = options_.path.parent_path().empty() ? fs::path(".") : options_.path.parent_path();
    if (!fs::is_directory(parent)) return;
    const std::string prefix = options_.path.filename().string() + ".rollback-";
    std::vector<std::pair<std::uint64_t, fs::path>> decided;
    for (const fs::directory_entry& entry : fs::directory_iterator(parent)) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(prefix)) continue;
      const std::string rest = name.substr(prefix.size());
      if (rest.ends_with(".restoring")) {
        fs::remove_all(entry.path());  // step 1 never completed: the roll-back did not happen
      } else if (!rest.empty() && rest.size() <= 19 && rest.find_first_not_of("0123456789") == std::string::npos) {
        decided.emplace_back(std::stoull(rest), entry.path());
      }
    }
    if (decided.size() > 1) {
      throw BackendError("rocksdb " + options_.path.string() + ": found " + std::to_string(decided.size()) +
                         " interrupted roll-backs next to it (" + decided[0].second.string() + ", " +
                         decided[1].second.string() + "); keep the one wanted and delete the others");
    }
    if (decided.size() == 1) {
      swapInRolledBack(decided[0].second, decided[0].first);
      return;
    }
    const fs::path old = replacedByRollBack();
    if (!fs::exists(old)) return;
    if (fs::exists(options_.path)) {
      fs::remove_all(old);  // step 5 was cut short
    } else {
      fs::rename(old, options_.path);
      syncParent();
    }
  }

  // Before opening: finishes or undoes what an interrupted restoreCheckpoint() left. The
  // restore is done once <db> is the restored copy (the second rename); until then the
  // old contents win. At each point a crash leaves:
  //   - while copying or checking the copy, or before the first rename: the old database
  //     in <db> and a copy of the checkpoint in <db>.restoring, which is deleted;
  //   - between the renames: no database in <db>, the old one in <db>.replaced, which is
  //     renamed back, and the copy in <db>.restoring, which is deleted;
  //   - after the second rename: the restored database in <db>, and the old one in
  //     <db>.replaced (perhaps partly deleted), which is deleted.
  // Deleting a copy loses nothing: the checkpoint it came from is never touched. (The
  // same goes for the staging copy of restoreFromCheckpoint(), materialized into
  // <db>.restoring while <db> is missing or empty.) A database in <db> beside both
  // <db>.replaced and <db>.restoring is none of these -- a version without this recovery
  // created that database empty after a crash between the renames -- so all three may
  // hold data: the open fails and nothing is touched.
  void finishInterruptedRestore() {
    namespace fs = std::filesystem;
    const fs::path replaced = siblingPath(".replaced");
    const fs::path restoring = siblingPath(".restoring");
    if (fs::exists(replaced)) {
      if (!fs::exists(options_.path / "CURRENT")) {
        // At most an empty directory or an interrupted creation's files are in the way.
        try {
          requireRoomForNewDatabase();
        } catch (const BackendError& e) {
          throw BackendError(std::string(e.what()) +
                             "; the database an interrupted restoreCheckpoint() moved aside is " + replaced.string() +
                             ", kept as it is");
        }
        fs::remove_all(options_.path);
        fs::rename(replaced, options_.path);
        syncParent();
      } else if (fs::exists(restoring)) {
        throw BackendError("rocksdb " + options_.path.string() + ": found a database there and both " +
                           replaced.string() + " and " + restoring.string() +
                           ", which no interrupted restoreCheckpoint() leaves: any of them may hold the wanted "
                           "data; keep the one wanted at " +
                           options_.path.string() + ", delete the others, and open it again; nothing was changed");
      } else {
        fs::remove_all(replaced);
      }
    }
    fs::remove_all(restoring);
  }

  static constexpr std::string_view kCfPrefix = "state:";
  static constexpr std::string_view kKindPrefix = "kind:";

  rocksdb::Options dbOptions() const {
    rocksdb::Options options;
    options.create_if_missing = createIfMissing_;
    options.create_missing_column_families = true;
    // The default (kPointInTimeRecovery) stops replaying the WAL at its first damaged
    // record without an error, silently dropping every later write. This mode still
    // accepts a tail torn by a crash, and fails the open on damage anywhere else.
    options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
    options.write_buffer_size = options_.writeBufferBytes;
    options.merge_operator = std::make_shared<ConcatMerge>();
    return options;
  }

  rocksdb::WriteOptions writeOptions() const {
    rocksdb::WriteOptions options;
    options.sync = options_.sync;
    return options;
  }

  // Opens the database and finds its states. A foreign or damaged directory fails with a
  // BackendError naming the path and the problem, and is left closed and unlocked. Every
  // check runs before the one repair open() makes (removing what an interrupted
  // registration left, see createColumnFamily), so a rejected directory is not changed.
  void open() {
    const rocksdb::Options options = dbOptions();
    std::vector<std::string> families;
    const rocksdb::Status listed = rocksdb::DB::ListColumnFamilies(options, options_.path.string(), &families);
    if (!listed.ok()) {
      if (std::filesystem::exists(options_.path / "CURRENT")) {
        throw BackendError("rocksdb " + options_.path.string() +
                           ": damaged database, its column families cannot be read: " + listed.ToString());
      }
      requireRoomForNewDatabase();
      families = {rocksdb::kDefaultColumnFamilyName};
    }
    for (const std::string& family : families) {
      if (family != rocksdb::kDefaultColumnFamilyName && !family.starts_with(kCfPrefix)) {
        throw BackendError("rocksdb " + options_.path.string() + ": not an asyncstate database: column family '" +
                           detail::printableBytes(family) + "' is not a state's ('" + std::string(kCfPrefix) +
                           "<name>'); nothing was changed");
      }
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    descriptors.reserve(families.size());
    for (const std::string& family : families) descriptors.emplace_back(family, rocksdb::ColumnFamilyOptions(options));
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    std::filesystem::create_directories(options_.path);
    const rocksdb::Status opened =
        rocksdb::DB::Open(rocksdb::DBOptions(options), options_.path.string(), descriptors, &handles, &db_);
    if (opened.IsCorruption() && onlyTheWalIsDamaged(options, descriptors)) {
      throw BackendError("rocksdb " + options_.path.string() + ": the write-ahead log (its *.log files) is corrupt (" +
                         opened.ToString() +
                         "); not opened, since replaying only the records before the damage would silently drop "
                         "every later write; nothing was changed");
    }
    check(opened, "open");
    try {
      defaultHandle_ = defaultHandle(handles, families);
      findStates(families, handles);
    } catch (...) {
      for (rocksdb::ColumnFamilyHandle* handle : handles) {
        if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
      }
      states_.clear();
      defaultHandle_ = nullptr;
      db_->Close().PermitUncheckedError();
      delete db_;
      db_ = nullptr;
      throw;
    }
  }

  // RocksDB names no file when a WAL record is damaged. If the same database opens
  // read-only (which writes no data) while skipping damaged WAL records, the WAL is what
  // failed the open, not the MANIFEST or a table file.
  bool onlyTheWalIsDamaged(const rocksdb::Options& options,
                           const std::vector<rocksdb::ColumnFamilyDescriptor>& descriptors) const {
    rocksdb::DBOptions skipping(options);
    skipping.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    if (!rocksdb::DB::OpenForReadOnly(skipping, options_.path.string(), descriptors, &handles, &db).ok()) return false;
    for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    db->Close().PermitUncheckedError();
    delete db;
    return true;
  }

  // Without a CURRENT file the directory holds no database yet: it may be missing, empty,
  // or hold what RocksDB writes before CURRENT when a creation was interrupted. Anything
  // else is someone else's data, and no database is created among it.
  void requireRoomForNewDatabase() const {
    namespace fs = std::filesystem;
    if (!fs::exists(options_.path)) return;
    if (!fs::is_directory(options_.path)) {
      throw BackendError("rocksdb " + options_.path.string() + ": exists and is not a directory");
    }
    for (const fs::directory_entry& entry : fs::directory_iterator(options_.path)) {
      const std::string file = entry.path().filename().string();
      const bool rocksDbsOwn = file == "LOCK" || file == "IDENTITY" || file.starts_with("LOG") ||
                               file.starts_with("MANIFEST-") || file.starts_with("OPTIONS-") ||
                               file.ends_with(".log") || file.ends_with(".dbtmp");
      if (!rocksDbsOwn) {
        throw BackendError("rocksdb " + options_.path.string() +
                           ": not a RocksDB database (no CURRENT file) and not empty ('" + file +
                           "'); refusing to create one there");
      }
    }
  }

  // A state is registered when its column family and its kind row both exist. The kind
  // row is written first (createColumnFamily), so a registration cut short leaves a kind row alone,
  // which is removed here; databases written before that order may hold an empty column
  // family without a kind row, which is dropped. Anything else unexpected is an error.
  // Handles it destroys are set to null in `handles`.
  void findStates(const std::vector<std::string>& families, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    std::map<std::string, StateKind> kinds;
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), defaultHandle_));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        const std::string row = it->key().ToString();
        if (!row.starts_with(kKindPrefix)) {
          throw BackendError("rocksdb " + options_.path.string() + ": not an asyncstate database: unexpected row '" +
                             detail::printableBytes(row) + "' in the default column family");
        }
        const std::string stateName = row.substr(kKindPrefix.size());
        const std::optional<StateKind> kind = kindFromRow(it->value());
        if (!kind) {
          throw BackendError("rocksdb " + options_.path.string() + ": damaged database: the kind of state '" +
                             detail::printableBytes(stateName) + "' is '" +
                             detail::printableBytes(it->value().ToString()) + "', not one kind byte 1-5");
        }
        kinds.emplace(stateName, *kind);
      }
      check(it->status(), "reading the kinds of the states");
    }
    std::vector<std::size_t> withoutKind;
    for (std::size_t i = 0; i < families.size(); ++i) {
      if (families[i] == rocksdb::kDefaultColumnFamilyName) continue;
      const std::string stateName = families[i].substr(kCfPrefix.size());
      const auto kind = kinds.find(stateName);
      if (kind != kinds.end()) {
        states_.add(stateName, kind->second, [&](const std::string&, StateKind) { return handles[i]; });
        kinds.erase(kind);
        continue;
      }
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles[i]));
      it->SeekToFirst();
      check(it->status(), "reading state '" + stateName + "'");
      if (it->Valid()) {
        throw BackendError("rocksdb " + options_.path.string() + ": damaged database: state '" +
                           detail::printableBytes(stateName) + "' holds data but its kind is not recorded");
      }
      withoutKind.push_back(i);
    }
    for (std::size_t i : withoutKind) {
      check(db_->DropColumnFamily(handles[i]), "dropping the unregistered column family '" + families[i] + "'");
      check(db_->DestroyColumnFamilyHandle(std::exchange(handles[i], nullptr)),
            "closing column family '" + families[i] + "'");
    }
    rocksdb::WriteBatch orphans;
    for (const auto& [stateName, kind] : kinds) {
      check(orphans.Delete(defaultHandle_, std::string(kKindPrefix) + stateName), "removing an unused kind row");
    }
    if (orphans.Count() > 0) check(db_->Write(syncWrite(), &orphans), "removing unused kind rows");
  }

  static std::optional<StateKind> kindFromRow(const rocksdb::Slice& row) {
    if (row.size() != 1) return std::nullopt;
    const auto byte = static_cast<unsigned char>(row[0]);
    if (byte < static_cast<unsigned char>(StateKind::Value) ||
        byte > static_cast<unsigned char>(StateKind::Aggregating)) {
      return std::nullopt;
    }
    return static_cast<StateKind>(byte);
  }

  static rocksdb::WriteOptions syncWrite() {
    rocksdb::WriteOptions options;
    options.sync = true;
    return options;
  }

  static rocksdb::ColumnFamilyHandle* defaultHandle(const std::vector<rocksdb::ColumnFamilyHandle*>& handles,
                                                    const std::vector<std::string>& families) {
    for (std::size_t i = 0; i < families.size(); ++i) {
      if (families[i] == rocksdb::kDefaultColumnFamilyName) return handles[i];
    }
    throw BackendError("rocksdb: database has no default column family");
  }

  void close() {
    if (db_ == nullptr) return;
    for (const auto& state : states_) db_->DestroyColumnFamilyHandle(state.data);
    states_.clear();
    db_->DestroyColumnFamilyHandle(defaultHandle_);
    defaultHandle_ = nullptr;
    db_->Close().PermitUncheckedError();
    delete db_;
    db_ = nullptr;
  }

  // The kind row is written and synced before the column family is created: a crash in
  // between leaves a kind row without a column family, which the next open() removes, and
  // never a column family whose kind is unknown.
  rocksdb::ColumnFamilyHandle* createColumnFamily(const std::string& stateName, StateKind kind) {
    const char kindByte = static_cast<char>(kind);
    check(db_->Put(syncWrite(), defaultHandle_, std::string(kKindPrefix) + stateName, std::string(1, kindByte)),
          "recording the kind of state '" + stateName + "'");
    rocksdb::ColumnFamilyHandle* handle = nullptr;
    check(
        db_->CreateColumnFamily(rocksdb::ColumnFamilyOptions(dbOptions()), std::string(kCfPrefix) + stateName, &handle),
        "creating the column family of state '" + stateName + "'");
    return handle;
  }

  std::string stateName(const StateRequest& request) const { return states_.nameOf(request.stateId); }

  void check(const rocksdb::Status& status, const std::string& what) const {
    if (!status.ok()) throw BackendError("rocksdb " + options_.path.string() + ": " + what + ": " + status.ToString());
  }

  static std::string rowKey(std::string_view key, std::string_view userKey = {}) {
    std::string row;
    row.reserve(4 + key.size() + userKey.size());
    const auto n = static_cast<std::uint32_t>(key.size());
    row += static_cast<char>(n >> 24);
    row += static_cast<char>(n >> 16);
    row += static_cast<char>(n >> 8);
    row += static_cast<char>(n);
    row.append(key);
    row.append(userKey);
    return row;
  }

  static std::pair<std::string, std::string> decodeRowKey(const rocksdb::Slice& row, const std::string& stateName) {
    if (row.size() < 4) throw BackendError("rocksdb: malformed row key in state '" + stateName + "'");
    const auto* b = reinterpret_cast<const unsigned char*>(row.data());
    const std::size_t n = (std::size_t{b[0]} << 24) | (std::size_t{b[1]} << 16) | (std::size_t{b[2]} << 8) | b[3];
    if (row.size() < 4 + n) throw BackendError("rocksdb: malformed row key in state '" + stateName + "'");
    return {std::string(row.data() + 4, n), std::string(row.data() + 4 + n, row.size() - 4 - n)};
  }

  // The smallest string greater than every string that starts with `prefix`. A row
  // prefix always has a byte below 0xFF in its length field, so one exists.
  static std::string prefixEnd(std::string prefix) {
    while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xFF) prefix.pop_back();
    if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
    return prefix;
  }

  static bool isRead(const StateRequest& r) { return r.type == RequestType::Get || r.type == RequestType::Scan; }

  static std::string conflictKey(const StateRequest& r) { return std::to_string(r.stateId) + ':' + r.key; }

  static std::size_t segmentEnd(const std::vector<StateRequest>& batch, std::size_t begin) {
    std::unordered_set<std::string> written;
    std::size_t i = begin;
    for (; i < batch.size(); ++i) {
      if (isRead(batch[i])) {
        if (written.contains(conflictKey(batch[i]))) break;
      } else {
        written.insert(conflictKey(batch[i]));
      }
    }
    return i;
  }

  // Returns false when the segment's writes failed (their requests are failed already).
  // The reads take no explicit snapshot: the backend is the database's only writer and
  // is called from one thread at a time, so all of a segment's reads, which run before
  // its writes, see the same state anyway. Releasing a snapshot would make RocksDB
  // rewrite every new bottommost table file in the background (to zero its sequence
  // numbers), and the next incremental checkpoint would copy each file twice.
  bool runSegment(std::vector<StateRequest>& batch, std::size_t begin, std::size_t end, CompletionSink& sink) {
    const rocksdb::ReadOptions read;

    std::vector<std::size_t> gets;
    std::vector<std::string> getKeys;
    for (std::size_t i = begin; i < end; ++i) {
      if (batch[i].type == RequestType::Get) {
        gets.push_back(i);
        getKeys.push_back(rowKey(batch[i].key, batch[i].userKey));
      }
    }
    if (!gets.empty()) {
      std::vector<rocksdb::ColumnFamilyHandle*> handles;
      std::vector<rocksdb::Slice> slices;
      for (std::size_t g = 0; g < gets.size(); ++g) {
        handles.push_back(states_.at(batch[gets[g]].stateId).data);
        slices.emplace_back(getKeys[g]);
      }
      std::vector<rocksdb::PinnableSlice> values(gets.size());
      std::vector<rocksdb::Status> statuses(gets.size());
      db_->MultiGet(read, gets.size(), handles.data(), slices.data(), values.data(), statuses.data());
      for (std::size_t g = 0; g < gets.size(); ++g) {
        StateRequest& request = batch[gets[g]];
        if (statuses[g].ok() || statuses[g].IsNotFound()) {
          StateResult result;
          result.found = statuses[g].ok();
          if (result.found) result.value = values[g].ToString();
          sink.complete(request.ticket, std::move(result));
        } else {
          failRequest(request, statuses[g], sink);
        }
      }
    }

    rocksdb::WriteBatch writes;
    std::vector<std::size_t> writeIndexes;
    for (std::size_t i = begin; i < end; ++i) {
      StateRequest& request = batch[i];
      if (request.type == RequestType::Get) continue;
      if (request.type == RequestType::Scan) {
        scan(read, request, sink);
        continue;
      }
      const auto& state = states_.at(request.stateId);
      rocksdb::ColumnFamilyHandle* handle = state.data;
      const bool isMap = state.kind == StateKind::Map;
      switch (request.type) {
        case RequestType::Put:
          writes.Put(handle, rowKey(request.key, request.userKey), request.value).PermitUncheckedError();
          break;
        case RequestType::Delete:
          writes.Delete(handle, rowKey(request.key, request.userKey)).PermitUncheckedError();
          break;
        case RequestType::Append:
          writes.Merge(handle, rowKey(request.key), request.value).PermitUncheckedError();
          break;
        case RequestType::Clear:
          if (isMap) {
            const std::string prefix = rowKey(request.key);
            writes.DeleteRange(handle, prefix, prefixEnd(prefix)).PermitUncheckedError();
          } else {
            writes.Delete(handle, rowKey(request.key)).PermitUncheckedError();
          }
          break;
        case RequestType::Get:
        case RequestType::Scan: break;
      }
      writeIndexes.push_back(i);
    }
    if (writeIndexes.empty()) return true;
    const rocksdb::Status status = db_->Write(writeOptions(), &writes);
    for (std::size_t i : writeIndexes) {
      if (status.ok()) {
        sink.complete(batch[i].ticket, StateResult{});
      } else {
        failRequest(batch[i], status, sink);
      }
    }
    return status.ok();
  }

  void scan(const rocksdb::ReadOptions& segmentRead, StateRequest& request, CompletionSink& sink) {
    const std::string prefix = rowKey(request.key);
    const std::string upper = prefixEnd(prefix);
    const rocksdb::Slice upperSlice(upper);
    rocksdb::ReadOptions read = segmentRead;
    read.iterate_upper_bound = &upperSlice;
    StateResult result;
    if (request.cursor.atEnd()) {
      result.finishScan(request.cursor, false);
      sink.complete(request.ticket, std::move(result));
      return;
    }
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, states_.at(request.stateId).data));
    // The smallest row after the cursor's user key is its row key followed by a zero byte.
    it->Seek(request.cursor.atStart() ? prefix : rowKey(request.key, request.cursor.lastUserKey()) + '\0');
    for (; it->Valid() && result.entries.size() < request.limit; it->Next()) {
      result.entries.emplace_back(it->key().ToString().substr(prefix.size()), it->value().ToString());
    }
    if (!it->status().ok()) {
      failRequest(request, it->status(), sink);
      return;
    }
    result.finishScan(request.cursor, it->Valid());
    sink.complete(request.ticket, std::move(result));
  }

  void failRequest(const StateRequest& request, const rocksdb::Status& status, CompletionSink& sink) {
    ++stats_.failures;
    sink.fail(request.ticket,
              std::make_exception_ptr(BackendError("rocksdb " + options_.path.string() + ": " +
                                                   detail::describeRequest(request, stateName(request)) +
                                                   " failed: " + status.ToString())));
  }

  RocksDbOptions options_;
  // Held from before recovery until after close(); none for restoreCheckpoint()'s probe of
  // its private copy.
  std::optional<detail::PathLock> lock_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* defaultHandle_ = nullptr;
  ColumnFamilies states_{"rocksdb " + options_.path.string()};
  BackendStats stats_;
  std::size_t retainedCheckpoints_ = 3;
  // Table files already in uploadedRoot_'s shared/ by their name in this database.
  std::filesystem::path uploadedRoot_;
  std::unordered_map<std::string, CheckpointFile> uploaded_;
  std::atomic<int> executing_{0};  // executeBatch() calls running
  std::string closedBecause_;      // why db_ is null after the constructor
  bool createIfMissing_ = true;    // false while restoreCheckpoint() checks a checkpoint
};

}  // namespace asyncstate
