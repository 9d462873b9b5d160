// Restore is exact at every checkpoint position: a job with periodic watermarks, timers
// (some registered from continuations) and late-data handling is checkpointed at random
// positions, killed at random positions, restored into a fresh runner on a fresh backend
// (several times per run), and must give exactly the output of an uninterrupted run.

#include "backend_factories.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <compare>
#include <cstdint>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace asyncstate::test {
namespace {

constexpr int kShops = 40;
constexpr int kItems = 30;
constexpr std::int64_t kWindow = 2000;
constexpr int kTop = 3;

struct Sale {
  int shop;
  int item;
  std::int64_t amount;
  std::int64_t time;
};

// rank 1..kTop: the window's best items; rank 0: a late sale, with the shop's late count.
struct Row {
  int shop;
  std::int64_t window;
  int rank;
  int item;
  std::int64_t value;
  friend auto operator<=>(const Row&, const Row&) = default;
};

std::ostream& operator<<(std::ostream& os, const Row& r) {
  return os << "{shop " << r.shop << " window " << r.window << " rank " << r.rank << " item " << r.item << " value "
            << r.value << "}";
}

// Per shop and tumbling window: item totals, and the top kTop items when the window's
// timer fires. A sale at or behind the current watermark is late: counted and reported.
class TopItems final : public KeyedProcessFunction<int, Sale, Row> {
 public:
  void open(RuntimeContext& ctx) override {
    totals_ = &ctx.getMapState(MapStateDescriptor<std::int64_t, std::int64_t>("totals"));
    late_ = &ctx.getState(ValueStateDescriptor<std::int64_t>("late"));
  }

  void processElement(const Sale& sale, Context& ctx, Collector<Row>& out) override {
    const std::int64_t window = sale.time / kWindow;
    if (sale.time <= ctx.currentWatermark()) {
      (void)late_->asyncValue().thenCompose([this, &out, sale, window](std::optional<std::int64_t> n) {
        const std::int64_t count = n.value_or(0) + 1;
        out.collect(Row{sale.shop, window, 0, sale.item, count});
        return late_->asyncUpdate(count);
      });
      return;
    }
    const std::int64_t slot = window * kItems + sale.item;
    (void)totals_->asyncGet(slot).thenCompose([this, &ctx, sale, window, slot](std::optional<std::int64_t> total) {
      // Registered from a continuation: the timer belongs to this record's key.
      ctx.registerEventTimeTimer((window + 1) * kWindow - 1);
      return totals_->asyncPut(slot, total.value_or(0) + sale.amount);
    });
  }

  void onTimer(std::int64_t timestamp, Context& ctx, Collector<Row>& out) override {
    const std::int64_t window = timestamp / kWindow;
    const int shop = ctx.currentKey();
    (void)toVector(totals_->asyncEntries())
        .thenCompose([this, &out, window, shop](std::vector<std::pair<std::int64_t, std::int64_t>> entries) {
          std::vector<std::pair<std::int64_t, int>> ranked;  // (-total, item)
          std::vector<StateFuture<void>> removals;
          for (const auto& [slot, total] : entries) {
            if (slot / kItems != window) continue;
            ranked.emplace_back(-total, static_cast<int>(slot % kItems));
            removals.push_back(totals_->asyncRemove(slot));
          }
          std::sort(ranked.begin(), ranked.end());
          for (int rank = 0; rank < kTop && rank < static_cast<int>(ranked.size()); ++rank) {
            const auto& [negTotal, item] = ranked[static_cast<std::size_t>(rank)];
            out.collect(Row{shop, window, rank + 1, item, -negTotal});
          }
          return combineAll(std::move(removals));
        });
  }

 private:
  MapState<std::int64_t, std::int64_t>* totals_ = nullptr;
  ValueState<std::int64_t>* late_ = nullptr;
};

std::vector<Sale> generateSales(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Sale> sales;
  for (std::size_t i = 0; i < count; ++i) {
    // Mostly a little out of order; one in ten far behind (often late).
    const std::int64_t behind = static_cast<std::int64_t>(rng() % 10 == 0 ? rng() % 4000 : rng() % 500);
    sales.push_back(Sale{static_cast<int>(rng() % kShops), static_cast<int>(rng() % kItems),
                         static_cast<std::int64_t>(1 + rng() % 100), 5000 + static_cast<std::int64_t>(i) * 5 - behind});
  }
  return sales;
}

using Runner = EmbeddedRunner<int, Sale, Row>;

RunnerOptions jobOptions() {
  RunnerOptions o;
  o.controller.log = nullptr;
  o.controller.batchSize = 40;
  o.controller.inFlightLimit = 150;
  o.controller.iteratorChunkSize = 16;
  o.watermarkEvery = 97;
  o.maxOutOfOrderness = 800;
  return o;
}

Runner makeRunner(StateBackend& backend, TopItems& function, RunnerOptions options) {
  return Runner(
      backend, function, [](const Sale& s) { return s.shop; }, [](const Sale& s) { return s.time; },
      std::move(options));
}

// Empty when equal; otherwise counts and the first rows missing from / extra in `actual`.
std::string difference(const std::vector<Row>& expected, const std::vector<Row>& actual) {
  std::vector<Row> missing, extra;
  std::set_difference(expected.begin(), expected.end(), actual.begin(), actual.end(), std::back_inserter(missing));
  std::set_difference(actual.begin(), actual.end(), expected.begin(), expected.end(), std::back_inserter(extra));
  if (missing.empty() && extra.empty()) return {};
  auto firstOf = [](const std::vector<Row>& rows) {
    return ::testing::PrintToString(
        std::vector<Row>(rows.begin(), rows.begin() + std::min<std::ptrdiff_t>(5, std::ssize(rows))));
  };
  return std::to_string(missing.size()) + " rows missing, e.g. " + firstOf(missing) + "; " +
         std::to_string(extra.size()) + " extra, e.g. " + firstOf(extra);
}

std::vector<Row> sorted(std::vector<Row> rows) {
  std::sort(rows.begin(), rows.end());
  return rows;
}

const std::vector<Sale>& sales() {
  static const std::vector<Sale> all = generateSales(12000, 42);
  return all;
}

const std::vector<Row>& uninterruptedOutput() {
  static const std::vector<Row> rows = [] {
    MemoryBackend backend;
    TopItems function;
    Runner runner = makeRunner(backend, function, jobOptions());
    VectorSource<Sale> source(sales());
    VectorCollector<Row> sink;
    runner.run(source, sink);
    return sorted(std::move(sink.values));
  }();
  return rows;
}

class RecoveryTest : public ::testing::TestWithParam<BackendFactory> {};

TEST_P(RecoveryTest, RestoreAtRandomPositionsGivesTheUninterruptedOutput) {
  const std::vector<Row>& expected = uninterruptedOutput();
  ASSERT_GT(std::count_if(expected.begin(), expected.end(), [](const Row& r) { return r.rank == 0; }), 50)
      << "the job must see late data";
  ASSERT_GT(expected.size(), 1000u);

  for (std::uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    std::optional<Savepoint> checkpoint;  // the last one taken, as read back from its bytes
    std::vector<Row> committed;           // what the exactly-once sink holds at that checkpoint
    std::vector<std::uint64_t> positions;
    for (int attempt = 0;; ++attempt) {
      auto stack = GetParam().make();
      TopItems function;
      RunnerOptions o = jobOptions();
      o.checkpointEvery = 1 + rng() % 2500;
      const bool last = attempt == 4;
      o.stopAfter = last ? 0 : 1 + rng() % 4000;
      VectorCollector<Row> sink;
      o.onCheckpoint = [&](const Savepoint& sp) {
        checkpoint = Savepoint::parse(sp.serialize());
        committed = sink.values;
        positions.push_back(decode<std::uint64_t>(sp.metadata().at("source.position")));
      };
      Runner runner = makeRunner(stack->backend(), function, o);
      VectorSource<Sale> source(sales());
      if (checkpoint) {
        const std::uint64_t kept = runner.restore(*checkpoint, source);
        ASSERT_EQ(kept, committed.size());
        sink.values = committed;
      }
      runner.run(source, sink);
      if (source.finished()) {
        EXPECT_EQ(difference(expected, sorted(sink.values)), "")
            << "of " << expected.size() << " rows; checkpoints taken at " << ::testing::PrintToString(positions);
        break;
      }
      ASSERT_FALSE(last);
      // Killed: the runner and its backend are abandoned; the next attempt restores.
    }
  }
}

std::vector<BackendFactory> recoveryBackends() {
  std::vector<BackendFactory> out;
  for (BackendFactory& f : backendFactories()) {
    if (f.name == "memory" || f.name == "latency_memory" || f.name == "rocksdb" || f.name == "redis") out.push_back(f);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Backends, RecoveryTest, ::testing::ValuesIn(recoveryBackends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace asyncstate::test
