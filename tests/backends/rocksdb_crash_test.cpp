// A RocksDB directory survives a process killed at any point of state registration.
// Each round starts tests/backends/rocksdb_register_child.cpp on the same database,
// lets it register states for a random time, SIGKILLs it and reopens the database here.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <asyncstate/backend/rocksdb.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace asyncstate::test {
namespace {

// A child process whose stdout is a pipe read line by line.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0) kill();
    ::close(out_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next line, or "" at end of output.
  std::string readLine() {
    std::string line;
    char c;
    while (::read(out_, &c, 1) == 1) {
      if (c == '\n') return line;
      line += c;
    }
    return line;
  }

  // Kills the child and returns every complete line it printed.
  std::vector<std::string> kill() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    std::vector<std::string> lines;
    std::string partial;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out_, buf, sizeof buf)) > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == '\n') {
          lines.push_back(std::exchange(partial, {}));
        } else {
          partial += buf[i];
        }
      }
    }
    return lines;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

TEST(RocksDbCrash, SurvivesAKillAtAnyPointOfStateRegistration) {
  TempDir dir;
  const std::filesystem::path path = dir.path() / "db";
  std::mt19937 random(std::random_device{}());
  // The kill lands after a random number of completed registrations plus a random part
  // of about one more (a registration takes tens of milliseconds here), so rounds hit
  // every step of it whatever the machine's speed.
  std::uniform_int_distribution<int> completedBeforeKill(0, 2);
  std::uniform_int_distribution<int> killAfterMicros(0, 60000);
  std::vector<std::string> registered;
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    Child child({ASYNCSTATE_REGISTER_CHILD, path.string(), "r" + std::to_string(round)});
    ASSERT_EQ(child.readLine(), "ready") << "round " << round << ": the child could not open the database";
    for (int n = completedBeforeKill(random); n > 0; --n) {
      const std::string name = child.readLine();
      ASSERT_FALSE(name.empty()) << "round " << round << ": the child stopped registering";
      registered.push_back(name);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(killAfterMicros(random)));
    const std::vector<std::string> lines = child.kill();
    registered.insert(registered.end(), lines.begin(), lines.end());

    std::unique_ptr<RocksDbBackend> db;
    ASSERT_NO_THROW(db = std::make_unique<RocksDbBackend>(RocksDbOptions{path}))
        << "round " << round << ": the database does not open after the kill";
    for (std::size_t n = 0; n < registered.size(); ++n) {
      const std::string& name = registered[n];
      const auto kind = static_cast<StateKind>(1 + std::stoi(name.substr(name.find('-') + 1)) % 5);
      const std::uint32_t id = db->registerState(name, kind);
      EXPECT_EQ(shown(run(*db, {get(id, "k")})[0]), name) << "state " << name << " lost its value";
      const auto otherKind = static_cast<StateKind>(1 + static_cast<int>(kind) % 5);
      EXPECT_THROW(db->registerState(name, otherKind), std::invalid_argument) << "state " << name << " lost its kind";
    }
  }
  EXPECT_GT(registered.size(), 0u) << "no child registered anything before it was killed";
}

}  // namespace
}  // namespace asyncstate::test
