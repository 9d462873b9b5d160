// One suite, every backend: the StateBackend contract (memory.hpp is the reference)
// checked against every configuration in backend_factories.hpp.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <asyncstate/lightweight_checkpoint.hpp>
#include <asyncstate/state.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>

namespace asyncstate::test {
namespace {

class BackendSuite : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    stack_ = GetParam().make();
    value_ = backend().registerState("value", StateKind::Value);
    list_ = backend().registerState("list", StateKind::List);
    map_ = backend().registerState("map", StateKind::Map);
  }
  StateBackend& backend() { return stack_->backend(); }

  std::unique_ptr<BackendStack> stack_;
  std::uint32_t value_ = 0, list_ = 0, map_ = 0;
};

TEST_P(BackendSuite, RegisterStateIsIdempotentAndRejectsAnotherKind) {
  EXPECT_EQ(backend().registerState("value", StateKind::Value), value_);
  EXPECT_EQ(backend().registerState("map", StateKind::Map), map_);
  EXPECT_NE(value_, map_);
  EXPECT_THROW(backend().registerState("value", StateKind::Map), std::invalid_argument);
}

TEST_P(BackendSuite, ARejectedRegistrationChangesNothing) {
  run(backend(), {put(value_, "k", "v"), putEntry(map_, "k", "u", "w")});
  for (StateKind other : {StateKind::List, StateKind::Map, StateKind::Reducing, StateKind::Aggregating}) {
    try {
      backend().registerState("value", other);
      ADD_FAILURE() << "registering 'value' as " << toString(other) << " was accepted";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("'value'"), std::string::npos) << what;
      EXPECT_NE(what.find(toString(StateKind::Value)), std::string::npos) << what;
      EXPECT_NE(what.find(toString(other)), std::string::npos) << what;
    }
  }
  EXPECT_EQ(backend().registerState("value", StateKind::Value), value_);
  const std::uint32_t next = backend().registerState("next", StateKind::Value);
  EXPECT_NE(next, value_);
  EXPECT_NE(next, list_);
  EXPECT_NE(next, map_);
  auto r = run(backend(), {get(value_, "k"), get(map_, "k", "u"), get(next, "k")});
  EXPECT_EQ(shown(r[0]), "v");
  EXPECT_EQ(shown(r[1]), "w");
  EXPECT_EQ(shown(r[2]), "<absent>");
}

// A request naming an id registerState never returned fails on its own, with an error
// naming the id; the rest of its batch runs.
TEST_P(BackendSuite, AnUnknownStateIdFailsOnlyItsRequest) {
  const std::uint32_t unknown = std::max({value_, list_, map_}) + 1000;
  auto r = run(backend(), {put(value_, "k", "before"), put(unknown, "k", "x"), get(unknown, "k"),
                           scan(unknown, "k", 10), get(value_, "k"), put(value_, "k", "after")});
  EXPECT_TRUE(r[0].ok) << r[0].error;
  for (int i : {1, 2, 3}) {
    EXPECT_FALSE(r[i].ok) << "request " << i;
    EXPECT_NE(r[i].error.find("unknown state id " + std::to_string(unknown)), std::string::npos) << r[i].error;
  }
  EXPECT_EQ(shown(r[4]), "before");
  EXPECT_TRUE(r[5].ok) << r[5].error;
  EXPECT_EQ(shown(run(backend(), {get(value_, "k")})[0]), "after");
}

TEST_P(BackendSuite, ValuePutGetDelete) {
  auto r = run(backend(), {get(value_, "k"), put(value_, "k", "v1"), get(value_, "k")});
  EXPECT_EQ(shown(r[0]), "<absent>");
  EXPECT_TRUE(r[1].ok);
  EXPECT_EQ(shown(r[2]), "v1");
  r = run(backend(), {put(value_, "k", "v2"), get(value_, "k"), del(value_, "k"), get(value_, "k")});
  EXPECT_EQ(shown(r[1]), "v2");
  EXPECT_EQ(shown(r[3]), "<absent>");
  EXPECT_EQ(shown(run(backend(), {get(value_, "k")})[0]), "<absent>");
}

TEST_P(BackendSuite, BinaryKeysAndValuesAreKeptExactly) {
  const std::string key("\0\xff{x}:y\n", 8);
  const std::string value("\0\x01\xfe\xff", 4);
  run(backend(), {put(value_, key, value), put(value_, std::string("\0", 1), "zero")});
  auto r = run(backend(), {get(value_, key), get(value_, std::string("\0", 1)), get(value_, "")});
  EXPECT_EQ(shown(r[0]), value);
  EXPECT_EQ(shown(r[1]), "zero");
  EXPECT_EQ(shown(r[2]), "<absent>");
}

TEST_P(BackendSuite, ListAppendConcatenatesInOrder) {
  auto r =
      run(backend(), {append(list_, "k", "a"), append(list_, "k", "bc"), get(list_, "k"), append(list_, "k", "d")});
  EXPECT_EQ(shown(r[2]), "abc");
  r = run(backend(), {get(list_, "k"), put(list_, "k", "x"), append(list_, "k", "y"), get(list_, "k"),
                      clear(list_, "k"), get(list_, "k"), append(list_, "k", "z"), get(list_, "k")});
  EXPECT_EQ(shown(r[0]), "abcd");
  EXPECT_EQ(shown(r[3]), "xy");
  EXPECT_EQ(shown(r[5]), "<absent>");
  EXPECT_EQ(shown(r[7]), "z");
}

TEST_P(BackendSuite, MapEntriesAreIndependentPerKey) {
  run(backend(), {putEntry(map_, "a", "x", "1"), putEntry(map_, "a", "y", "2"), putEntry(map_, "b", "x", "3")});
  auto r = run(backend(), {get(map_, "a", "x"), get(map_, "a", "y"), get(map_, "b", "x"), get(map_, "b", "y"),
                           del(map_, "a", "x"), get(map_, "a", "x"), get(map_, "a", "y")});
  EXPECT_EQ(shown(r[0]), "1");
  EXPECT_EQ(shown(r[1]), "2");
  EXPECT_EQ(shown(r[2]), "3");
  EXPECT_EQ(shown(r[3]), "<absent>");
  EXPECT_EQ(shown(r[5]), "<absent>");
  EXPECT_EQ(shown(r[6]), "2");
}

TEST_P(BackendSuite, ScanReturnsAscendingUserKeysInChunks) {
  // Keys chosen so that a prefix-colliding layout or a signed-char comparison would
  // misorder or mix them: "" < "\0" < "a" < "a\0" < "ab" < "\x7f" < "\x80" < "\xff".
  std::vector<std::string> userKeys{"", std::string("\0", 1), "a", std::string("a\0", 2), "ab", "\x7f", "\x80", "\xff"};
  for (int i = 0; i < 30; ++i) userKeys.push_back("k" + std::to_string(100 + i));
  std::vector<std::string> shuffled = userKeys;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(3));
  std::vector<StateRequest> writes;
  for (const std::string& uk : shuffled) writes.push_back(putEntry(map_, "m", uk, "v" + uk));
  // A neighbouring key whose encoding starts with "m" must not leak into the scan.
  writes.push_back(putEntry(map_, "m2", "zz", "other"));
  writes.push_back(putEntry(map_, std::string("m\0", 2), "zz", "other"));
  run(backend(), std::move(writes));

  std::sort(userKeys.begin(), userKeys.end());
  for (std::uint32_t chunk : {1u, 7u, 38u, 100u}) {
    auto all = scanAll(backend(), map_, "m", chunk);
    ASSERT_EQ(all.size(), userKeys.size()) << "chunk " << chunk;
    for (std::size_t i = 0; i < all.size(); ++i) {
      EXPECT_EQ(all[i].first, userKeys[i]) << "chunk " << chunk << " position " << i;
      EXPECT_EQ(all[i].second, "v" + userKeys[i]);
    }
  }
  auto first = run(backend(), {scan(map_, "m", 38)})[0];
  EXPECT_EQ(first.result.entries.size(), 38u);
  EXPECT_FALSE(first.result.more);
  auto none = run(backend(), {scan(map_, "nothing", 10)})[0];
  EXPECT_TRUE(none.ok);
  EXPECT_TRUE(none.result.entries.empty());
  EXPECT_FALSE(none.result.more);
}

TEST_P(BackendSuite, ScanCursorSurvivesConcurrentInsertions) {
  run(backend(), {putEntry(map_, "m", "b", "1"), putEntry(map_, "m", "d", "2"), putEntry(map_, "m", "f", "3")});
  auto first = run(backend(), {scan(map_, "m", 2)})[0];
  ASSERT_EQ(first.result.entries.size(), 2u);
  EXPECT_TRUE(first.result.more);
  // Entries added before the cursor are skipped; after it, they are seen.
  run(backend(), {putEntry(map_, "m", "a", "0"), putEntry(map_, "m", "e", "9")});
  auto rest = run(backend(), {scan(map_, "m", 10, first.result.nextCursor)})[0];
  ASSERT_EQ(rest.result.entries.size(), 2u);
  EXPECT_EQ(rest.result.entries[0].first, "e");
  EXPECT_EQ(rest.result.entries[1].first, "f");
  EXPECT_FALSE(rest.result.more);
}

// The last chunk answers with the end cursor, distinct from the start; a scan from the
// end returns nothing, even after new entries.
TEST_P(BackendSuite, ScanEndsAtTheEndCursor) {
  run(backend(), {putEntry(map_, "m", "", "empty"), putEntry(map_, "m", "a", "1")});
  auto first = run(backend(), {scan(map_, "m", 1)})[0];
  ASSERT_EQ(first.result.entries.size(), 1u);
  EXPECT_EQ(first.result.entries[0].first, "");
  EXPECT_TRUE(first.result.more);
  EXPECT_EQ(first.result.nextCursor, ScanCursor::after(""));
  EXPECT_NE(first.result.nextCursor, ScanCursor::start()) << "the empty user key is not the start";
  auto last = run(backend(), {scan(map_, "m", 1, first.result.nextCursor)})[0];
  ASSERT_EQ(last.result.entries.size(), 1u);
  EXPECT_EQ(last.result.entries[0].first, "a");
  EXPECT_FALSE(last.result.more);
  EXPECT_TRUE(last.result.nextCursor.atEnd());
  run(backend(), {putEntry(map_, "m", "b", "2")});
  auto past = run(backend(), {scan(map_, "m", 10, last.result.nextCursor)})[0];
  EXPECT_TRUE(past.ok) << past.error;
  EXPECT_TRUE(past.result.entries.empty());
  EXPECT_FALSE(past.result.more);
  EXPECT_TRUE(past.result.nextCursor.atEnd());
  auto none = run(backend(), {scan(map_, "nothing", 10)})[0];
  EXPECT_TRUE(none.result.nextCursor.atEnd());
}

// A chunk of zero entries could never move the cursor: an iteration would never end.
TEST_P(BackendSuite, AScanWithLimitZeroFails) {
  run(backend(), {putEntry(map_, "m", "a", "1")});
  auto r = run(backend(), {scan(map_, "m", 0), get(map_, "m", "a")});
  EXPECT_FALSE(r[0].ok);
  EXPECT_NE(r[0].error.find("limit 0"), std::string::npos) << r[0].error;
  EXPECT_EQ(shown(r[1]), "1");
}

TEST_P(BackendSuite, ClearRemovesAWholeMapOnlyForItsKey) {
  run(backend(), {putEntry(map_, "a", "1", "x"), putEntry(map_, "a", "2", "y"), putEntry(map_, "b", "1", "z"),
                  put(value_, "a", "v")});
  auto r = run(backend(),
               {clear(map_, "a"), get(map_, "a", "1"), scan(map_, "a", 10), get(map_, "b", "1"), get(value_, "a")});
  EXPECT_EQ(shown(r[1]), "<absent>");
  EXPECT_TRUE(r[2].result.entries.empty());
  EXPECT_EQ(shown(r[3]), "z");
  EXPECT_EQ(shown(r[4]), "v");
  r = run(backend(), {clear(value_, "a"), get(value_, "a")});
  EXPECT_EQ(shown(r[1]), "<absent>");
}

TEST_P(BackendSuite, RequestsOfOneKeyTakeEffectInBatchOrder) {
  run(backend(), {put(value_, "k", "old"), putEntry(map_, "k", "u", "old")});
  auto r = run(backend(), {
                              get(value_, "k"),                  // 0: old
                              put(value_, "k", "new"),           // 1
                              get(value_, "k"),                  // 2: new
                              get(value_, "other"),              // 3: absent
                              del(value_, "k"),                  // 4
                              get(value_, "k"),                  // 5: absent
                              put(value_, "k", "again"),         // 6
                              scan(map_, "k", 10),               // 7: [u=old]
                              putEntry(map_, "k", "v", "new"),   // 8
                              scan(map_, "k", 10),               // 9: [u=old, v=new]
                              clear(map_, "k"),                  // 10
                              scan(map_, "k", 10),               // 11: []
                              putEntry(map_, "k", "w", "last"),  // 12
                              get(map_, "k", "w"),               // 13: last
                              get(value_, "k"),                  // 14: again
                          });
  for (const Outcome& o : r) EXPECT_TRUE(o.ok) << o.error;
  EXPECT_EQ(shown(r[0]), "old");
  EXPECT_EQ(shown(r[2]), "new");
  EXPECT_EQ(shown(r[3]), "<absent>");
  EXPECT_EQ(shown(r[5]), "<absent>");
  EXPECT_EQ(r[7].result.entries.size(), 1u);
  ASSERT_EQ(r[9].result.entries.size(), 2u);
  EXPECT_EQ(r[9].result.entries[1].second, "new");
  EXPECT_TRUE(r[11].result.entries.empty());
  EXPECT_EQ(shown(r[13]), "last");
  EXPECT_EQ(shown(r[14]), "again");
}

TEST_P(BackendSuite, ManyKeysAcrossKeyGroupsInOneBatch) {
  std::vector<StateRequest> writes, reads;
  for (int i = 0; i < 600; ++i) {
    const std::string k = "key" + std::to_string(i);
    writes.push_back(put(value_, k, std::to_string(i * i)));
    writes.push_back(append(list_, k, "x"));
    writes.push_back(putEntry(map_, k, "n", std::to_string(i)));
    reads.push_back(get(value_, k));
    reads.push_back(get(list_, k));
    reads.push_back(get(map_, k, "n"));
  }
  run(backend(), std::move(writes));
  auto r = run(backend(), std::move(reads));
  for (int i = 0; i < 600; ++i) {
    EXPECT_EQ(shown(r[3 * i]), std::to_string(i * i));
    EXPECT_EQ(shown(r[3 * i + 1]), "x");
    EXPECT_EQ(shown(r[3 * i + 2]), std::to_string(i));
  }
}

TEST_P(BackendSuite, SnapshotAndRestoreReplaceAllContents) {
  run(backend(), {put(value_, "a", "1"), append(list_, "l", "xy"), putEntry(map_, "m", "u", "2")});
  Savepoint sp;
  backend().snapshot(sp);
  EXPECT_EQ(sp.entryCount(), 3u);
  EXPECT_EQ(sp.states().size(), 3u);

  run(backend(),
      {put(value_, "a", "changed"), put(value_, "b", "new"), clear(list_, "l"), putEntry(map_, "m", "w", "3")});
  const std::uint32_t extra = backend().registerState("extra", StateKind::Value);
  run(backend(), {put(extra, "e", "x")});

  backend().restore(Savepoint::parse(sp.serialize()));
  EXPECT_EQ(backend().registerState("value", StateKind::Value), value_) << "ids survive a restore";
  auto r = run(backend(), {get(value_, "a"), get(value_, "b"), get(list_, "l"), get(map_, "m", "u"),
                           get(map_, "m", "w"), get(extra, "e")});
  EXPECT_EQ(shown(r[0]), "1");
  EXPECT_EQ(shown(r[1]), "<absent>");
  EXPECT_EQ(shown(r[2]), "xy");
  EXPECT_EQ(shown(r[3]), "2");
  EXPECT_EQ(shown(r[4]), "<absent>");
  EXPECT_EQ(shown(r[5]), "<absent>");
}

TEST_P(BackendSuite, RestoreWithAConflictingKindChangesNothing) {
  run(backend(), {put(value_, "a", "1")});
  const std::string before = savepointBytes(backend());
  Savepoint bad;
  bad.add("value", StateKind::Map, "a", "u", "x");
  EXPECT_THROW(backend().restore(bad), std::invalid_argument);
  EXPECT_EQ(savepointBytes(backend()), before);
}

// Such a savepoint holds the runner's position and no state: restoring it as state would
// empty every state.
TEST_P(BackendSuite, RestoreRefusesALightweightCheckpointsSavepointAndChangesNothing) {
  run(backend(), {put(value_, "a", "1"), putEntry(map_, "m", "u", "2")});
  const std::string before = savepointBytes(backend());
  Savepoint positionOnly;
  positionOnly.metadata()[kLightweightCheckpointField] = encode(std::uint64_t{1});
  try {
    backend().restore(positionOnly);
    FAIL() << "restore() accepted a savepoint without state";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("lightweight checkpoint 1,"), std::string::npos) << e.what();
  }
  EXPECT_EQ(savepointBytes(backend()), before);
}

TEST_P(BackendSuite, RestoreRegistersStatesItDoesNotKnow) {
  Savepoint sp;
  sp.add("fresh", StateKind::List, "k", "", "abc");
  backend().restore(sp);
  const std::uint32_t fresh = backend().registerState("fresh", StateKind::List);
  EXPECT_EQ(shown(run(backend(), {get(fresh, "k")})[0]), "abc");
}

// Two unchained read-modify-write adds of one record both land (the states order them
// per key), whatever the backend's completion order.
TEST_P(BackendSuite, UnchainedAddsOfOneRecordBothLand) {
  ControllerOptions options;
  options.log = nullptr;
  AsyncExecutionController controller(backend(), options);
  ReducingState<long> sum(controller,
                          ReducingStateDescriptor<long>("sum", [](const long& a, const long& b) { return a + b; }));
  for (int key = 0; key < 4; ++key) {
    controller.processRecord(key, [&] {
      sum.asyncAdd(1);
      sum.asyncAdd(10);
      sum.asyncAdd(100);
    });
  }
  controller.drain();
  std::vector<long> totals;
  for (int key = 0; key < 4; ++key) {
    controller.processRecord(key, [&] {
      sum.asyncGet().thenAccept([&totals](std::optional<long> v) { totals.push_back(v.value_or(-1)); });
    });
  }
  controller.drain();
  EXPECT_EQ(totals, (std::vector<long>{111, 111, 111, 111}));
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendSuite, ::testing::ValuesIn(backendFactories()),
                         [](const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace asyncstate::test
