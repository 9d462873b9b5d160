// Incremental RocksDB checkpoints (RocksDbBackend::checkpoint, rocksdb_checkpoint.hpp):
// what each checkpoint copies, what retention deletes, exact restores, and clear errors
// for damaged checkpoints. Assertions are on manifests and files, never on timing.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <asyncstate/backend/rocksdb.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>

namespace asyncstate::test {
namespace {

namespace fs = std::filesystem;

std::set<std::string> sharedNames(const CheckpointHandle& handle) {
  std::set<std::string> names;
  for (const CheckpointFile& file : handle.files) {
    if (!file.sharedName.empty()) names.insert(file.sharedName);
  }
  return names;
}

std::set<std::string> filesIn(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

std::string errorOf(const std::function<void()>& action) {
  try {
    action();
  } catch (const BackendError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a BackendError: ") + e.what();
  }
  return "no error";
}

void fillStates(RocksDbBackend& db) {
  const std::uint32_t value = db.registerState("value", StateKind::Value);
  const std::uint32_t map = db.registerState("map", StateKind::Map);
  const std::uint32_t list = db.registerState("list", StateKind::List);
  std::vector<StateRequest> batch;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i);
    batch.push_back(put(value, key, "v" + std::to_string(i)));
    batch.push_back(putEntry(map, key, "sku", std::to_string(i)));
    batch.push_back(append(list, key, "e"));
  }
  run(db, std::move(batch));
}

TEST(RocksDbCheckpoint, ASecondCheckpointCopiesOnlyTheNewTableFiles) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle first = db.checkpoint(root);
  EXPECT_EQ(first.filesCopied(), first.files.size()) << "the first checkpoint copies everything";
  EXPECT_GE(sharedNames(first).size(), 4u) << "one table file per state and one for the kinds";

  run(db, {put(db.registerState("value", StateKind::Value), "k1", "changed")});
  const CheckpointHandle second = db.checkpoint(root);
  EXPECT_EQ(second.id, first.id + 1);
  std::size_t copiedShared = 0;
  for (const CheckpointFile& file : second.files) {
    if (file.sharedName.empty()) continue;
    if (file.copied) {
      ++copiedShared;
      EXPECT_FALSE(sharedNames(first).contains(file.sharedName));
    } else {
      EXPECT_TRUE(sharedNames(first).contains(file.sharedName)) << file.name;
    }
  }
  EXPECT_EQ(copiedShared, 1u) << "one state changed: one new table file";
  for (const std::string& name : sharedNames(first)) {
    EXPECT_TRUE(sharedNames(second).contains(name)) << name << " is still live and must be referenced";
  }
  EXPECT_EQ(RocksDbBackend::checkpoints(root), (std::vector<std::uint64_t>{first.id, second.id}));
  // The manifest on disk says the same as the handle.
  const CheckpointHandle reread = RocksDbCheckpointStore(root).read(second.id);
  ASSERT_EQ(reread.files.size(), second.files.size());
  for (std::size_t i = 0; i < reread.files.size(); ++i) {
    EXPECT_EQ(reread.files[i].name, second.files[i].name);
    EXPECT_EQ(reread.files[i].sharedName, second.files[i].sharedName);
    EXPECT_EQ(reread.files[i].size, second.files[i].size);
    EXPECT_EQ(reread.files[i].crc32c, second.files[i].crc32c);
    EXPECT_EQ(reread.files[i].copied, second.files[i].copied);
  }
}

TEST(RocksDbCheckpoint, EveryRetainedCheckpointRestoresItsExactState) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle first = db.checkpoint(root);
  const std::string atFirst = savepointBytes(db);
  const std::uint32_t value = db.registerState("value", StateKind::Value);
  const std::uint32_t later = db.registerState("later", StateKind::Map);
  run(db, {put(value, "k1", "changed"), del(value, "k2"), putEntry(later, "u", "x", "1")});
  const CheckpointHandle second = db.checkpoint(root);
  const std::string atSecond = savepointBytes(db);
  run(db, {put(value, "k1", "after the checkpoints")});

  auto restoredFirst = RocksDbBackend::restoreFromCheckpoint(root, first.id, RocksDbOptions{dir.path() / "r1"});
  auto restoredSecond = RocksDbBackend::restoreFromCheckpoint(root, second.id, RocksDbOptions{dir.path() / "r2"});
  // The restored backend continues the chain: nothing changed, so nothing is copied but
  // the small per-checkpoint files.
  const CheckpointHandle third = restoredSecond->checkpoint(root);
  for (const CheckpointFile& file : third.files) {
    if (!file.sharedName.empty()) {
      EXPECT_FALSE(file.copied) << file.name << " was copied again";
    }
  }
  EXPECT_EQ(sharedNames(third), sharedNames(second));

  EXPECT_EQ(savepointBytes(*restoredFirst), atFirst);
  EXPECT_EQ(savepointBytes(*restoredSecond), atSecond);
  const std::uint32_t restoredValue = restoredSecond->registerState("value", StateKind::Value);
  EXPECT_EQ(shown(run(*restoredSecond, {get(restoredValue, "k1")})[0]), "changed");
  EXPECT_THROW(restoredSecond->registerState("later", StateKind::Value), std::invalid_argument);
}

TEST(RocksDbCheckpoint, RetentionDeletesOnlySharedFilesNoRetainedCheckpointNeeds) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  db.retain(2);
  const std::uint32_t a = db.registerState("a", StateKind::Value);
  run(db, {put(a, "k", "v1")});
  const CheckpointHandle cp1 = db.checkpoint(root);
  run(db, {put(a, "k", "v2")});
  const CheckpointHandle cp2 = db.checkpoint(root);
  db.compact();  // every table file is rewritten: cp1's and cp2's leave the live set
  const CheckpointHandle cp3 = db.checkpoint(root);
  const std::string atThird = savepointBytes(db);
  EXPECT_EQ(RocksDbBackend::checkpoints(root), (std::vector<std::uint64_t>{cp2.id, cp3.id}));
  EXPECT_FALSE(fs::exists(cp1.directory));
  std::set<std::string> needed = sharedNames(cp2);
  needed.merge(sharedNames(cp3));
  EXPECT_EQ(filesIn(root / "shared"), needed) << "cp2 still needs cp1's files";

  run(db, {put(a, "k", "v3")});
  db.compact();
  const CheckpointHandle cp4 = db.checkpoint(root);
  EXPECT_EQ(RocksDbBackend::checkpoints(root), (std::vector<std::uint64_t>{cp3.id, cp4.id}));
  needed = sharedNames(cp3);
  needed.merge(sharedNames(cp4));
  EXPECT_EQ(filesIn(root / "shared"), needed);
  std::set<std::string> gone = sharedNames(cp1);
  gone.merge(sharedNames(cp2));
  for (const std::string& name : needed) gone.erase(name);
  EXPECT_FALSE(gone.empty()) << "the files only cp1 and cp2 referenced are deleted";
  for (const std::string& name : sharedNames(cp3)) {
    EXPECT_TRUE(fs::exists(root / "shared" / name)) << name << " is referenced by the retained cp3";
  }

  auto restored = RocksDbBackend::restoreFromCheckpoint(root, cp3.id, RocksDbOptions{dir.path() / "r3"});
  EXPECT_EQ(savepointBytes(*restored), atThird);
  EXPECT_EQ(shown(run(*restored, {get(restored->registerState("a", StateKind::Value), "k")})[0]), "v2");
}

TEST(RocksDbCheckpoint, LeftoversOfAnInterruptedCheckpointAreIgnoredAndCleanedUp) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle first = db.checkpoint(root);
  // What a crash before the manifest was renamed into place leaves behind.
  fs::create_directory(root / "checkpoint-7");
  std::ofstream(root / "checkpoint-7" / "CHECKPOINT.tmp") << "half";
  std::ofstream(root / "shared" / "000099-0123456789abcdef.sst.tmp") << "half";
  EXPECT_EQ(RocksDbBackend::checkpoints(root), (std::vector<std::uint64_t>{first.id}));
  EXPECT_NE(errorOf([&] {
              RocksDbBackend::restoreFromCheckpoint(root, 7, RocksDbOptions{dir.path() / "r"});
            }).find("no manifest"),
            std::string::npos);

  const CheckpointHandle next = db.checkpoint(root);
  EXPECT_EQ(next.id, 8u);
  EXPECT_FALSE(fs::exists(root / "checkpoint-7"));
  EXPECT_FALSE(fs::exists(root / "shared" / "000099-0123456789abcdef.sst.tmp"));
  EXPECT_EQ(RocksDbBackend::checkpoints(root), (std::vector<std::uint64_t>{first.id, next.id}));
}

// Each case damages its own root, then restores: a BackendError that says what is wrong,
// and nothing created at the restore target.
// Edits a checkpoint's manifest and writes its checksum anew: damage the checksum misses.
void rewriteManifest(const CheckpointHandle& handle, const std::function<void(std::string&)>& edit) {
  const fs::path manifest = handle.directory / "CHECKPOINT";
  std::ifstream in(manifest, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text.resize(text.rfind("crc32c "));
  edit(text);
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", detail::crc32c(0, text));
  fs::permissions(manifest, fs::perms::owner_read | fs::perms::owner_write);
  std::ofstream(manifest, std::ios::binary | std::ios::trunc) << text << "crc32c " << crc << "\n";
}

TEST(RocksDbCheckpoint, ADamagedCheckpointFailsToRestoreWithAClearError) {
  TempDir dir;
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const auto damaged = [&](const std::string& name, const std::function<void(const CheckpointHandle&)>& damage) {
    const fs::path root = dir.path() / name;
    const CheckpointHandle handle = db.checkpoint(root);
    damage(handle);
    const fs::path target = dir.path() / ("restored-" + name);
    const std::string error =
        errorOf([&] { RocksDbBackend::restoreFromCheckpoint(root, handle.id, RocksDbOptions{target}); });
    EXPECT_FALSE(fs::exists(target)) << name;
    EXPECT_FALSE(fs::exists(target.string() + ".restoring")) << name;
    EXPECT_NE(error.find(root.string()), std::string::npos) << error;
    return error;
  };
  const auto firstShared = [](const CheckpointHandle& handle) {
    for (const CheckpointFile& file : handle.files) {
      if (!file.sharedName.empty()) return handle.directory.parent_path() / "shared" / file.sharedName;
    }
    throw std::runtime_error("no shared file");
  };

  EXPECT_NE(damaged("no-manifest", [](const CheckpointHandle& h) { fs::remove(h.directory / "CHECKPOINT"); })
                .find("no manifest"),
            std::string::npos);
  EXPECT_NE(damaged("flipped-manifest",
                    [](const CheckpointHandle& h) {
                      std::fstream f(h.directory / "CHECKPOINT", std::ios::in | std::ios::out | std::ios::binary);
                      f.seekp(40);
                      f.put('#');
                    })
                .find("manifest " + (dir.path() / "flipped-manifest").string()),
            std::string::npos);
  EXPECT_NE(damaged("truncated-manifest",
                    [](const CheckpointHandle& h) {
                      fs::resize_file(h.directory / "CHECKPOINT", fs::file_size(h.directory / "CHECKPOINT") / 2);
                    })
                .find("is corrupt"),
            std::string::npos);
  std::string missingFile;
  EXPECT_NE(damaged("missing-file",
                    [&](const CheckpointHandle& h) {
                      missingFile = firstShared(h).string();
                      fs::remove(firstShared(h));
                    })
                .find(missingFile + " is missing"),
            std::string::npos);
  std::string flippedFile;
  EXPECT_NE(damaged("flipped-file",
                    [&](const CheckpointHandle& h) {
                      flippedFile = firstShared(h).string();
                      std::fstream f(firstShared(h), std::ios::in | std::ios::out | std::ios::binary);
                      f.seekg(10);
                      const char c = static_cast<char>(f.get());
                      f.seekp(10);
                      f.put(static_cast<char>(c ^ 0x5a));
                    })
                .find(flippedFile + " is corrupt: checksum mismatch"),
            std::string::npos);
  std::string crcOf;
  EXPECT_NE(damaged("non-hex-crc",
                    [&](const CheckpointHandle& h) {
                      const CheckpointFile& file = h.files.front();
                      crcOf = file.name;
                      char crc[9];
                      std::snprintf(crc, sizeof crc, "%08x", file.crc32c);
                      rewriteManifest(h, [&](std::string& text) {
                        const std::size_t at = text.find(" " + std::to_string(file.size) + " " + crc + " ");
                        if (at == std::string::npos) throw std::runtime_error("no line for " + file.name);
                        text.replace(at + 2 + std::to_string(file.size).size(), 8, "zzzzzzzz");
                      });
                    })
                .find("crc32c field of " + crcOf + " is 'zzzzzzzz'"),
            std::string::npos);
  EXPECT_NE(damaged("missing-private",
                    [](const CheckpointHandle& h) {
                      for (const CheckpointFile& file : h.files) {
                        if (file.sharedName.empty() && file.name.starts_with("MANIFEST"))
                          fs::remove(h.directory / file.name);
                      }
                    })
                .find("is missing"),
            std::string::npos);
}

TEST(RocksDbCheckpoint, AnUnreadableRetainedManifestStopsRetentionFromDeletingAnything) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle first = db.checkpoint(root);
  fs::resize_file(first.directory / "CHECKPOINT", 10);
  db.compact();  // the next checkpoint no longer references first's files
  EXPECT_NE(errorOf([&] { db.checkpoint(root); }).find("no shared file was deleted"), std::string::npos);
  for (const std::string& name : sharedNames(first)) EXPECT_TRUE(fs::exists(root / "shared" / name)) << name;
  EXPECT_EQ(RocksDbBackend::checkpoints(root).size(), 2u) << "the new checkpoint is complete, the damaged one kept";
}

// Files that match their manifest but that RocksDB cannot open: the error is RocksDB's,
// and the target is left as it was.
TEST(RocksDbCheckpoint, ACheckpointRocksDbCannotOpenLeavesTheTargetAsItWas) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle handle = db.checkpoint(root);
  // Point CURRENT at a MANIFEST that does not exist, and rewrite the checkpoint's
  // manifest so that every checksum matches the altered file.
  const std::string current = "MANIFEST-999999\n";
  fs::remove(handle.directory / "CURRENT");
  std::ofstream(handle.directory / "CURRENT") << current;
  std::string text;
  for (const CheckpointFile& file : handle.files) {
    const bool isCurrent = file.name == "CURRENT";
    char crc[9];
    std::snprintf(crc, sizeof crc, "%08x", isCurrent ? detail::crc32c(0, current) : file.crc32c);
    text += file.sharedName.empty() ? "private " + file.name : "shared " + file.name + " " + file.sharedName;
    text += " " + std::to_string(isCurrent ? current.size() : file.size) + " " + crc + " " +
            (file.copied ? "copied" : "reused") + "\n";
  }
  text = "asyncstate rocksdb checkpoint 1\nid " + std::to_string(handle.id) + "\n" + text;
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", detail::crc32c(0, text));
  std::ofstream(handle.directory / "CHECKPOINT", std::ios::trunc) << text << "crc32c " << crc << "\n";

  fs::create_directories(dir.path() / "empty");
  const std::string error =
      errorOf([&] { RocksDbBackend::restoreFromCheckpoint(root, handle.id, RocksDbOptions{dir.path() / "empty"}); });
  EXPECT_NE(error.find("MANIFEST-999999"), std::string::npos) << error;
  EXPECT_TRUE(fs::is_directory(dir.path() / "empty"));
  EXPECT_TRUE(fs::is_empty(dir.path() / "empty"));
}

ino_t inodeOf(const fs::path& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("stat " + path.string() + " failed");
  return st.st_ino;
}

// Recovery writes none of the state: the table files are hard links to the checkpoint's
// (only what RocksDB appends to is copied), and the restored database changing and
// compacting its files leaves the checkpoint as it was.
TEST(RocksDbCheckpoint, RecoveryLinksTheTableFilesAndLeavesTheCheckpointIntact) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle handle = db.checkpoint(root);
  const std::string atCheckpoint = savepointBytes(db);

  const RocksDbCheckpointStore store(root);
  const fs::path materialized = dir.path() / "materialized";
  store.materialize(store.read(handle.id), materialized);
  std::size_t linked = 0;
  for (const CheckpointFile& file : handle.files) {
    const bool sameFile =
        inodeOf(materialized / file.name) ==
        inodeOf(file.sharedName.empty() ? handle.directory / file.name : store.sharedDirectory() / file.sharedName);
    EXPECT_EQ(sameFile, !file.sharedName.empty()) << file.name;
    linked += sameFile ? 1 : 0;
  }
  EXPECT_GE(linked, 4u);

  {
    auto restored = RocksDbBackend::restoreFromCheckpoint(root, handle.id, RocksDbOptions{dir.path() / "r1"});
    const std::uint32_t value = restored->registerState("value", StateKind::Value);
    std::vector<StateRequest> overwrite;
    for (int i = 0; i < 200; ++i) overwrite.push_back(put(value, "k" + std::to_string(i), "overwritten"));
    run(*restored, std::move(overwrite));
    restored->compact();
  }
  auto again = RocksDbBackend::restoreFromCheckpoint(root, handle.id, RocksDbOptions{dir.path() / "r2"});
  EXPECT_EQ(savepointBytes(*again), atCheckpoint);
}

TEST(RocksDbCheckpoint, HardwareAndPortableCrc32cAgree) {
  EXPECT_EQ(detail::crc32c(0, "123456789"), 0xE3069283u) << "the CRC-32C check value";
  EXPECT_EQ(detail::crc32cPortable(0, "123456789"), 0xE3069283u);
  std::string bytes;
  std::uint32_t seed = 7;
  for (int i = 0; i < 1000; ++i) bytes += static_cast<char>((seed = seed * 1103515245u + 12345u) >> 16);
  for (std::size_t length : {0u, 1u, 7u, 8u, 9u, 63u, 1000u}) {
    for (std::size_t offset : {0u, 1u, 3u}) {
      const std::string_view part = std::string_view(bytes).substr(offset, std::min(length, bytes.size() - offset));
      EXPECT_EQ(detail::crc32c(0, part), detail::crc32cPortable(0, part)) << length << " at " << offset;
      const std::size_t half = part.size() / 2;
      EXPECT_EQ(detail::crc32c(detail::crc32c(0, part.substr(0, half)), part.substr(half)),
                detail::crc32cPortable(0, part));
    }
  }
}

TEST(RocksDbCheckpoint, RestoreNeverOverwritesAnExistingDirectory) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle handle = db.checkpoint(root);
  fs::create_directories(dir.path() / "busy");
  std::ofstream(dir.path() / "busy" / "data") << "keep";
  EXPECT_NE(errorOf([&] {
              RocksDbBackend::restoreFromCheckpoint(root, handle.id, RocksDbOptions{dir.path() / "busy"});
            }).find("not an empty directory"),
            std::string::npos);
  EXPECT_EQ(filesIn(dir.path() / "busy"), (std::set<std::string>{"data"}));
}

// A backend in the middle of restoreCheckpoint() holds its path's lock while its
// database is renamed aside and its copy is staged in <path>.restoring. Restoring into
// that path deleted the staged copy before the new backend's open was refused.
TEST(RocksDbCheckpoint, RestoringIntoAPathAnotherBackendHoldsIsRefusedBeforeAnythingIsTouched) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle handle = db.checkpoint(root);
  const fs::path target = dir.path() / "busy";
  const detail::PathLock heldByAnother(target);
  fs::create_directories(target.string() + ".restoring");
  std::ofstream(target.string() + ".restoring/CURRENT") << "being copied";
  EXPECT_NE(errorOf([&] {
              RocksDbBackend::restoreFromCheckpoint(root, handle.id, RocksDbOptions{target});
            }).find(target.string() + " is in use by another backend"),
            std::string::npos);
  EXPECT_EQ(filesIn(target.string() + ".restoring"), (std::set<std::string>{"CURRENT"}));
  EXPECT_FALSE(fs::exists(target));
}

TEST(RocksDbCheckpoint, CheckpointFilesAndDirectoriesAreOwnerOnly) {
  TempDir dir;
  const fs::path root = dir.path() / "remote";
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  fillStates(db);
  const CheckpointHandle first = db.checkpoint(root);
  const auto mode = [](const fs::path& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("stat " + path.string());
    return st.st_mode & 0777;
  };
  EXPECT_EQ(mode(root), 0700u);
  EXPECT_EQ(mode(root / "shared"), 0700u);
  EXPECT_EQ(mode(first.directory), 0700u);
  for (const fs::path& sub : {root / "shared", first.directory}) {
    for (const auto& entry : fs::directory_iterator(sub)) EXPECT_EQ(mode(entry.path()), 0600u) << entry.path();
  }
  auto restored = RocksDbBackend::restoreFromCheckpoint(root, first.id, RocksDbOptions{dir.path() / "restored"});
  EXPECT_EQ(mode(dir.path() / "restored"), 0700u);
}

}  // namespace
}  // namespace asyncstate::test
