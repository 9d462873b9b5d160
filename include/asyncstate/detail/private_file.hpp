#pragma once
// Durable, owner-only files for savepoints and checkpoints, written with POSIX calls
// directly: <fstream> cannot sync a file to disk, and <filesystem> would make every
// translation unit that includes the umbrella header parse it.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

namespace asyncstate::detail {

[[noreturn]] inline void throwSystemError(const std::string& what, const std::string& path) {
  throw std::system_error(errno, std::generic_category(), what + " " + path);
}

// Closes a descriptor on every path out of a scope.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  FileDescriptor& operator=(FileDescriptor&&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// Writes all of `bytes`, retrying short writes and interrupts; false (errno set) on failure.
inline bool writeFully(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ::ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

inline bool isDirectory(const std::string& path) {
  struct ::stat info{};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

// The directory part of `path` ("" when it has none, "/" for a file in the root).
inline std::string parentDirectory(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return {};
  return slash == 0 ? std::string("/") : path.substr(0, slash);
}

// Creates every missing directory of `dir` with mode 0700; existing ones are left as they are.
inline void createPrivateDirectories(const std::string& dir) {
  for (std::size_t end = 0; end != std::string::npos;) {
    end = dir.find('/', end + 1);
    const std::string partial = dir.substr(0, end);
    if (partial.empty() || ::mkdir(partial.c_str(), 0700) == 0) continue;
    const int error = errno;
    if (error == EEXIST || isDirectory(partial)) continue;
    errno = error;
    throwSystemError("cannot create directory", partial);
  }
}

// Writes `bytes` to `path` (replacing it) with mode 0600, and syncs it to disk.
inline void writePrivateFile(const std::string& path, std::string_view bytes) {
  const FileDescriptor fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) throwSystemError("cannot create", path);
  // A file left by an earlier run keeps its mode through O_TRUNC: narrow it too.
  if (::fchmod(fd.get(), 0600) != 0) throwSystemError("cannot restrict the permissions of", path);
  if (!writeFully(fd.get(), bytes)) throwSystemError("cannot write", path);
  if (::fsync(fd.get()) != 0) throwSystemError("cannot sync", path);
}

// Syncs a directory, so that a rename or a new file in it survives a power loss.
inline void syncDirectory(const std::string& dir) {
  const std::string target = dir.empty() ? std::string(".") : dir;
  const FileDescriptor fd(::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) throwSystemError("cannot sync directory", target);
}

// Replaces `path` atomically: the bytes go to `path`.tmp, are synced, and are renamed
// into place, and the rename is synced too. A crash leaves the old file or the new one,
// never a mix.
inline void replaceFileDurably(const std::string& path, std::string_view bytes) {
  const std::string dir = parentDirectory(path);
  if (!dir.empty()) createPrivateDirectories(dir);
  const std::string tmp = path + ".tmp";
  writePrivateFile(tmp, bytes);
  if (::rename(tmp.c_str(), path.c_str()) != 0) throwSystemError("cannot rename " + tmp + " to", path);
  syncDirectory(dir);
}

// The whole content of `path`; false when it cannot be opened or read.
inline bool readWholeFile(const std::string& path, std::string& bytes) {
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return false;
  bytes.clear();
  char buffer[1 << 16];
  for (;;) {
    const ::ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return false;
    if (got == 0) return true;
    bytes.append(buffer, static_cast<std::size_t>(got));
  }
}

}  // namespace asyncstate::detail
