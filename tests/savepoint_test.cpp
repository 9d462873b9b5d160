// Savepoint files: a structurally invalid file with a valid checksum is reported as
// corrupt with its path, and files and directories are private to their owner.

#include <asyncstate/savepoint.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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
  sp.add("s2", secondKind, "k", "u", "2");
  std::string bytes = sp.serialize();
  const std::size_t at = bytes.find("s2");
  bytes[at + 1] = '1';
  bytes.resize(bytes.size() - 4);
  const std::uint32_t crc = detail::crc32(bytes);
  Serializer<std::uint32_t>::write(bytes, crc);
  return bytes;
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
