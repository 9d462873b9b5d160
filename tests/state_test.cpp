// States through sync and async methods: the same random operation sequences must give
// identical results and identical final state, on every backend.

#include "support/backends.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

namespace asyncstate {
namespace {

struct Op {
  int kind;
  int key;
  int a;
  int b;
};

std::vector<Op> randomOps(std::uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  std::vector<Op> ops;
  for (int i = 0; i < count; ++i) {
    ops.push_back(Op{static_cast<int>(rng() % 20), static_cast<int>(rng() % 7), static_cast<int>(rng() % 11),
                     static_cast<int>(rng() % 1000)});
  }
  return ops;
}

std::string text(const std::optional<int>& v) { return v ? std::to_string(*v) : "none"; }
template <class T>
std::string text(const std::vector<T>& values) {
  std::string out = "[";
  for (const auto& v : values) {
    if constexpr (requires { v.first; }) {
      out += std::to_string(v.first) + ":" + std::to_string(v.second) + ",";
    } else {
      out += std::to_string(v) + ",";
    }
  }
  return out + "]";
}

struct States {
  explicit States(AsyncExecutionController& c)
      : value(c, ValueStateDescriptor<int>("value")),
        list(c, ListStateDescriptor<int>("list")),
        map(c, MapStateDescriptor<int, int>("map")),
        sum(c, ReducingStateDescriptor<int>("sum", [](const int& x, const int& y) { return x + y; })),
        avg(c, AggregatingStateDescriptor<int, std::pair<int, int>, int>(
                   "avg", [] { return std::pair<int, int>{0, 0}; },
                   [](const int& x, std::pair<int, int> acc) {
                     return std::pair<int, int>{acc.first + x, acc.second + 1};
                   },
                   [](const std::pair<int, int>& acc) { return acc.first / acc.second; })) {}
  ValueState<int> value;
  ListState<int> list;
  MapState<int, int> map;
  ReducingState<int> sum;
  AggregatingState<int, std::pair<int, int>, int> avg;
};

std::string runSync(States& s, const Op& op) {
  switch (op.kind) {
    case 0: return text(s.value.value());
    case 1: s.value.update(op.b); return "ok";
    case 2: s.value.clear(); return "ok";
    case 3: return text(s.list.get());
    case 4: s.list.add(op.b); return "ok";
    case 5: s.list.addAll({op.a, op.b}); return "ok";
    case 6: s.list.update({op.b}); return "ok";
    case 7: s.list.clear(); return "ok";
    case 8: return text(s.map.get(op.a));
    case 9: s.map.put(op.a, op.b); return "ok";
    case 10: s.map.remove(op.a); return "ok";
    case 11: return s.map.contains(op.a) ? "yes" : "no";
    case 12: return text(s.map.entries());
    case 13: return text(s.map.keys()) + text(s.map.values());
    case 14: return s.map.isEmpty() ? "empty" : "nonempty";
    case 15: s.map.putAll(std::map<int, int>{{op.a, op.b}, {op.a + 11, op.b + 1}}); return "ok";
    case 16: s.sum.add(op.b); return text(s.sum.get());
    case 17: s.avg.add(op.b); return text(s.avg.get());
    case 18: s.map.clear(); return "ok";
    default:
      s.sum.clear();
      s.avg.clear();
      return "ok";
  }
}

StateFuture<std::string> runAsync(States& s, const Op& op) {
  auto ok = [] { return std::string("ok"); };
  auto show = [](auto v) { return text(v); };
  switch (op.kind) {
    case 0: return s.value.asyncValue().thenApply(show);
    case 1: return s.value.asyncUpdate(op.b).thenApply(ok);
    case 2: return s.value.asyncClear().thenApply(ok);
    case 3: return toVector(s.list.asyncGet()).thenApply(show);
    case 4: return s.list.asyncAdd(op.b).thenApply(ok);
    case 5: return s.list.asyncAddAll({op.a, op.b}).thenApply(ok);
    case 6: return s.list.asyncUpdate({op.b}).thenApply(ok);
    case 7: return s.list.asyncClear().thenApply(ok);
    case 8: return s.map.asyncGet(op.a).thenApply(show);
    case 9: return s.map.asyncPut(op.a, op.b).thenApply(ok);
    case 10: return s.map.asyncRemove(op.a).thenApply(ok);
    case 11: return s.map.asyncContains(op.a).thenApply([](bool c) { return std::string(c ? "yes" : "no"); });
    case 12: return toVector(s.map.asyncEntries()).thenApply(show);
    case 13:
      return toVector(s.map.asyncKeys()).thenCombine(toVector(s.map.asyncValues()), [](auto keys, auto values) {
        return text(keys) + text(values);
      });
    case 14: return s.map.asyncIsEmpty().thenApply([](bool e) { return std::string(e ? "empty" : "nonempty"); });
    case 15: return s.map.asyncPutAll(std::map<int, int>{{op.a, op.b}, {op.a + 11, op.b + 1}}).thenApply(ok);
    case 16: return s.sum.asyncAdd(op.b).thenCompose([&s] { return s.sum.asyncGet(); }).thenApply(show);
    case 17: return s.avg.asyncAdd(op.b).thenCompose([&s] { return s.avg.asyncGet(); }).thenApply(show);
    case 18: return s.map.asyncClear().thenApply(ok);
    default: return s.sum.asyncClear().thenCompose([&s] { return s.avg.asyncClear(); }).thenApply(ok);
  }
}

class StateTest : public ::testing::TestWithParam<testing::BackendFactory> {
 protected:
  ControllerOptions options() {
    ControllerOptions o;
    o.log = nullptr;
    o.batchSize = 16;
    o.iteratorChunkSize = 3;  // forces multi-chunk iteration
    o.inFlightLimit = 64;
    return o;
  }
};

TEST_P(StateTest, SyncAndAsyncMethodsGiveIdenticalResultsAndState) {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    const std::vector<Op> ops = randomOps(seed, 600);
    std::vector<std::string> syncResults(ops.size()), asyncResults(ops.size());
    Savepoint syncState, asyncState;
    {
      auto backend = GetParam().make();
      AsyncExecutionController controller(*backend, options());
      States states(controller);
      for (std::size_t i = 0; i < ops.size(); ++i) {
        controller.processRecord(ops[i].key, [&, i] { syncResults[i] = runSync(states, ops[i]); });
      }
      controller.drain();
      backend->snapshot(syncState);
    }
    {
      auto backend = GetParam().make();
      AsyncExecutionController controller(*backend, options());
      States states(controller);
      for (std::size_t i = 0; i < ops.size(); ++i) {
        controller.processRecord(ops[i].key, [&, i] {
          (void)runAsync(states, ops[i]).thenAccept([&asyncResults, i](std::string r) {
            asyncResults[i] = std::move(r);
          });
        });
      }
      controller.drain();
      EXPECT_EQ(controller.poolStats().live, 0u);
      backend->snapshot(asyncState);
    }
    for (std::size_t i = 0; i < ops.size(); ++i) {
      ASSERT_EQ(syncResults[i], asyncResults[i]) << "seed " << seed << " op #" << i << " kind " << ops[i].kind;
    }
    EXPECT_EQ(syncState.serialize(), asyncState.serialize()) << "seed " << seed;
    EXPECT_GT(syncState.entryCount(), 0u);
  }
}

TEST_P(StateTest, StatesAreScopedToTheCurrentKey) {
  auto backend = GetParam().make();
  AsyncExecutionController controller(*backend, options());
  ValueState<std::string> name(controller, ValueStateDescriptor<std::string>("name"));
  for (int k = 0; k < 20; ++k) controller.processRecord(k, [&, k] { (void)name.asyncUpdate("v" + std::to_string(k)); });
  std::map<int, std::string> seen;
  for (int k = 0; k < 20; ++k) {
    controller.processRecord(k, [&, k] {
      (void)name.asyncValue().thenAccept([&seen, k](std::optional<std::string> v) { seen[k] = v.value_or("?"); });
    });
  }
  controller.drain();
  ASSERT_EQ(seen.size(), 20u);
  for (const auto& [k, v] : seen) EXPECT_EQ(v, "v" + std::to_string(k));
}

TEST_P(StateTest, IteratorLoadsLazilyInChunks) {
  auto backend = GetParam().make();
  ControllerOptions o = options();
  o.iteratorChunkSize = 4;
  AsyncExecutionController controller(*backend, o);
  MapState<int, int> map(controller, MapStateDescriptor<int, int>("m"));
  controller.processRecord(1, [&] {
    for (int i = 0; i < 10; ++i) (void)map.asyncPut(i, i * i);
  });
  controller.drain();
  std::vector<std::size_t> chunkSizes;
  int visited = 0;
  const std::uint64_t before = controller.metrics().requestsSent;
  controller.processRecord(1, [&] {
    (void)map.asyncEntries().thenCompose([&](StateIterator<std::pair<int, int>> it) {
      chunkSizes.push_back(it.currentChunk().size());
      EXPECT_TRUE(it.hasMoreChunks());
      return std::move(it).onNext([&](std::pair<int, int>& e) {
        EXPECT_EQ(e.second, e.first * e.first);
        ++visited;
      });
    });
  });
  controller.drain();
  EXPECT_EQ(visited, 10);
  EXPECT_EQ(chunkSizes, std::vector<std::size_t>{4});
  EXPECT_EQ(controller.metrics().requestsSent - before, 3u);  // chunks of 4 + 4 + 2
}

// Two adds of one record that are not chained: each must read what the other wrote.
TEST_P(StateTest, UnchainedAddsOfOneRecordBothLand) {
  auto backend = GetParam().make();
  AsyncExecutionController controller(*backend, options());
  States s(controller);
  for (int key = 0; key < 3; ++key) {
    controller.processRecord(key, [&] {
      s.sum.asyncAdd(1);
      s.sum.asyncAdd(2);
      s.avg.asyncAdd(10);
      s.avg.asyncAdd(20);
      s.avg.asyncAdd(60);
    });
  }
  controller.processRecord(1, [&] { s.sum.asyncAdd(4); });
  controller.drain();
  std::map<int, std::string> sums, averages;
  for (int key = 0; key < 3; ++key) {
    controller.processRecord(key, [&, key] {
      s.sum.asyncGet().thenAccept([&sums, key](std::optional<int> v) { sums[key] = text(v); });
      s.avg.asyncGet().thenAccept([&averages, key](std::optional<int> v) { averages[key] = text(v); });
    });
  }
  controller.drain();
  EXPECT_EQ(sums, (std::map<int, std::string>{{0, "3"}, {1, "7"}, {2, "3"}}));
  EXPECT_EQ(averages, (std::map<int, std::string>{{0, "30"}, {1, "30"}, {2, "30"}}));
  EXPECT_EQ(controller.poolStats().live, 0u);
}

TEST_P(StateTest, StateAccessOutsideARecordIsAClearError) {
  auto backend = GetParam().make();
  AsyncExecutionController controller(*backend, options());
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  try {
    (void)v.asyncValue();
    FAIL() << "expected FutureMisuseError";
  } catch (const FutureMisuseError& e) {
    EXPECT_NE(std::string(e.what()).find("outside of a record"), std::string::npos);
  }
}

TEST_P(StateTest, CorruptStoredValueFailsTheFutureNamingStateAndKey) {
  auto backend = GetParam().make();
  AsyncExecutionController controller(*backend, options());
  ValueState<std::string> asText(controller, ValueStateDescriptor<std::string>("shared"));
  controller.processRecord(5, [&] { (void)asText.asyncUpdate("x"); });
  controller.drain();
  // Reading the same bytes as a wider type: the decoder rejects trailing bytes.
  ValueState<std::int64_t> asNumber(controller, ValueStateDescriptor<std::int64_t>("shared"));
  std::string message;
  controller.processRecord(5, [&] {
    (void)asNumber.asyncValue().handle([&](std::optional<std::optional<std::int64_t>>, const AsyncError* e) {
      if (e != nullptr) message = e->message();
    });
  });
  controller.drain();
  EXPECT_NE(message.find("shared"), std::string::npos) << message;
  EXPECT_NE(message.find("'5'"), std::string::npos) << message;
  EXPECT_NE(message.find("asyncValue"), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(Backends, StateTest, ::testing::ValuesIn(testing::allBackends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace asyncstate
