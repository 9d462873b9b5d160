// A RocksDB directory survives a process killed at any point of state registration.
// Each round starts tests/backends/rocksdb_register_child.cpp on the same database,
// lets it register states for a random time, SIGKILLs it and reopens the database here.

#include "../support/piped_child.hpp"
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
    PipedChild child({ASYNCSTATE_REGISTER_CHILD, path.string(), "r" + std::to_string(round)});
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
