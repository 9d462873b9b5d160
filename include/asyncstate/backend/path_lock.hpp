#pragma once
// An exclusive advisory lock a backend holds on its database path for as long as it is
// open, in a file next to it (<path>.lock).
//
// RocksDB's own LOCK file lives inside the database directory, so it is taken only once
// the database opens. A backend does more before that: it finishes or undoes a restore
// or roll-back that a crash interrupted, by renaming and deleting the directories next
// to the database. A second backend on a path already in use would do that to the first
// one's work in progress (delete its staged copy, swap a directory under it) before its
// own open failed. The lock is taken before any of that, and it stays on the same file
// while the database directory is renamed. flock() locks belong to the open file, so two
// backends of one process exclude each other as well, and the kernel releases the lock
// of a process that dies.

#include <asyncstate/backend/errors.hpp>
#include <asyncstate/backend/rocksdb_checkpoint.hpp>

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <filesystem>
#include <string>

namespace asyncstate::detail {

class PathLock {
 public:
  // Throws BackendError naming `path` when another backend holds it.
  explicit PathLock(const std::filesystem::path& path) : file_(lockFileOf(path)), fd_(openLockFile(file_)) {
    int locked = 0;
    do {
      locked = ::flock(fd_.get(), LOCK_EX | LOCK_NB);
    } while (locked != 0 && errno == EINTR);
    if (locked != 0 && errno == EWOULDBLOCK) {
      throw BackendError(path.string() + " is in use by another backend (" + file_.string() +
                         " is locked); nothing was changed");
    }
    if (locked != 0) throwFileError("locking", file_, errno);
  }

  static std::filesystem::path lockFileOf(const std::filesystem::path& path) {
    // "<db>/" names the same database as "<db>".
    const std::filesystem::path database = path.has_filename() ? path : path.parent_path();
    return database.parent_path() / (database.filename().string() + ".lock");
  }

 private:
  static FileDescriptor openLockFile(const std::filesystem::path& file) {
    // As the open would: a database may be asked for in a directory that does not exist yet.
    if (!file.parent_path().empty()) std::filesystem::create_directories(file.parent_path());
    return openFile(file, O_RDWR | O_CREAT | O_CLOEXEC, "creating the lock file");
  }

  std::filesystem::path file_;
  FileDescriptor fd_;
};

}  // namespace asyncstate::detail
