#pragma once
// The canonical savepoint: one versioned, checksummed byte format that every backend
// writes and every backend restores. Entries are sorted before encoding, so the same
// state yields the same bytes whichever backend produced it.
//
// Layout (little-endian):
//   "ASYNCSP\0" | u32 format version | u32 metadata count | (str key, str value)*
//   | u32 state count | (str name, u8 kind, u64 entry count, (str key, str userKey, str value)*)*
//   | u32 CRC-32 of every preceding byte
// where str = u32 length + bytes.

#include <asyncstate/serializer.hpp>
#include <asyncstate/state_backend.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace asyncstate {

class CorruptSavepointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// CRC-32 (IEEE 802.3, reflected), the checksum zlib and PNG use.
inline std::uint32_t crc32(std::string_view bytes) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) crc = table[(crc ^ b) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}
}  // namespace detail

namespace detail {

[[noreturn]] inline void throwSystemError(const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(errno, std::generic_category(), what + " " + path.string());
}

// Creates every missing directory of `dir` with mode 0700; existing ones are left as they are.
inline void createPrivateDirectories(const std::filesystem::path& dir) {
  std::filesystem::path partial;
  for (const std::filesystem::path& part : dir) {
    partial /= part;
    if (::mkdir(partial.c_str(), 0700) == 0) continue;
    const int error = errno;
    if (error == EEXIST || std::filesystem::is_directory(partial)) continue;
    errno = error;
    throwSystemError("cannot create directory", partial);
  }
}

// Writes `bytes` to `path` (replacing it) with mode 0600, and syncs it to disk.
inline void writePrivateFile(const std::filesystem::path& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throwSystemError("cannot create", path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  // A file left by an earlier run keeps its mode through O_TRUNC: narrow it too.
  if (::fchmod(fd, 0600) != 0) throwSystemError("cannot restrict the permissions of", path);
  while (!bytes.empty()) {
    const ::ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) throwSystemError("cannot write", path);
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  if (::fsync(fd) != 0) throwSystemError("cannot sync", path);
}

}  // namespace detail

struct SavepointEntry {
  std::string key;
  std::string userKey;
  std::string value;
  friend bool operator==(const SavepointEntry&, const SavepointEntry&) = default;
};

struct SavepointState {
  StateKind kind = StateKind::Value;
  std::vector<SavepointEntry> entries;
};

class Savepoint {
 public:
  static constexpr std::uint32_t kFormatVersion = 1;
  static constexpr std::string_view kMagic{"ASYNCSP\0", 8};

  void add(const std::string& stateName, StateKind kind, std::string key, std::string userKey, std::string value) {
    SavepointState& state = declare(stateName, kind);
    state.entries.push_back({std::move(key), std::move(userKey), std::move(value)});
  }

  // Records a state even when it holds no entries, so restore can check kinds.
  SavepointState& declare(const std::string& stateName, StateKind kind) {
    auto [it, inserted] = states_.try_emplace(stateName);
    if (inserted) {
      it->second.kind = kind;
    } else if (it->second.kind != kind) {
      throw std::invalid_argument("savepoint: state '" + stateName + "' declared as " + toString(it->second.kind) +
                                  " and as " + toString(kind));
    }
    return it->second;
  }

  const std::map<std::string, SavepointState>& states() const noexcept { return states_; }
  std::map<std::string, std::string>& metadata() noexcept { return metadata_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  std::size_t entryCount() const {
    std::size_t n = 0;
    for (const auto& [name, state] : states_) n += state.entries.size();
    return n;
  }

  std::string serialize() const {
    std::string out(kMagic);
    Serializer<std::uint32_t>::write(out, kFormatVersion);
    Serializer<std::uint32_t>::write(out, static_cast<std::uint32_t>(metadata_.size()));
    for (const auto& [k, v] : metadata_) {
      Serializer<std::string>::write(out, k);
      Serializer<std::string>::write(out, v);
    }
    Serializer<std::uint32_t>::write(out, static_cast<std::uint32_t>(states_.size()));
    for (const auto& [name, state] : states_) {
      std::vector<const SavepointEntry*> sorted;
      sorted.reserve(state.entries.size());
      for (const auto& e : state.entries) sorted.push_back(&e);
      std::sort(sorted.begin(), sorted.end(), [](const SavepointEntry* a, const SavepointEntry* b) {
        return std::tie(a->key, a->userKey) < std::tie(b->key, b->userKey);
      });
      Serializer<std::string>::write(out, name);
      Serializer<std::uint8_t>::write(out, static_cast<std::uint8_t>(state.kind));
      Serializer<std::uint64_t>::write(out, sorted.size());
      for (const SavepointEntry* e : sorted) {
        Serializer<std::string>::write(out, e->key);
        Serializer<std::string>::write(out, e->userKey);
        Serializer<std::string>::write(out, e->value);
      }
    }
    Serializer<std::uint32_t>::write(out, detail::crc32(out));
    return out;
  }

  static Savepoint parse(std::string_view bytes) {
    if (bytes.size() < kMagic.size() + 8 || bytes.substr(0, kMagic.size()) != kMagic) {
      throw CorruptSavepointError(
          "not an asyncstate savepoint (bad magic or too short: " + std::to_string(bytes.size()) + " bytes)");
    }
    std::string_view body = bytes.substr(0, bytes.size() - 4);
    std::string_view trailer = bytes.substr(bytes.size() - 4);
    const std::uint32_t stored = Serializer<std::uint32_t>::read(trailer);
    const std::uint32_t actual = detail::crc32(body);
    if (stored != actual) {
      throw CorruptSavepointError("savepoint checksum mismatch (stored " + hex(stored) + ", computed " + hex(actual) +
                                  "): the file is truncated or corrupt");
    }
    body.remove_prefix(kMagic.size());
    try {
      const std::uint32_t version = Serializer<std::uint32_t>::read(body);
      if (version != kFormatVersion) {
        throw CorruptSavepointError("unsupported savepoint format version " + std::to_string(version) +
                                    " (this build reads version " + std::to_string(kFormatVersion) + ")");
      }
      Savepoint sp;
      for (std::size_t n = detail::readLength(body, 8); n > 0; --n) {
        std::string k = Serializer<std::string>::read(body);
        sp.metadata_[std::move(k)] = Serializer<std::string>::read(body);
      }
      for (std::size_t n = detail::readLength(body, 13); n > 0; --n) {
        std::string name = Serializer<std::string>::read(body);
        const auto kind = Serializer<std::uint8_t>::read(body);
        if (kind < static_cast<std::uint8_t>(StateKind::Value) ||
            kind > static_cast<std::uint8_t>(StateKind::Aggregating)) {
          throw CorruptSavepointError("state '" + name + "' has unknown kind " + std::to_string(kind));
        }
        if (sp.states_.contains(name)) throw CorruptSavepointError("state '" + name + "' appears twice");
        SavepointState& state = sp.declare(name, static_cast<StateKind>(kind));
        std::uint64_t count = Serializer<std::uint64_t>::read(body);
        if (count > body.size() / 12) throw CorruptSavepointError("state '" + name + "' claims too many entries");
        state.entries.reserve(count);
        for (; count > 0; --count) {
          SavepointEntry e;
          e.key = Serializer<std::string>::read(body);
          e.userKey = Serializer<std::string>::read(body);
          e.value = Serializer<std::string>::read(body);
          state.entries.push_back(std::move(e));
        }
      }
      if (!body.empty())
        throw CorruptSavepointError(std::to_string(body.size()) + " trailing bytes after the last state");
      return sp;
    } catch (const SerializationError& e) {
      throw CorruptSavepointError(std::string("malformed savepoint: ") + e.what());
    }
  }

  // Writes through a temporary file and renames it into place: a crash or a full disk
  // never leaves a half-written savepoint under `path`. State is private data: the file
  // is readable by its owner only (0600), and missing parent directories are created
  // the same way (0700).
  void writeFile(const std::filesystem::path& path) const {
    const std::string bytes = serialize();
    if (path.has_parent_path()) detail::createPrivateDirectories(path.parent_path());
    const std::filesystem::path tmp = path.string() + ".tmp";
    detail::writePrivateFile(tmp, bytes);
    std::filesystem::rename(tmp, path);
  }

  static Savepoint readFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CorruptSavepointError("cannot open savepoint " + path.string());
    std::ostringstream buffer;
    buffer << in.rdbuf();
    try {
      return parse(buffer.str());
    } catch (const CorruptSavepointError& e) {
      throw CorruptSavepointError(path.string() + ": " + e.what());
    }
  }

  friend bool operator==(const Savepoint& a, const Savepoint& b) { return a.serialize() == b.serialize(); }

 private:
  static std::string hex(std::uint32_t v) {
    char buf[11];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
  }

  std::map<std::string, SavepointState> states_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace asyncstate
