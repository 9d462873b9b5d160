#pragma once
// Incremental checkpoints of a RocksDB database into a directory that stands for remote
// storage (a mounted bucket, a shared file system): RocksDbCheckpointStore is that
// directory. RocksDbBackend::checkpoint() lists the database's live files and hands them
// here; this header knows nothing of RocksDB itself.
//
// Layout of a checkpoint root (directories 0700, files 0600):
//   shared/<number>-<random>.sst     immutable table files, each copied once and then
//                                    referenced by every checkpoint that needs it
//   checkpoint-<id>/                 the files that change (MANIFEST, CURRENT, OPTIONS,
//                                    WAL), copied every time
//   STARTED-EMPTY                    written (synced) when recording began on an empty
//                                    database: checkpoint 0 of this root is "no state"
//   checkpoint-<id>/CHECKPOINT       the manifest: every file of the checkpoint with its
//                                    size and CRC-32C, the caller's metadata (hex-encoded
//                                    "meta" lines; manifests written before they existed
//                                    have none), and a CRC-32C of the manifest
// Restoring a checkpoint (materialize) hard-links its shared table files into the new
// database directory when both are on one file system, so recovery reads the state once
// (checksums) and writes none of it.
// A checkpoint exists once its manifest does. The manifest is written last (temporary
// file, fsync, rename, fsync of the directory) after every file it names is synced, so a
// crash at any point leaves either a complete checkpoint or leftovers that no manifest
// references; the next retention pass deletes those. Retention deletes a checkpoint's
// manifest before its files, and a shared file only when no retained manifest names it.
// One writer per root: two backends checkpointing into the same root would delete each
// other's files.

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/detail/private_file.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace asyncstate {

// One file of a checkpoint.
struct CheckpointFile {
  std::string name;        // its name in the database directory, e.g. "000012.sst"
  std::string sharedName;  // its name under <root>/shared; empty: it is in the checkpoint's own directory
  std::uint64_t size = 0;
  std::uint32_t crc32c = 0;
  bool copied = false;  // copied by this checkpoint; false: a shared file an earlier checkpoint copied
};

struct CheckpointHandle {
  std::uint64_t id = 0;
  std::filesystem::path directory;
  std::vector<CheckpointFile> files;
  std::map<std::string, std::string> metadata;  // the caller's, e.g. a runner's position

  std::size_t filesCopied() const {
    std::size_t n = 0;
    for (const CheckpointFile& f : files) n += f.copied ? 1 : 0;
    return n;
  }
  std::uint64_t bytesCopied() const {
    std::uint64_t n = 0;
    for (const CheckpointFile& f : files) n += f.copied ? f.size : 0;
    return n;
  }
};

namespace detail {

inline constexpr std::array<std::uint32_t, 256> kCrc32cTable = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) != 0 ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}();

// CRC-32C (Castagnoli) one byte per table lookup: the portable path.
inline std::uint32_t crc32cPortable(std::uint32_t crc, std::string_view bytes) {
  crc = ~crc;
  for (unsigned char c : bytes) crc = kCrc32cTable[(crc ^ c) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same with SSE 4.2's crc32 instruction, eight bytes at a time: recovery verifies
// every byte of a checkpoint, and the table path would take longer than opening it.
[[gnu::target("sse4.2")]] inline std::uint32_t crc32cSse42(std::uint32_t crc, std::string_view bytes) {
  std::uint64_t wide = ~crc;
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  for (; left >= 8; p += 8, left -= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    wide = __builtin_ia32_crc32di(wide, word);
  }
  auto narrow = static_cast<std::uint32_t>(wide);
  for (; left > 0; ++p, --left) narrow = __builtin_ia32_crc32qi(narrow, static_cast<unsigned char>(*p));
  return ~narrow;
}
#endif

// CRC-32C; start with 0 and feed the previous result to continue.
inline std::uint32_t crc32c(std::uint32_t crc, std::string_view bytes) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return crc32cSse42(crc, bytes);
#endif
  return crc32cPortable(crc, bytes);
}

[[noreturn]] inline void throwFileError(const std::string& what, const std::filesystem::path& path, int error) {
  throw BackendError(what + " " + path.string() + ": " + std::error_code(error, std::generic_category()).message());
}

inline FileDescriptor openFile(const std::filesystem::path& path, int flags, const char* what) {
  FileDescriptor fd(::open(path.c_str(), flags, 0600));
  if (fd.get() < 0) throwFileError(what, path, errno);
  return fd;
}

inline void syncPath(const std::filesystem::path& path) {
  const FileDescriptor fd = openFile(path, O_RDONLY | O_CLOEXEC, "opening for fsync");
  if (::fsync(fd.get()) != 0) throwFileError("fsync of", path, errno);
}

// Creates `path` owner-only if it is missing; an existing directory is kept as it is.
inline void createPrivateDirectory(const std::filesystem::path& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) throwFileError("creating directory", path, errno);
  if (!std::filesystem::is_directory(path)) throw BackendError(path.string() + " exists and is not a directory");
}

inline void writeAll(int fd, std::string_view bytes, const std::filesystem::path& path) {
  if (!writeFully(fd, bytes)) throwFileError("writing", path, errno);
}

// Writes `contents` to a new owner-only file and syncs it.
inline std::uint32_t writeNewFile(const std::filesystem::path& path, std::string_view contents) {
  const FileDescriptor out = openFile(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, "creating");
  writeAll(out.get(), contents, path);
  if (::fsync(out.get()) != 0) throwFileError("fsync of", path, errno);
  return crc32c(0, contents);
}

// Reads exactly the first `size` bytes of `from`, hands each chunk to `sink` and returns
// their CRC-32C. A source shorter than `size` is an error.
template <class Sink>
std::uint32_t readFilePrefix(const std::filesystem::path& from, std::uint64_t size, Sink&& sink) {
  const FileDescriptor in = openFile(from, O_RDONLY | O_CLOEXEC, "opening");
  std::uint32_t crc = 0;
  std::vector<char> buffer(1u << 20);
  std::uint64_t left = size;
  while (left > 0) {
    const ssize_t n =
        ::read(in.get(), buffer.data(), static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size())));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwFileError("reading", from, errno);
    if (n == 0) {
      throw BackendError(from.string() + " has " + std::to_string(size - left) + " bytes, expected " +
                         std::to_string(size));
    }
    const std::string_view chunk(buffer.data(), static_cast<std::size_t>(n));
    crc = crc32c(crc, chunk);
    sink(chunk);
    left -= static_cast<std::uint64_t>(n);
  }
  return crc;
}

// Copies exactly the first `size` bytes of `from` to the new owner-only file `to`, syncs
// it and returns their CRC-32C.
inline std::uint32_t copyFilePrefix(const std::filesystem::path& from, const std::filesystem::path& to,
                                    std::uint64_t size) {
  const FileDescriptor out = openFile(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, "creating");
  const std::uint32_t crc = readFilePrefix(from, size, [&](std::string_view chunk) { writeAll(out.get(), chunk, to); });
  if (::fsync(out.get()) != 0) throwFileError("fsync of", to, errno);
  return crc;
}

// The CRC-32C of the first `size` bytes of `path`, reading only.
inline std::uint32_t checksumFilePrefix(const std::filesystem::path& path, std::uint64_t size) {
  return readFilePrefix(path, size, [](std::string_view) {});
}

// A file name as a manifest may carry it: no directories, so a manifest cannot point
// outside the checkpoint root.
inline bool isPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

}  // namespace detail

class RocksDbCheckpointStore {
 public:
  explicit RocksDbCheckpointStore(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path sharedDirectory() const { return root_ / "shared"; }
  std::filesystem::path directoryOf(std::uint64_t id) const { return root_ / ("checkpoint-" + std::to_string(id)); }
  std::filesystem::path manifestOf(std::uint64_t id) const { return directoryOf(id) / kManifest; }

  // Complete checkpoints (those with a manifest), oldest first.
  std::vector<std::uint64_t> list() const {
    std::vector<std::uint64_t> ids;
    for (std::uint64_t id : directoryIds()) {
      if (std::filesystem::exists(manifestOf(id))) ids.push_back(id);
    }
    return ids;
  }

  // Whether recording into this root began on an empty database. Only a marker the
  // backend wrote says so: a root that merely exists may have been made by hand, or for
  // another database, and taking it as checkpoint 0 would let rollBackTo(0) empty a
  // database that held state.
  bool startedEmpty() const { return std::filesystem::exists(root_ / kStartedEmpty); }

  // Creates the root if it is missing and records that its checkpoint 0 is the empty
  // database, durably (temporary file, sync, rename, sync of the root, then of the root's
  // parent): after a crash the marker is either there or not, and a root left without it
  // is judged again on the next start (the database is still empty then, since nothing
  // is written before recording began).
  void markStartedEmpty() const {
    const std::filesystem::path parent = root_.parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    detail::replaceFileDurably((root_ / kStartedEmpty).string(),
                               "asyncstate: checkpoint 0 of this root is the empty database\n");
    detail::syncPath(parent.empty() ? std::filesystem::path(".") : parent);
  }

  // Starts checkpoint number max(existing)+1: creates the root, shared/ and its directory.
  CheckpointHandle begin() const {
    detail::createPrivateDirectory(root_);
    detail::createPrivateDirectory(sharedDirectory());
    const std::vector<std::uint64_t> existing = directoryIds();
    CheckpointHandle handle;
    handle.id = existing.empty() ? 1 : existing.back() + 1;
    handle.directory = directoryOf(handle.id);
    if (::mkdir(handle.directory.c_str(), 0700) != 0) {
      detail::throwFileError("creating checkpoint directory", handle.directory, errno);
    }
    return handle;
  }

  // Whether an earlier checkpoint's shared file is still there to be referenced.
  bool hasShared(const CheckpointFile& file) const {
    std::error_code error;
    return std::filesystem::file_size(sharedDirectory() / file.sharedName, error) == file.size && !error;
  }

  // Copies `size` bytes of the immutable file `source` into shared/ under a fresh name.
  CheckpointFile upload(const std::filesystem::path& source, std::uint64_t size) const {
    CheckpointFile file;
    file.name = source.filename().string();
    file.sharedName = source.stem().string() + "-" + randomHex() + source.extension().string();
    file.size = size;
    const std::filesystem::path temporary = sharedDirectory() / (file.sharedName + ".tmp");
    try {
      file.crc32c = detail::copyFilePrefix(source, temporary, size);
      std::filesystem::rename(temporary, sharedDirectory() / file.sharedName);
    } catch (...) {
      std::error_code ignored;
      std::filesystem::remove(temporary, ignored);
      throw;
    }
    file.copied = true;
    return file;
  }

  // Copies `size` bytes of `source`, or writes `contents` when `source` is empty, into
  // the checkpoint's own directory.
  static CheckpointFile storePrivate(const CheckpointHandle& handle, const std::string& name,
                                     const std::filesystem::path& source, std::uint64_t size,
                                     std::string_view contents) {
    CheckpointFile file;
    file.name = name;
    file.copied = true;
    if (source.empty()) {
      file.size = contents.size();
      file.crc32c = detail::writeNewFile(handle.directory / name, contents);
    } else {
      file.size = size;
      file.crc32c = detail::copyFilePrefix(source, handle.directory / name, size);
    }
    return file;
  }

  // Makes the checkpoint exist: syncs the directories, then writes the manifest atomically.
  void commit(const CheckpointHandle& handle) const {
    detail::syncPath(sharedDirectory());
    detail::syncPath(handle.directory);
    std::string text = std::string(kFormatLine) + "\nid " + std::to_string(handle.id) + "\n";
    for (const CheckpointFile& f : handle.files) {
      text += f.sharedName.empty() ? "private " + f.name : "shared " + f.name + " " + f.sharedName;
      text += " " + std::to_string(f.size) + " " + hex(f.crc32c) + " " + (f.copied ? "copied" : "reused") + "\n";
    }
    // Prefixed so that an empty key or value is still a field.
    for (const auto& [key, value] : handle.metadata) text += "meta k" + hexBytes(key) + " v" + hexBytes(value) + "\n";
    text += "crc32c " + hex(detail::crc32c(0, text)) + "\n";
    const std::filesystem::path temporary = handle.directory / (std::string(kManifest) + ".tmp");
    detail::writeNewFile(temporary, text);
    std::filesystem::rename(temporary, manifestOf(handle.id));
    detail::syncPath(handle.directory);
  }

  // Reads and verifies checkpoint `id`'s manifest.
  CheckpointHandle read(std::uint64_t id) const {
    const std::filesystem::path path = manifestOf(id);
    std::string text;
    {
      std::error_code error;
      const std::uint64_t size = std::filesystem::file_size(path, error);
      if (error) {
        throw BackendError(where(id) + "no manifest " + path.string() + " (" + error.message() +
                           "): the checkpoint does not exist or was not completed");
      }
      const detail::FileDescriptor in = detail::openFile(path, O_RDONLY | O_CLOEXEC, "opening manifest");
      text.resize(size);
      std::size_t done = 0;
      while (done < text.size()) {
        const ssize_t n = ::read(in.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw BackendError(where(id) + "cannot read manifest " + path.string());
        done += static_cast<std::size_t>(n);
      }
    }
    const std::size_t crcLine = text.rfind("crc32c ");
    if (crcLine == std::string::npos || text.back() != '\n' ||
        text.substr(crcLine) != "crc32c " + hex(detail::crc32c(0, std::string_view(text).substr(0, crcLine))) + "\n") {
      throw BackendError(where(id) + "manifest " + path.string() + " is corrupt (checksum mismatch or truncated)");
    }
    std::istringstream lines(text.substr(0, crcLine));
    std::string line;
    CheckpointHandle handle;
    handle.id = id;
    handle.directory = directoryOf(id);
    const auto corrupt = [&](const std::string& what) {
      return BackendError(where(id) + "manifest " + path.string() + " is corrupt: " + what);
    };
    if (!std::getline(lines, line) || line != kFormatLine) throw corrupt("unknown format '" + line + "'");
    if (!std::getline(lines, line) || line != "id " + std::to_string(id)) throw corrupt("it names '" + line + "'");
    while (std::getline(lines, line)) {
      if (line.starts_with("meta ")) {
        std::istringstream fields(line.substr(5));
        std::string key;
        std::string value;
        std::string extra;
        fields >> key >> value;
        std::optional<std::string> decodedKey = key.starts_with('k') ? unhexBytes(key.substr(1)) : std::nullopt;
        std::optional<std::string> decodedValue = value.starts_with('v') ? unhexBytes(value.substr(1)) : std::nullopt;
        if (fields.fail() || (fields >> extra) || !decodedKey || !decodedValue) {
          throw corrupt("bad metadata line '" + detail::printableBytes(line) + "'");
        }
        handle.metadata[std::move(*decodedKey)] = std::move(*decodedValue);
        continue;
      }
      std::istringstream fields(line);
      std::string type;
      std::string crc;
      std::string copied;
      std::string extra;
      CheckpointFile file;
      fields >> type >> file.name;
      if (type == "shared") fields >> file.sharedName;
      fields >> file.size >> crc >> copied;
      const bool valid = (type == "private" || type == "shared") && !fields.fail() && !(fields >> extra) &&
                         detail::isPlainFileName(file.name) &&
                         (type == "private" || detail::isPlainFileName(file.sharedName)) &&
                         (copied == "copied" || copied == "reused");
      if (!valid) throw corrupt("bad line '" + detail::printableBytes(line) + "'");
      const char* const crcEnd = crc.data() + crc.size();
      const auto [parsedUpTo, error] = std::from_chars(crc.data(), crcEnd, file.crc32c, 16);
      if (crc.size() != 8 || error != std::errc{} || parsedUpTo != crcEnd) {
        throw corrupt("the crc32c field of " + file.name + " is '" + detail::printableBytes(crc) +
                      "', not 8 hex digits");
      }
      file.copied = copied == "copied";
      handle.files.push_back(std::move(file));
    }
    return handle;
  }

  // Where a checkpoint's file lives in the store.
  std::filesystem::path locate(const CheckpointHandle& handle, const CheckpointFile& file) const {
    return file.sharedName.empty() ? handle.directory / file.name : sharedDirectory() / file.sharedName;
  }

  // Copies every file of `handle` into the new directory `target` (missing or empty),
  // checking sizes and checksums, so that RocksDB opens it as the checkpointed database.
  // On failure `target` is left as it was.
  void materialize(const CheckpointHandle& handle, const std::filesystem::path& target) const {
    namespace fs = std::filesystem;
    if (fs::exists(target) && !(fs::is_directory(target) && fs::is_empty(target))) {
      throw BackendError(where(handle.id) + "cannot restore into " + target.string() +
                         ": it exists and is not an empty directory");
    }
    const fs::path staging = target.string() + ".restoring";
    fs::remove_all(staging);
    if (!target.parent_path().empty()) fs::create_directories(target.parent_path());
    detail::createPrivateDirectory(staging);
    try {
      for (const CheckpointFile& file : handle.files) {
        const fs::path source = locate(handle, file);
        std::error_code error;
        const std::uint64_t size = fs::file_size(source, error);
        if (error)
          throw BackendError(where(handle.id) + "file " + source.string() + " is missing (" + error.message() + ")");
        if (size != file.size) {
          throw BackendError(where(handle.id) + "file " + source.string() + " is corrupt: " + std::to_string(size) +
                             " bytes, the manifest says " + std::to_string(file.size));
        }
        // A shared table file is immutable, in the checkpoint and in the database alike:
        // the restored database gets a hard link to it, so recovery writes none of the
        // state, only reads it once to verify it. Across file systems (remote storage
        // mounted elsewhere) and for the files RocksDB appends to, it is a copy.
        std::error_code linkError;
        if (!file.sharedName.empty()) fs::create_hard_link(source, staging / file.name, linkError);
        const bool linked = !file.sharedName.empty() && !linkError;
        const std::uint32_t crc = linked ? detail::checksumFilePrefix(source, file.size)
                                         : detail::copyFilePrefix(source, staging / file.name, file.size);
        if (crc != file.crc32c) {
          throw BackendError(where(handle.id) + "file " + source.string() + " is corrupt: checksum mismatch");
        }
      }
      detail::syncPath(staging);
      if (fs::exists(target)) fs::remove(target);
      fs::rename(staging, target);
      detail::syncPath(target.parent_path().empty() ? fs::path(".") : target.parent_path());
    } catch (...) {
      std::error_code ignored;
      fs::remove_all(staging, ignored);
      throw;
    }
  }

  // Makes every checkpoint newer than `id` incomplete (manifest deleted, newest first);
  // their directories stay until the next retention pass, so that no id is used twice.
  void dropNewerThan(std::uint64_t id) const {
    std::vector<std::uint64_t> complete = list();
    bool dropped = false;
    for (auto it = complete.rbegin(); it != complete.rend() && *it > id; ++it) {
      std::filesystem::remove(manifestOf(*it));
      dropped = true;
    }
    if (dropped) {
      for (std::uint64_t newer : complete) {
        if (newer > id) detail::syncPath(directoryOf(newer));
      }
    }
  }

  // Keeps the newest `keep` checkpoints: deletes older ones (manifest first), leftovers of
  // checkpoints that never completed, and every shared file no retained manifest names.
  // Returns the shared names deleted.
  std::vector<std::string> retainNewest(std::size_t keep) const {
    namespace fs = std::filesystem;
    const std::vector<std::uint64_t> complete = list();
    const std::size_t drop = complete.size() > keep ? complete.size() - keep : 0;
    for (std::size_t i = 0; i < drop; ++i) fs::remove(manifestOf(complete[i]));
    for (std::uint64_t id : directoryIds()) {
      if (!fs::exists(manifestOf(id))) fs::remove_all(directoryOf(id));
    }
    std::set<std::string> referenced;
    for (std::uint64_t id : list()) {
      CheckpointHandle handle;
      try {
        handle = read(id);
      } catch (const BackendError& e) {
        throw BackendError(std::string(e.what()) + "; no shared file was deleted");
      }
      for (const CheckpointFile& file : handle.files) {
        if (!file.sharedName.empty()) referenced.insert(file.sharedName);
      }
    }
    std::vector<std::string> deleted;
    if (!fs::exists(sharedDirectory())) return deleted;
    for (const fs::directory_entry& entry : fs::directory_iterator(sharedDirectory())) {
      const std::string name = entry.path().filename().string();
      if (referenced.contains(name)) continue;
      fs::remove(entry.path());
      deleted.push_back(name);
    }
    return deleted;
  }

 private:
  static constexpr std::string_view kManifest = "CHECKPOINT";
  static constexpr std::string_view kStartedEmpty = "STARTED-EMPTY";
  static constexpr std::string_view kFormatLine = "asyncstate rocksdb checkpoint 1";

  std::string where(std::uint64_t id) const {
    return "rocksdb checkpoint " + std::to_string(id) + " in " + root_.string() + ": ";
  }

  // Ids of every checkpoint directory, complete or not, ascending.
  std::vector<std::uint64_t> directoryIds() const {
    std::vector<std::uint64_t> ids;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(root_, error)) {
      const std::string name = entry.path().filename().string();
      constexpr std::string_view kPrefix = "checkpoint-";
      if (!name.starts_with(kPrefix) || name.size() == kPrefix.size() || name.size() > kPrefix.size() + 19) continue;
      const std::string digits = name.substr(kPrefix.size());
      if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
      ids.push_back(std::stoull(digits));
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  static std::string hex(std::uint32_t value) {
    char text[9];
    std::snprintf(text, sizeof text, "%08x", value);
    return text;
  }

  static std::string hexBytes(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string text;
    text.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
      text += kDigits[c >> 4];
      text += kDigits[c & 0xFu];
    }
    return text;
  }

  static std::optional<std::string> unhexBytes(std::string_view text) {
    if (text.size() % 2 != 0) return std::nullopt;
    const auto digit = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    std::string bytes;
    bytes.reserve(text.size() / 2);
    for (std::size_t i = 0; i < text.size(); i += 2) {
      const int high = digit(text[i]);
      const int low = digit(text[i + 1]);
      if (high < 0 || low < 0) return std::nullopt;
      bytes += static_cast<char>(high * 16 + low);
    }
    return bytes;
  }

  static std::string randomHex() {
    std::random_device device;
    const std::uint64_t value = (std::uint64_t{device()} << 32) | device();
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
    return text;
  }

  std::filesystem::path root_;
};

}  // namespace asyncstate
