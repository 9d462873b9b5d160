// Runs ecommerce::SyncActivityFunction from whichever sync_job.hpp the include path
// finds first (the shipped one, or the copy `asyncstate-tidy --fix` migrated) over
// seeded events, with many records in flight, and prints every output sorted.
#include "sync_job.hpp"

#include <asyncstate/asyncstate.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

int main() {
  const std::vector<ecommerce::Event> events = ecommerce::generateEvents(20000, 7, 300);
  asyncstate::MemoryBackend backend;
  ecommerce::SyncActivityFunction function;
  asyncstate::RunnerOptions options;
  options.controller.log = nullptr;
  options.controller.inFlightLimit = 64;
  options.controller.batchSize = 16;
  options.watermarkEvery = 500;
  options.maxOutOfOrderness = 1000;
  asyncstate::EmbeddedRunner<std::string, ecommerce::Event, ecommerce::WindowCount> runner(
      backend, function, [](const ecommerce::Event& e) { return e.userId; },
      [](const ecommerce::Event& e) { return e.timestamp; }, options);
  asyncstate::VectorSource<ecommerce::Event> source(events);
  asyncstate::VectorCollector<ecommerce::WindowCount> sink;
  const asyncstate::RunStats stats = runner.run(source, sink);
  std::vector<ecommerce::WindowCount> out = std::move(sink.values);
  std::sort(out.begin(), out.end());
  for (const ecommerce::WindowCount& w : out)
    std::printf("%s %lld %lld %lld %s %s\n", w.userId.c_str(), static_cast<long long>(w.windowStart),
                static_cast<long long>(w.events), static_cast<long long>(w.purchases), w.segment.c_str(),
                w.country.c_str());
  std::fprintf(stderr, "records %llu, peak in flight %zu\n", static_cast<unsigned long long>(stats.records),
               stats.controller.peakInFlightRecords);
  return out.empty() ? 1 : 0;
}
