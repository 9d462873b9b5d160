// Savepoint files: a structurally invalid file with a valid checksum is reported as
// corrupt with its path, and files and directories are private to their owner. Also the
// value encodings savepoints carry: corrupt bytes are refused, never taken for a value.

#include <asyncstate/savepoint.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace asyncstate {
namespace {

class TempDirectory {
 public:
  TempDirectory() {
    char pattern[] = "/tmp/asyncstate-savepoint-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A savepoint whose state "s2" is renamed to "s1" in the bytes, checksum recomputed:
// well-formed in every field, but naming one state twice.
std::string withStateNamedTwice(StateKind secondKind) {
  Savepoint sp;
  sp.add("s1", StateKind::Value, "k", "", "1");
  sp.add("s2", secondKind, "k", secondKind == StateKind::Map ? "u" : "", "2");
  std::string bytes = sp.serialize();
  const std::size_t at = bytes.find("s2");
  bytes[at + 1] = '1';
  bytes.resize(bytes.size() - 4);
  const std::uint32_t crc = detail::crc32(bytes);
  Serializer<std::uint32_t>::write(bytes, crc);
  return bytes;
}

// The bytes of a savepoint with one state, written field by field with a valid checksum,
// so that they can hold what serialize() never writes.
std::string rawSavepoint(const std::vector<std::pair<std::string, std::string>>& metadata, const std::string& stateName,
                         StateKind kind, const std::vector<SavepointEntry>& entries) {
  std::string bytes(Savepoint::kMagic);
  Serializer<std::uint32_t>::write(bytes, Savepoint::kFormatVersion);
  Serializer<std::uint32_t>::write(bytes, static_cast<std::uint32_t>(metadata.size()));
  for (const auto& [k, v] : metadata) {
    Serializer<std::string>::write(bytes, k);
    Serializer<std::string>::write(bytes, v);
  }
  Serializer<std::uint32_t>::write(bytes, 1);
  Serializer<std::string>::write(bytes, stateName);
  Serializer<std::uint8_t>::write(bytes, static_cast<std::uint8_t>(kind));
  Serializer<std::uint64_t>::write(bytes, entries.size());
  for (const SavepointEntry& e : entries) {
    Serializer<std::string>::write(bytes, e.key);
    Serializer<std::string>::write(bytes, e.userKey);
    Serializer<std::string>::write(bytes, e.value);
  }
  const std::uint32_t crc = detail::crc32(bytes);
  Serializer<std::uint32_t>::write(bytes, crc);
  return bytes;
}

std::string parseError(const std::string& bytes) {
  try {
    (void)Savepoint::parse(bytes);
  } catch (const CorruptSavepointError& e) {
    return e.what();
  }
  return "accepted";
}

mode_t modeOf(const std::filesystem::path& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("stat failed: " + path.string());
  return st.st_mode & 07777;
}

TEST(SavepointTest, AStateNamedTwiceIsACorruptSavepointNamingTheFile) {
  for (StateKind second : {StateKind::Value, StateKind::Map}) {
    const std::string bytes = withStateNamedTwice(second);
    EXPECT_THROW(Savepoint::parse(bytes), CorruptSavepointError);
    TempDirectory dir;
    const std::filesystem::path file = dir.path() / "twice.asp";
    std::ofstream(file, std::ios::binary) << bytes;
    try {
      (void)Savepoint::readFile(file);
      ADD_FAILURE() << "expected CorruptSavepointError for kind " << toString(second);
    } catch (const CorruptSavepointError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(file.string()), std::string::npos) << what;
      EXPECT_NE(what.find("'s1' appears twice"), std::string::npos) << what;
    }
  }
}

TEST(SavepointTest, AMetadataFieldNamedTwiceIsACorruptSavepointNamingIt) {
  EXPECT_EQ(parseError(rawSavepoint({{"a", "1"}, {"b", "2"}}, "s", StateKind::Value, {})), "accepted");
  const std::string error = parseError(rawSavepoint({{"a", "1"}, {"a", "2"}}, "s", StateKind::Value, {}));
  EXPECT_NE(error.find("metadata field 'a' appears twice"), std::string::npos) << error;
}

TEST(SavepointTest, AnEntryHeldTwiceIsACorruptSavepointNamingTheStateAndKey) {
  std::string error =
      parseError(rawSavepoint({}, "v", StateKind::Value, {{"k", "", "1"}, {"j", "", "0"}, {"k", "", "2"}}));
  EXPECT_NE(error.find("state 'v' holds key 'k' twice"), std::string::npos) << error;
  error = parseError(rawSavepoint({}, "m", StateKind::Map, {{"k", "u", "1"}, {"k", "w", "0"}, {"k", "u", "2"}}));
  EXPECT_NE(error.find("state 'm' holds key 'k' user key 'u' twice"), std::string::npos) << error;
  EXPECT_EQ(parseError(rawSavepoint({}, "m", StateKind::Map, {{"k", "u", "1"}, {"k", "w", "2"}})), "accepted");
}

TEST(SavepointTest, AnEntryAddedTwiceIsRefusedWhenSerialized) {
  Savepoint sp;
  sp.add("m", StateKind::Map, "k", "u", "1");
  sp.add("m", StateKind::Map, "k", "w", "2");
  Savepoint reordered;
  reordered.add("m", StateKind::Map, "k", "w", "2");
  reordered.add("m", StateKind::Map, "k", "u", "1");
  EXPECT_EQ(sp.serialize(), reordered.serialize()) << "the bytes do not depend on the order of add()";
  sp.add("m", StateKind::Map, "k", "u", "3");
  try {
    (void)sp.serialize();
    FAIL() << "serialize() picked one of two values for the same entry";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("state 'm' holds key 'k' user key 'u' twice"), std::string::npos) << e.what();
  }
}

TEST(SavepointTest, AUserKeyOutsideAMapStateIsCorruptAndRefusedByAdd) {
  for (StateKind kind : {StateKind::Value, StateKind::List, StateKind::Reducing, StateKind::Aggregating}) {
    const std::string error = parseError(rawSavepoint({}, "s", kind, {{"k", "u", "1"}}));
    EXPECT_NE(error.find("state 's' is a " + std::string(toString(kind)) + " state"), std::string::npos) << error;
    EXPECT_NE(error.find("key 'k' has user key 'u'"), std::string::npos) << error;
    Savepoint sp;
    EXPECT_THROW(sp.add("s", kind, "k", "u", "1"), std::invalid_argument);
    EXPECT_TRUE(sp.states().empty()) << "a refused add declares nothing";
  }
}

TEST(SerializerTest, ABoolByteOtherThanZeroOrOneIsCorrupt) {
  EXPECT_EQ(decode<bool>(encode(true)), true);
  EXPECT_EQ(decode<bool>(encode(false)), false);
  EXPECT_EQ(encode(true), std::string(1, '\1'));
  EXPECT_THROW(decode<bool>(std::string(1, '\2')), SerializationError);
  EXPECT_THROW(decode<bool>(std::string(1, '\xff')), SerializationError);
  EXPECT_THROW(decode<std::optional<int>>(std::string("\x05\x01\x00\x00\x00", 5)), SerializationError);
  EXPECT_THROW(decode<std::optional<bool>>(std::string("\x01\x07", 2)), SerializationError);
  EXPECT_THROW(decode<std::vector<bool>>(std::string("\x02\x00\x00\x00\x01\x02", 6)), SerializationError);
}

TEST(SerializerTest, AMapHoldingAKeyTwiceIsCorruptNamingTheKey) {
  const std::string bytes =
      std::string("\x02\x00\x00\x00", 4) + encode(std::string("k")) + encode(1) + encode(std::string("k")) + encode(2);
  try {
    (void)decode<std::map<std::string, int>>(bytes);
    FAIL() << "a value of the repeated key was dropped";
  } catch (const SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find("key k appears twice"), std::string::npos) << e.what();
  }
}

TEST(SerializerTest, ContainersOfValuesThatTakeNoBytesRoundTripAndTheirCountStaysBounded) {
  const std::vector<std::tuple<>> empties(3);
  EXPECT_EQ(decode<std::vector<std::tuple<>>>(encode(empties)).size(), 3u);
  using EmptyPairs = std::vector<std::pair<std::tuple<>, std::tuple<>>>;
  EXPECT_EQ(decode<EmptyPairs>(encode(EmptyPairs(2))).size(), 2u);
  using EmptyMap = std::map<std::tuple<>, std::tuple<>>;
  EXPECT_EQ(decode<EmptyMap>(encode(EmptyMap{{{}, {}}})).size(), 1u);

  EXPECT_THROW(decode<std::vector<std::tuple<>>>(std::string("\xff\xff\xff\xff", 4)), SerializationError);
  EXPECT_THROW(encode(std::vector<std::tuple<>>(detail::kMaxBytelessElements + 1)), SerializationError)
      << "what could not be decoded is not encoded";
  EXPECT_THROW(decode<std::vector<std::string>>(std::string("\xff\xff\xff\xff", 4)), SerializationError);
}

TEST(SerializerTest, ALengthBeyondThirtyTwoBitsIsRefusedRatherThanCut) {
  // A real 4 GiB string is too much for a test; the length prefix is what every
  // container's and string's write goes through.
  std::string out = "kept";
  try {
    detail::writeLength(out, std::size_t{1} << 32, 1);
    FAIL() << "a length of 2^32 was written as " << out.size() - 4 << " bytes of a prefix that decodes as 0";
  } catch (const SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find("a length prefix holds at most 4294967295"), std::string::npos) << e.what();
  }
  EXPECT_EQ(out, "kept");
  detail::writeLength(out, std::numeric_limits<std::uint32_t>::max(), 1);
  std::string_view written = std::string_view(out).substr(4);
  EXPECT_EQ(Serializer<std::uint32_t>::read(written), std::numeric_limits<std::uint32_t>::max());
}

// Sets the process umask for one test (0: the system would grant every bit asked for).
class UmaskScope {
 public:
  explicit UmaskScope(mode_t mask) : previous_(::umask(mask)) {}
  ~UmaskScope() { ::umask(previous_); }
  UmaskScope(const UmaskScope&) = delete;
  UmaskScope& operator=(const UmaskScope&) = delete;

 private:
  mode_t previous_;
};

TEST(SavepointTest, FilesAndTheDirectoriesCreatedForThemAreReadableByTheOwnerOnly) {
  UmaskScope permissive(0);
  TempDirectory dir;
  ::chmod(dir.path().c_str(), 0755);
  Savepoint sp;
  sp.add("s", StateKind::Value, "k", "", "v");
  const std::filesystem::path file = dir.path() / "checkpoints" / "job" / "cp-1.asp";
  sp.writeFile(file);
  EXPECT_EQ(modeOf(file), 0600u);
  EXPECT_EQ(modeOf(dir.path() / "checkpoints"), 0700u);
  EXPECT_EQ(modeOf(dir.path() / "checkpoints" / "job"), 0700u);
  EXPECT_EQ(modeOf(dir.path()), 0755u) << "an existing directory is left as it is";
  EXPECT_EQ(Savepoint::readFile(file), sp);

  // A world-readable file (and leftover temporary) under the same name is replaced by a private one.
  ::chmod(file.c_str(), 0644);
  std::ofstream(file.string() + ".tmp") << "leftover";
  ::chmod((file.string() + ".tmp").c_str(), 0666);
  sp.writeFile(file);
  EXPECT_EQ(modeOf(file), 0600u);
  EXPECT_FALSE(std::filesystem::exists(file.string() + ".tmp"));
}

TEST(SavepointTest, AnUnwritableLocationIsAClearError) {
  TempDirectory dir;
  std::ofstream(dir.path() / "file") << "x";
  Savepoint sp;
  try {
    sp.writeFile(dir.path() / "file" / "cp.asp");
    FAIL() << "expected an error";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir.path() / "file").string()), std::string::npos) << e.what();
  }
}

// A bare file name has no directory part: the file and its rename are synced in the
// working directory.
TEST(SavepointTest, ABareFileNameIsWrittenAndReadInTheWorkingDirectory) {
  TempDirectory dir;
  const std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  Savepoint sp;
  sp.add("s", StateKind::Value, "k", "", "v");
  sp.writeFile("bare.asp");
  const Savepoint back = Savepoint::readFile("bare.asp");
  std::filesystem::current_path(previous);
  EXPECT_EQ(back, sp);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "bare.asp"));
}

TEST(SavepointTest, AMissingFileIsAClearErrorNamingIt) {
  TempDirectory dir;
  const std::filesystem::path missing = dir.path() / "none.asp";
  try {
    (void)Savepoint::readFile(missing);
    FAIL() << "expected CorruptSavepointError";
  } catch (const CorruptSavepointError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace asyncstate
