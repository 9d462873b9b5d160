// Child process of RocksDbCrash.SurvivesAKillAtAnyPointOfStateRegistration: opens the
// database given as argv[1], prints "ready", then registers states "<argv[2]>-<n>"
// (kinds cycling through all five), writes one value to each, and prints every
// registered name once its write returned, until it is killed.

#include <asyncstate/backend/rocksdb.hpp>

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace {

class FailOnError final : public asyncstate::CompletionSink {
 public:
  void complete(std::uint64_t, asyncstate::StateResult) override {}
  void fail(std::uint64_t, std::exception_ptr error) override { std::rethrow_exception(error); }
};

void say(const std::string& line) {
  const std::string text = line + "\n";
  if (::write(STDOUT_FILENO, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::_Exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  try {
    asyncstate::RocksDbBackend db(asyncstate::RocksDbOptions{argv[1]});
    say("ready");
    FailOnError sink;
    for (int n = 0;; ++n) {
      const std::string name = std::string(argv[2]) + "-" + std::to_string(n);
      const auto kind = static_cast<asyncstate::StateKind>(1 + n % 5);
      asyncstate::StateRequest write;
      write.type = kind == asyncstate::StateKind::List ? asyncstate::RequestType::Append : asyncstate::RequestType::Put;
      write.stateId = db.registerState(name, kind);
      write.key = "k";
      write.value = name;
      db.executeBatch({write}, sink);
      say(name);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
