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

#include <asyncstate/detail/printable_bytes.hpp>
#include <asyncstate/detail/private_file.hpp>
#include <asyncstate/serializer.hpp>
#include <asyncstate/state_backend.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
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

// Savepoint (declared in state_backend.hpp) is BasicSavepoint<>: a class template only so
// that its code is compiled by the translation units that take or restore a savepoint,
// not by every one that includes the umbrella header.
template <class>
class BasicSavepoint {
 public:
  static constexpr std::uint32_t kFormatVersion = 1;
  static constexpr std::string_view kMagic{"ASYNCSP\0", 8};

  // Only map states' entries have a user key. Each (key, userKey) may be added once per
  // state; a second is refused by serialize(), which sorts the entries anyway, rather than
  // here, where finding it would cost an index of every key.
  void add(const std::string& stateName, StateKind kind, std::string key, std::string userKey, std::string value) {
    if (kind != StateKind::Map && !userKey.empty()) {
      throw std::invalid_argument("savepoint: " + userKeyOutsideMap(stateName, kind, key, userKey));
    }
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
      const std::vector<const SavepointEntry*> sorted = sortedEntries(state);
      if (const SavepointEntry* twice = repeatedEntry(sorted)) {
        throw std::invalid_argument("savepoint: " + entryAddedTwice(name, *twice));
      }
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

  static BasicSavepoint parse(std::string_view bytes) {
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
      BasicSavepoint sp;
      for (std::size_t n = detail::readLength(body, 8); n > 0; --n) {
        std::string k = Serializer<std::string>::read(body);
        auto [it, inserted] = sp.metadata_.try_emplace(std::move(k), Serializer<std::string>::read(body));
        if (!inserted) {
          throw CorruptSavepointError("metadata field '" + detail::printableBytes(it->first) + "' appears twice");
        }
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
          if (state.kind != StateKind::Map && !e.userKey.empty()) {
            throw CorruptSavepointError(userKeyOutsideMap(name, state.kind, e.key, e.userKey));
          }
          state.entries.push_back(std::move(e));
        }
        if (const SavepointEntry* twice = repeatedEntry(sortedEntries(state))) {
          throw CorruptSavepointError(entryAddedTwice(name, *twice));
        }
      }
      if (!body.empty())
        throw CorruptSavepointError(std::to_string(body.size()) + " trailing bytes after the last state");
      return sp;
    } catch (const SerializationError& e) {
      throw CorruptSavepointError(std::string("malformed savepoint: ") + e.what());
    }
  }

  // Writes through a synced temporary file renamed into place (the rename synced too):
  // a crash or a full disk never leaves a half-written savepoint under `path`. State is
  // private data: the file is readable by its owner only (0600), and missing parent
  // directories are created the same way (0700). A std::filesystem::path converts.
  void writeFile(const std::string& path) const { detail::replaceFileDurably(path, serialize()); }

  static BasicSavepoint readFile(const std::string& path) {
    std::string bytes;
    if (!detail::readWholeFile(path, bytes)) throw CorruptSavepointError("cannot open savepoint " + path);
    try {
      return parse(bytes);
    } catch (const CorruptSavepointError& e) {
      throw CorruptSavepointError(path + ": " + e.what());
    }
  }

  friend bool operator==(const BasicSavepoint& a, const BasicSavepoint& b) { return a.serialize() == b.serialize(); }

 private:
  // The order serialize() writes, which makes its bytes the same for the same contents.
  static std::vector<const SavepointEntry*> sortedEntries(const SavepointState& state) {
    std::vector<const SavepointEntry*> sorted;
    sorted.reserve(state.entries.size());
    for (const auto& e : state.entries) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(), [](const SavepointEntry* a, const SavepointEntry* b) {
      return std::tie(a->key, a->userKey) < std::tie(b->key, b->userKey);
    });
    return sorted;
  }

  // Two values for one (key, userKey): restoring keeps one of them and drops the other.
  static const SavepointEntry* repeatedEntry(const std::vector<const SavepointEntry*>& sorted) {
    auto twice = std::adjacent_find(sorted.begin(), sorted.end(), [](const SavepointEntry* a, const SavepointEntry* b) {
      return std::tie(a->key, a->userKey) == std::tie(b->key, b->userKey);
    });
    return twice == sorted.end() ? nullptr : *twice;
  }

  static std::string entryAddedTwice(const std::string& stateName, const SavepointEntry& e) {
    std::string text = "state '" + stateName + "' holds key '" + detail::printableBytes(e.key) + "'";
    if (!e.userKey.empty()) text += " user key '" + detail::printableBytes(e.userKey) + "'";
    return text + " twice";
  }

  static std::string userKeyOutsideMap(const std::string& stateName, StateKind kind, const std::string& key,
                                       const std::string& userKey) {
    return "state '" + stateName + "' is a " + toString(kind) + " state, whose entries have no user key, but key '" +
           detail::printableBytes(key) + "' has user key '" + detail::printableBytes(userKey) + "'";
  }

  static std::string hex(std::uint32_t v) {
    char buf[11];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
  }

  std::map<std::string, SavepointState> states_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace asyncstate
