// The README's demo: runs the e-commerce job in its sync ("before") and async
// ("after", continuation and coroutine forms) versions over the same seeded events on
// the memory backend, checks that all produce identical output, and reports
// throughput, record latency and in-flight records.
//
// Operating it: every run publishes its metrics (JobMetrics, attached as the
// controller's observer, labelled run="...") to one registry, served at /metrics with
// --metrics-port; progress (records/s, in flight, cache hit rate, watermark lag) is
// shown live and, with --timeline, written as CSV for scripts/plot_timeline.py. With
// --replay-speed the remote runs read their events live, at the pace of their event
// time (times the speed); processing time is then the replay's clock, and watermark
// lag is how far the job's watermark trails it.

#include "async_job.hpp"
#include "events.hpp"
#include "sync_job.hpp"

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/latency.hpp>
#include <asyncstate/job_metrics.hpp>
#ifdef ECOMMERCE_WITH_METRICS_HTTP
#include <asyncstate/metrics_http.hpp>
#endif

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  std::vector<ecommerce::WindowCount> output;
  asyncstate::RunStats stats;
  asyncstate::CacheStats cache;
  double peakWatermarkLagSeconds = 0;
};

struct Settings {
  std::size_t cacheBytes = 0;  // 0: no cache
  double replaySpeed = 0;      // remote runs: event time per wall-clock time; 0: as fast as possible
  asyncstate::MetricsRegistry* registry = nullptr;
  std::ofstream* timeline = nullptr;
};

// Replaying recorded events as if live: the replay clock starts at the generator's first
// event time when the run starts and runs `speed` times as fast as the wall clock.
class ReplayClock {
 public:
  explicit ReplayClock(double speed) : speed_(speed) {}
  std::int64_t nowMillis() const {
    const double elapsed = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
    return ecommerce::kFirstEventMillis + static_cast<std::int64_t>(elapsed * speed_);
  }
  std::chrono::system_clock::time_point now() const {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(nowMillis()));
  }

 private:
  double speed_;
  Clock::time_point start_ = Clock::now();
};

// A live source: event i becomes available when the replay clock reaches the
// generator's time for it (events keep their timestamps, so every run's output is the same).
class ReplaySource final : public asyncstate::Source<ecommerce::Event> {
 public:
  ReplaySource(const std::vector<ecommerce::Event>& events, const ReplayClock& clock)
      : events_(events), clock_(clock) {}
  std::optional<ecommerce::Event> next() override {
    if (position_ >= events_.size()) return std::nullopt;
    const std::int64_t due =
        ecommerce::kFirstEventMillis + ecommerce::kMillisPerEvent * static_cast<std::int64_t>(position_);
    if (clock_.nowMillis() < due) return std::nullopt;
    return events_[position_++];
  }
  bool finished() const override { return position_ >= events_.size(); }
  std::uint64_t position() const override { return position_; }
  void seek(std::uint64_t position) override { position_ = std::min<std::uint64_t>(position, events_.size()); }

 private:
  const std::vector<ecommerce::Event>& events_;
  const ReplayClock& clock_;
  std::uint64_t position_ = 0;
};

// Live progress on stderr (one line rewritten in place on a terminal, a line a second
// otherwise) and, with a timeline file, a CSV row every 100 ms.
class Progress {
 public:
  Progress(const char* run, std::size_t total, const ReplayClock* replay, std::ofstream* timeline)
      : run_(run), total_(total), replay_(replay), timeline_(timeline), terminal_(::isatty(STDERR_FILENO) != 0) {}

  void watermark(std::int64_t watermark) {
    if (watermark != std::numeric_limits<std::int64_t>::max()) watermark_ = watermark;
  }

  // Called every few records; reads the clock, samples at most every 100 ms. Returns
  // whether it took a sample.
  bool sample(const asyncstate::RunStats& s, const asyncstate::CacheStats& cache, bool last = false) {
    const auto now = Clock::now();
    if (!last && now - lastSample_ < std::chrono::milliseconds(100)) return false;
    const double seconds = std::chrono::duration<double>(now - started_).count();
    const double interval = std::chrono::duration<double>(now - lastSample_).count();
    const double rate = interval > 0 ? static_cast<double>(s.records - lastRecords_) / interval : 0;
    const auto lookups = (cache.hits + cache.misses) - (lastCache_.hits + lastCache_.misses);
    const double hitRate =
        lookups > 0 ? static_cast<double>(cache.hits - lastCache_.hits) / static_cast<double>(lookups) : hitRate_;
    hitRate_ = hitRate;
    const bool hasLag = replay_ != nullptr && watermark_;
    lag_ = hasLag ? static_cast<double>(replay_->nowMillis() - *watermark_) / 1000 : 0;
    peakLag_ = std::max(peakLag_, lag_);
    if (timeline_ != nullptr) {
      *timeline_ << run_ << ',' << seconds << ',' << s.records << ',' << rate << ',' << s.controller.inFlightRecords
                 << ',' << hitRate << ',';
      if (hasLag) *timeline_ << lag_;
      *timeline_ << '\n';
    }
    if (terminal_ || last || now - lastPrint_ >= std::chrono::seconds(1)) {
      std::fprintf(stderr, "%s  [%s] %llu/%zu records, %6.0f records/s, %5zu in flight, hit rate %3.0f%%",
                   terminal_ ? "\r" : "", run_, static_cast<unsigned long long>(s.records), total_, rate,
                   s.controller.inFlightRecords, 100 * hitRate);
      if (hasLag) std::fprintf(stderr, ", watermark lag %5.2f s", lag_);
      std::fprintf(stderr, terminal_ && !last ? "   " : "\n");
      lastPrint_ = now;
    }
    lastSample_ = now;
    lastRecords_ = s.records;
    lastCache_ = cache;
    return true;
  }

  double peakLagSeconds() const { return peakLag_; }

 private:
  const char* run_;
  std::size_t total_;
  const ReplayClock* replay_;  // null: no live event time, no lag
  std::ofstream* timeline_;
  bool terminal_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point lastSample_ = started_;
  Clock::time_point lastPrint_ = started_;
  std::uint64_t lastRecords_ = 0;
  asyncstate::CacheStats lastCache_;
  double hitRate_ = 0;
  double lag_ = 0;
  double peakLag_ = 0;
  std::optional<std::int64_t> watermark_;
};

// latency == 0: the embedded memory backend; otherwise the memory backend behind a
// fixed per-batch latency, standing in for remote storage (replayed live at
// settings.replaySpeed).
template <class Function>
Result runJob(const char* run, const std::vector<ecommerce::Event>& events, asyncstate::ControllerOptions options,
              const Settings& settings, std::chrono::microseconds latency = std::chrono::microseconds(0)) {
  asyncstate::MemoryBackend memory;
  std::optional<asyncstate::LatencyInjectingBackend> remote;
  if (latency.count() > 0) {
    asyncstate::LatencyOptions latencyOptions;
    latencyOptions.latency = latency;
    remote.emplace(memory, latencyOptions);
  }
  asyncstate::StateBackend& store = remote ? static_cast<asyncstate::StateBackend&>(*remote) : memory;
  std::optional<asyncstate::CachingBackend> cache;
  if (settings.cacheBytes > 0) cache.emplace(store, settings.cacheBytes);
  asyncstate::StateBackend& backend = cache ? static_cast<asyncstate::StateBackend&>(*cache) : store;
  auto cacheStats = [&cache] { return cache ? cache->cacheStats() : asyncstate::CacheStats{}; };
  std::optional<ReplayClock> replay;
  if (remote && settings.replaySpeed > 0) replay.emplace(settings.replaySpeed);

  std::optional<asyncstate::JobMetrics> metrics;
  if (settings.registry != nullptr) {
    metrics.emplace(*settings.registry, asyncstate::MetricLabels{{"run", run}});
    if (replay) metrics->setProcessingClock([&replay] { return replay->now(); });
  }
  Progress progress(run, events.size(), replay ? &*replay : nullptr, settings.timeline);

  Function function;
  asyncstate::RunnerOptions runnerOptions;
  runnerOptions.controller = options;
  runnerOptions.controller.log = nullptr;
  runnerOptions.controller.observer = metrics ? &*metrics : nullptr;
  runnerOptions.watermarkEvery = 1000;
  runnerOptions.maxOutOfOrderness = 1000;
  runnerOptions.idleWait = std::chrono::milliseconds(1);
  runnerOptions.progressEvery = 16;
  asyncstate::EmbeddedRunner<std::string, ecommerce::Event, ecommerce::WindowCount>* running = nullptr;
  runnerOptions.onProgress = [&](const asyncstate::RunStats& s) {
    if (progress.sample(s, cacheStats()) && metrics) {
      metrics->publish(s);
      metrics->publish(running->controller());
      if (cache) metrics->publish(cache->cacheStats());
    }
  };
  runnerOptions.onWatermark = [&progress](std::int64_t watermark) { progress.watermark(watermark); };
  asyncstate::EmbeddedRunner<std::string, ecommerce::Event, ecommerce::WindowCount> runner(
      backend, function, [](const ecommerce::Event& e) { return e.userId; },
      [](const ecommerce::Event& e) { return e.timestamp; }, runnerOptions);
  running = &runner;
  asyncstate::VectorSource<ecommerce::Event> recorded(events);
  std::optional<ReplaySource> live;
  if (replay) live.emplace(events, *replay);
  asyncstate::Source<ecommerce::Event>& source =
      live ? static_cast<asyncstate::Source<ecommerce::Event>&>(*live) : recorded;
  asyncstate::VectorCollector<ecommerce::WindowCount> sink;
  Result result;
  result.stats = runner.run(source, sink);
  result.cache = cacheStats();
  progress.sample(result.stats, result.cache, true);
  result.peakWatermarkLagSeconds = progress.peakLagSeconds();
  if (metrics) {
    metrics->publish(result.stats);
    metrics->publish(runner.controller());
    if (cache) metrics->publish(result.cache);
  }
  result.output = std::move(sink.values);
  std::sort(result.output.begin(), result.output.end());
  return result;
}

void report(const char* label, const Result& r) {
  std::printf(
      "%-22s %9.0f records/s  latency p50 %7.0f us  p99 %8.0f us  peak in-flight %5zu  batches %6llu  outputs %zu\n",
      label, r.stats.recordsPerSecond, r.stats.latencyP50Micros, r.stats.latencyP99Micros,
      r.stats.controller.peakInFlightRecords, static_cast<unsigned long long>(r.stats.controller.batchesSent),
      r.output.size());
}

// What the job measured itself, in a form a test can compare with a scrape.
void reportMeasured(const char* run, const Result& r) {
  std::printf("measured run=%s records_in=%llu records_processed=%llu batches=%llu cache_hit_rate=%.17g\n", run,
              static_cast<unsigned long long>(r.stats.records),
              static_cast<unsigned long long>(r.stats.controller.recordsProcessed),
              static_cast<unsigned long long>(r.stats.controller.batchesSent), r.cache.hitRate());
}

bool sameOutput(const Result& a, const Result& b, const Result& c) {
  return a.output == b.output && a.output == c.output;
}

// Replayed live, a window's timer fires when the watermark passes it, which depends on
// the pace each version keeps: the profile it is enriched with may then differ, the
// counts may not.
bool sameCounts(const Result& a, const Result& b) {
  return std::equal(a.output.begin(), a.output.end(), b.output.begin(), b.output.end(),
                    [](const ecommerce::WindowCount& x, const ecommerce::WindowCount& y) {
                      return x.userId == y.userId && x.windowStart == y.windowStart && x.events == y.events &&
                             x.purchases == y.purchases;
                    });
}

int usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--events N] [--remote-events N] [--latency-us US] [--cache-kib N] [--replay-speed X]\n"
               "          [--timeline FILE.csv] [--metrics-port PORT [--serve-after-s S]]\n",
               program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t eventCount = 200000;
  std::size_t remoteEventCount = 3000;
  long latencyMicros = 1000;
  Settings settings;
  std::string timelinePath;
  int metricsPort = -1;
  long serveAfterSeconds = 0;
  for (int i = 1; i < argc; ++i) {
    const bool hasValue = i + 1 < argc;
    if (std::strcmp(argv[i], "--events") == 0 && hasValue) {
      eventCount = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--remote-events") == 0 && hasValue) {
      remoteEventCount = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--latency-us") == 0 && hasValue) {
      latencyMicros = std::strtol(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--cache-kib") == 0 && hasValue) {
      settings.cacheBytes = std::strtoull(argv[++i], nullptr, 10) * 1024;
    } else if (std::strcmp(argv[i], "--replay-speed") == 0 && hasValue) {
      settings.replaySpeed = std::strtod(argv[++i], nullptr);
    } else if (std::strcmp(argv[i], "--timeline") == 0 && hasValue) {
      timelinePath = argv[++i];
    } else if (std::strcmp(argv[i], "--metrics-port") == 0 && hasValue) {
      metricsPort = static_cast<int>(std::strtol(argv[++i], nullptr, 10));
    } else if (std::strcmp(argv[i], "--serve-after-s") == 0 && hasValue) {
      serveAfterSeconds = std::strtol(argv[++i], nullptr, 10);
    } else {
      return usage(argv[0]);
    }
  }
  if (!(settings.replaySpeed >= 0) || metricsPort < -1 || metricsPort > 65535 || serveAfterSeconds < 0)
    return usage(argv[0]);

  std::ofstream timeline;
  if (!timelinePath.empty()) {
    timeline.open(timelinePath);
    if (!timeline) {
      std::fprintf(stderr, "cannot write the timeline to %s\n", timelinePath.c_str());
      return 1;
    }
    timeline << "run,seconds,records,records_per_second,in_flight,cache_hit_rate,watermark_lag_seconds\n";
    settings.timeline = &timeline;
  }
  asyncstate::MetricsRegistry registry;
  settings.registry = &registry;
#ifdef ECOMMERCE_WITH_METRICS_HTTP
  std::unique_ptr<asyncstate::MetricsHttpServer> endpoint;
  if (metricsPort >= 0) {
    try {
      endpoint = std::make_unique<asyncstate::MetricsHttpServer>(registry,
                                                                 asyncstate::MetricsHttpOptions{.port = metricsPort});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
    std::fprintf(stderr, "metrics at %s\n", endpoint->url().c_str());
  }
#else
  if (metricsPort >= 0) {
    std::fprintf(stderr,
                 "--metrics-port: this build has no HTTP component (configure with -DASYNCSTATE_WITH_HTTP=ON)\n");
    return 2;
  }
#endif

  std::printf(
      "asyncstate %s demo: e-commerce activity per user in %lld s tumbling windows, enriched from a profile "
      "MapState; %zu seeded events, memory backend\n",
      ASYNCSTATE_VERSION_STRING, static_cast<long long>(ecommerce::kWindowMillis / 1000), eventCount);
  const auto events = ecommerce::generateEvents(eventCount);
  asyncstate::ControllerOptions options;  // Flink's defaults: batch 1000, 6000 in flight, 1 s buffer timeout
  bool allSame = true;
  try {
    if (eventCount > 0) {
      const Result sync = runJob<ecommerce::SyncActivityFunction>("sync", events, options, settings);
      const Result async = runJob<ecommerce::AsyncActivityFunction>("async", events, options, settings);
      const Result coroutine = runJob<ecommerce::CoroutineActivityFunction>("coroutines", events, options, settings);
      report("sync (before)", sync);
      report("async (after)", async);
      report("async coroutines", coroutine);
      allSame = sameOutput(sync, async, coroutine);
      std::printf("output: %zu window rows; sync, async and coroutine outputs are %s\n", sync.output.size(),
                  allSame ? "IDENTICAL" : "DIFFERENT");
      if (metricsPort >= 0) {
        reportMeasured("sync", sync);
        reportMeasured("async", async);
        reportMeasured("coroutines", coroutine);
      }
    }

    if (latencyMicros > 0 && remoteEventCount > 0) {
      std::printf("\nremote storage simulated: %ld us per request batch, %zu events", latencyMicros, remoteEventCount);
      if (settings.cacheBytes > 0) std::printf(", %zu KiB cache", settings.cacheBytes / 1024);
      if (settings.replaySpeed > 0) {
        std::printf(", replayed live at %.0f events/s",
                    settings.replaySpeed * 1000.0 / static_cast<double>(ecommerce::kMillisPerEvent));
      }
      std::printf("\n");
      const auto remoteEvents = ecommerce::generateEvents(remoteEventCount, 43, 500);
      const std::chrono::microseconds latency(latencyMicros);
      const Result rsync =
          runJob<ecommerce::SyncActivityFunction>("sync_remote", remoteEvents, options, settings, latency);
      const Result rasync =
          runJob<ecommerce::AsyncActivityFunction>("async_remote", remoteEvents, options, settings, latency);
      const Result rcoro =
          runJob<ecommerce::CoroutineActivityFunction>("coroutines_remote", remoteEvents, options, settings, latency);
      report("sync, remote", rsync);
      report("async, remote", rasync);
      report("coroutines, remote", rcoro);
      if (settings.replaySpeed > 0) {
        const bool remoteSame = sameCounts(rsync, rasync) && sameCounts(rsync, rcoro);
        allSame = allSame && remoteSame;
        std::printf("peak watermark lag under %ld us latency: sync %.2f s, async %.2f s; window counts are %s\n",
                    latencyMicros, rsync.peakWatermarkLagSeconds, rasync.peakWatermarkLagSeconds,
                    remoteSame ? "IDENTICAL" : "DIFFERENT");
      } else {
        const bool remoteSame = sameOutput(rsync, rasync, rcoro);
        allSame = allSame && remoteSame;
        std::printf("async/sync throughput under %ld us latency: %.1fx; outputs are %s\n", latencyMicros,
                    rasync.stats.recordsPerSecond / rsync.stats.recordsPerSecond,
                    remoteSame ? "IDENTICAL" : "DIFFERENT");
      }
      if (metricsPort >= 0) {
        reportMeasured("sync_remote", rsync);
        reportMeasured("async_remote", rasync);
        reportMeasured("coroutines_remote", rcoro);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    return 1;
  }
  std::fflush(stdout);
  if (serveAfterSeconds > 0 && metricsPort >= 0) {
    std::fprintf(stderr, "serving the final metrics for %ld s\n", serveAfterSeconds);
    std::this_thread::sleep_for(std::chrono::seconds(serveAfterSeconds));
  }
  return allSame ? 0 : 1;
}
