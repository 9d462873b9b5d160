// StateRegistry (the table of registered states every backend keeps) and ScanCursor
// (where a Scan resumes), on their own; backend_suite_test holds every backend to the
// same rules through them.

#include <asyncstate/state_registry.hpp>

#include <gtest/gtest.h>

#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate {
namespace {

std::string messageOf(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  }
}

class RecordingSink final : public CompletionSink {
 public:
  void complete(std::uint64_t ticket, StateResult) override { completed.push_back(ticket); }
  void fail(std::uint64_t ticket, std::exception_ptr error) override { failed.emplace(ticket, std::move(error)); }
  std::vector<std::uint64_t> completed;
  std::map<std::uint64_t, std::exception_ptr> failed;
};

StateRequest request(RequestType type, std::uint32_t stateId, std::uint64_t ticket, std::uint32_t limit = 0) {
  StateRequest r;
  r.type = type;
  r.stateId = stateId;
  r.ticket = ticket;
  r.limit = limit;
  return r;
}

TEST(StateRegistry, HandsOutDenseIdsInRegistrationOrderAndIsIdempotent) {
  StateRegistry<> registry("test");
  EXPECT_TRUE(registry.empty());
  EXPECT_EQ(registry.add("a", StateKind::Value), 0u);
  EXPECT_EQ(registry.add("b", StateKind::Map), 1u);
  EXPECT_EQ(registry.add("a", StateKind::Value), 0u);
  EXPECT_EQ(registry.add("c", StateKind::List), 2u);
  EXPECT_EQ(registry.size(), 3u);
  std::vector<std::string> names;
  for (const auto& state : registry) names.push_back(state.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(registry.at(1).kind, StateKind::Map);
  EXPECT_EQ(registry.idOf("c"), 2u);
  EXPECT_EQ(registry.idOf("missing"), std::nullopt);
  EXPECT_EQ(registry.find("missing"), nullptr);
  EXPECT_EQ(registry.existing("b", StateKind::Map), 1u);
  EXPECT_EQ(registry.existing("missing", StateKind::Map), std::nullopt);
}

TEST(StateRegistry, TheSameNameWithAnotherKindIsAClearErrorAndChangesNothing) {
  StateRegistry<> registry("rocksdb /db");
  registry.add("orders", StateKind::Map);
  try {
    registry.add("orders", StateKind::Value);
    FAIL() << "accepted another kind";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "rocksdb /db: state 'orders' is already registered as map, not value");
  }
  EXPECT_THROW((void)registry.existing("orders", StateKind::List), std::invalid_argument);
  EXPECT_EQ(registry.size(), 1u);
  EXPECT_EQ(registry.at(0).kind, StateKind::Map);
}

TEST(StateRegistry, KeepsEachStatesDataAndCreatesItOnlyForNewNames) {
  StateRegistry<int> registry("test");
  int created = 0;
  auto create = [&](const std::string& name, StateKind) {
    ++created;
    return static_cast<int>(name.size());
  };
  EXPECT_EQ(registry.add("abc", StateKind::Value, create), 0u);
  EXPECT_EQ(registry.add("abc", StateKind::Value, create), 0u);
  EXPECT_EQ(registry.add("de", StateKind::Value, create), 1u);
  EXPECT_EQ(created, 2);
  EXPECT_EQ(registry.at(0).data, 3);
  EXPECT_EQ(registry.at(1).data, 2);
  registry.at(1).data = 7;
  EXPECT_EQ(registry.find("de")->data, 7);
}

TEST(StateRegistry, ARegistrationWhoseCreationFailsRegistersNothing) {
  StateRegistry<int> registry("test");
  EXPECT_THROW(registry.add("a", StateKind::Value,
                            [](const std::string&, StateKind) -> int { throw std::runtime_error("disk full"); }),
               std::runtime_error);
  EXPECT_TRUE(registry.empty());
  EXPECT_EQ(registry.add("a", StateKind::Map, [](const std::string&, StateKind) { return 1; }), 0u);
}

TEST(StateRegistry, AnUnknownIdIsAnUnknownStateErrorNamingIt) {
  StateRegistry<> registry("memory");
  registry.add("a", StateKind::Value);
  EXPECT_TRUE(registry.contains(0));
  EXPECT_FALSE(registry.contains(1));
  try {
    (void)registry.at(5);
    FAIL() << "no error";
  } catch (const UnknownStateError& e) {
    EXPECT_STREQ(e.what(), "memory: unknown state id 5 (1 states registered; ids come from registerState)");
  }
  EXPECT_EQ(registry.nameOf(0), "a");
  EXPECT_EQ(registry.nameOf(5), "#5 (not registered)");
}

TEST(StateRegistry, RejectInvalidFailsUnknownIdsAndEmptyScansAndKeepsTheRestInOrder) {
  StateRegistry<> registry("redis job 'j'");
  registry.add("v", StateKind::Value);
  registry.add("m", StateKind::Map);
  std::vector<StateRequest> batch{request(RequestType::Put, 0, 1),      request(RequestType::Get, 9, 2),
                                  request(RequestType::Scan, 1, 3, 10), request(RequestType::Scan, 1, 4, 0),
                                  request(RequestType::Get, 0, 5),      request(RequestType::Delete, 2, 6)};
  RecordingSink sink;
  EXPECT_EQ(registry.rejectInvalid(batch, sink), 3u);
  std::vector<std::uint64_t> kept;
  for (const StateRequest& r : batch) kept.push_back(r.ticket);
  EXPECT_EQ(kept, (std::vector<std::uint64_t>{1, 3, 5}));
  ASSERT_EQ(sink.failed.size(), 3u);
  EXPECT_TRUE(sink.completed.empty());
  EXPECT_EQ(messageOf(sink.failed.at(2)),
            "redis job 'j': get on unknown state id 9 (2 states registered; ids come from registerState)");
  EXPECT_EQ(messageOf(sink.failed.at(4)), "redis job 'j': scan of state 'm' with limit 0 can return nothing");
  EXPECT_THROW(std::rethrow_exception(sink.failed.at(6)), UnknownStateError);

  std::vector<StateRequest> valid{request(RequestType::Get, 0, 7)};
  EXPECT_EQ(registry.rejectInvalid(valid, sink), 0u);
  EXPECT_EQ(valid.size(), 1u);
}

TEST(StateRegistry, RequireKindsOfASavepointNamesTheConflict) {
  StateRegistry<> registry("memory");
  registry.add("counts", StateKind::Value);
  Savepoint compatible;
  compatible.declare("counts", StateKind::Value);
  compatible.declare("unknown", StateKind::Map);
  EXPECT_NO_THROW(registry.requireKindsOf(compatible));
  Savepoint conflicting;
  conflicting.declare("counts", StateKind::List);
  try {
    registry.requireKindsOf(conflicting);
    FAIL() << "accepted a conflicting kind";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "memory: savepoint has state 'counts' as list but it is registered as value; nothing was restored");
  }
  EXPECT_EQ(registry.size(), 1u);
}

TEST(ScanCursor, StartAfterAndEndAreDistinct) {
  const ScanCursor start;
  EXPECT_TRUE(start.atStart());
  EXPECT_FALSE(start.atEnd());
  EXPECT_EQ(start, ScanCursor::start());
  const ScanCursor afterEmpty = ScanCursor::after("");
  EXPECT_FALSE(afterEmpty.atStart()) << "the empty user key is a key, not the start";
  EXPECT_FALSE(afterEmpty.atEnd());
  EXPECT_EQ(afterEmpty.lastUserKey(), "");
  EXPECT_NE(afterEmpty, start);
  const ScanCursor end = ScanCursor::end();
  EXPECT_TRUE(end.atEnd());
  EXPECT_NE(end, start);
  EXPECT_NE(end, afterEmpty);
  EXPECT_EQ(ScanCursor::after(std::string("a\0b", 3)).lastUserKey(), std::string("a\0b", 3));
  EXPECT_NE(ScanCursor::after("a"), ScanCursor::after("b"));
  EXPECT_THROW((void)start.lastUserKey(), std::logic_error);
  EXPECT_THROW((void)end.lastUserKey(), std::logic_error);
}

TEST(ScanCursor, FinishScanResumesAfterTheLastEntryOrEnds) {
  StateResult chunk;
  chunk.entries = {{"a", "1"}, {"b", "2"}};
  chunk.finishScan(ScanCursor::start(), true);
  EXPECT_TRUE(chunk.more);
  EXPECT_EQ(chunk.nextCursor, ScanCursor::after("b"));

  StateResult last;
  last.entries = {{"c", "3"}};
  last.finishScan(ScanCursor::after("b"), false);
  EXPECT_FALSE(last.more);
  EXPECT_TRUE(last.nextCursor.atEnd());

  StateResult empty;
  empty.finishScan(ScanCursor::after("c"), false);
  EXPECT_TRUE(empty.nextCursor.atEnd());

  // No entries but more (a limit of 0): the cursor stays where it was.
  StateResult stalled;
  stalled.finishScan(ScanCursor::after("c"), true);
  EXPECT_EQ(stalled.nextCursor, ScanCursor::after("c"));
}

}  // namespace
}  // namespace asyncstate
