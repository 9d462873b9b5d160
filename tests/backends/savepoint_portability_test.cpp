// Portable savepoints: the canonical format written by one backend restores into any
// other, byte for byte; a damaged savepoint is refused before anything is replaced.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <gtest/gtest.h>

namespace asyncstate::test {
namespace {

// Values, lists, maps (binary keys, an empty user key) and a state with no entries.
void fill(StateBackend& backend) {
  const std::uint32_t value = backend.registerState("profile", StateKind::Value);
  const std::uint32_t list = backend.registerState("events", StateKind::List);
  const std::uint32_t map = backend.registerState("carts", StateKind::Map);
  backend.registerState("untouched", StateKind::Reducing);
  std::vector<StateRequest> batch;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "user" + std::to_string(i);
    batch.push_back(put(value, key, "tier" + std::to_string(i % 3)));
    batch.push_back(append(list, key, std::string("\x01\x00\x00\x00", 4) + char('a' + i % 26)));
    for (int j = 0; j < i % 4; ++j)
      batch.push_back(putEntry(map, key, "sku" + std::to_string(j), std::to_string(i * j)));
  }
  batch.push_back(put(value, std::string("\0\xff", 2), std::string("\0", 1)));
  batch.push_back(putEntry(map, "edge", "", "empty user key"));
  batch.push_back(putEntry(map, "edge", "\xff\xfe", "high bytes"));
  for (const Outcome& o : run(backend, std::move(batch))) ASSERT_TRUE(o.ok) << o.error;
}

std::unique_ptr<BackendStack> make(const std::string& name) {
  for (auto& f : backendFactories()) {
    if (f.name == name) return f.make();
  }
  throw std::runtime_error("no backend factory '" + name + "' in this build");
}

TEST(SavepointPortability, MemoryToRocksDbToRedisToMemoryIsByteIdentical) {
  std::vector<std::string> chain{"memory"};
#if ASYNCSTATE_TEST_WITH_ROCKSDB
  chain.push_back("rocksdb");
#endif
#if ASYNCSTATE_TEST_WITH_REDIS
  chain.push_back("redis");
#endif
  chain.push_back("cached_memory");
  chain.push_back("memory");

  auto first = make(chain.front());
  fill(first->backend());
  const std::string original = savepointBytes(first->backend());
  std::string bytes = original;
  for (std::size_t i = 1; i < chain.size(); ++i) {
    auto next = make(chain[i]);
    next->backend().restore(Savepoint::parse(bytes));
    bytes = savepointBytes(next->backend());
    EXPECT_EQ(bytes.size(), original.size()) << chain[i];
    EXPECT_TRUE(bytes == original) << "savepoint changed after restoring into " << chain[i];
  }
  EXPECT_EQ(Savepoint::parse(original).entryCount(), 300u + 300u + 450u + 3u);
}

class CorruptSavepoint : public ::testing::TestWithParam<BackendFactory> {};

TEST_P(CorruptSavepoint, IsRejectedAndNothingIsOverwritten) {
  auto source = make("memory");
  fill(source->backend());
  const std::string good = savepointBytes(source->backend());

  auto stack = GetParam().make();
  StateBackend& target = stack->backend();
  const std::uint32_t s = target.registerState("profile", StateKind::Value);
  run(target, {put(s, "survivor", "still here")});
  const std::string before = savepointBytes(target);

  std::vector<std::string> damaged;
  damaged.push_back(good.substr(0, good.size() / 2));  // truncated
  damaged.push_back(good.substr(0, good.size() - 1));
  damaged.push_back(good + "x");  // trailing garbage
  for (std::size_t pos : {std::size_t{3}, std::size_t{9}, good.size() / 3, good.size() - 2}) {
    std::string flipped = good;
    flipped[pos] = static_cast<char>(flipped[pos] ^ 0x20);
    damaged.push_back(flipped);
  }
  damaged.push_back("");
  for (std::size_t i = 0; i < damaged.size(); ++i) {
    EXPECT_THROW(target.restore(Savepoint::parse(damaged[i])), CorruptSavepointError) << "variant " << i;
    EXPECT_EQ(savepointBytes(target), before) << "variant " << i;
  }

  // Through a file as well: a torn write is caught the same way.
  TempDir dir;
  const auto path = dir.path() / "sp.bin";
  Savepoint::parse(good).writeFile(path);
  std::filesystem::resize_file(path, good.size() - 7);
  EXPECT_THROW(target.restore(Savepoint::readFile(path)), CorruptSavepointError);
  EXPECT_EQ(shown(run(target, {get(s, "survivor")})[0]), "still here");

  target.restore(Savepoint::parse(good));
  EXPECT_EQ(savepointBytes(target), good) << "the intact savepoint restores exactly";
}

INSTANTIATE_TEST_SUITE_P(AllBackends, CorruptSavepoint, ::testing::ValuesIn(backendFactories()),
                         [](const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace asyncstate::test
