#pragma once
// MetricsRegistry: named counters, gauges and histograms that the library publishes
// into and an embedding engine (or the Prometheus endpoint) reads as a snapshot.
//
// Cheap enough to leave on: a metric is looked up once (registration takes a lock and
// may allocate) and then updated through the returned reference with relaxed atomics,
// lock-free and allocation-free. snapshot() may run on any thread while the task thread
// publishes; each value is read atomically (a histogram's buckets are not read as one
// atomic unit, which Prometheus tolerates: its count is the sum of the buckets read).

#include <asyncstate/metrics.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace asyncstate {

// (name, value) pairs; a metric's identity within its family. Order is kept as given.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType : std::uint8_t { Counter, Gauge, Histogram };

inline const char* toString(MetricType type) noexcept {
  switch (type) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Histogram: return "histogram";
  }
  return "untyped";
}

namespace detail {

inline void atomicAdd(std::atomic<double>& target, double delta) noexcept {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

}  // namespace detail

// Only goes up (inc), except that set() mirrors a cumulative count kept elsewhere.
class Counter {
 public:
  void inc(double delta = 1) noexcept {
    if (delta > 0) detail::atomicAdd(value_, delta);
  }
  void set(double total) noexcept { value_.store(total, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void add(double delta) noexcept { detail::atomicAdd(value_, delta); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

struct HistogramData {
  std::vector<double> bounds;             // upper bounds ("le"), increasing; +Inf is implied
  std::vector<std::uint64_t> cumulative;  // samples <= each bound, then the +Inf bucket (= count)
  double sum = 0;
  std::uint64_t count() const noexcept { return cumulative.empty() ? 0 : cumulative.back(); }
};

class Histogram {
 public:
  // Latency buckets: powers of two from 16 µs to 134 s, in seconds. Powers of two are
  // exact bucket edges of LatencyHistogram, so assign() copies one without error.
  static constexpr int kFirstLatencyExponent = 4;
  static constexpr int kLastLatencyExponent = 27;

  static std::vector<double> latencyBounds() {
    std::vector<double> bounds;
    for (int e = kFirstLatencyExponent; e <= kLastLatencyExponent; ++e) bounds.push_back(std::ldexp(1.0, e) / 1e6);
    return bounds;
  }
  // start, start*factor, ... (count bounds); for sizes such as requests per batch.
  static std::vector<double> exponentialBounds(double start, double factor, std::size_t count) {
    if (!(start > 0) || !(factor > 1) || count == 0) {
      throw std::invalid_argument("Histogram::exponentialBounds: needs start > 0, factor > 1 and count > 0");
    }
    std::vector<double> bounds;
    for (double b = start; bounds.size() < count; b *= factor) bounds.push_back(b);
    return bounds;
  }

  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {
    if (bounds_.empty() || !std::is_sorted(bounds_.begin(), bounds_.end()) ||
        std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end() ||
        !std::all_of(bounds_.begin(), bounds_.end(), [](double b) { return std::isfinite(b); })) {
      throw std::invalid_argument("Histogram: bounds must be finite and strictly increasing");
    }
    isLatency_ = bounds_ == latencyBounds();
  }

  void observe(double value) noexcept {
    if (std::isnan(value)) return;
    const auto bucket =
        static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
    buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    detail::atomicAdd(sum_, value);
  }
  void observe(std::chrono::nanoseconds duration) noexcept { observe(std::chrono::duration<double>(duration).count()); }

  // Mirrors a LatencyHistogram kept elsewhere (the controller's record latency).
  void assign(const LatencyHistogram& latencies) {
    if (!isLatency_) throw std::logic_error("Histogram::assign(LatencyHistogram) needs Histogram::latencyBounds()");
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      const std::uint64_t upTo = latencies.countBelowPowerOfTwoMicros(kFirstLatencyExponent + static_cast<int>(i));
      buckets_[i].store(upTo - below, std::memory_order_relaxed);
      below = upTo;
    }
    buckets_.back().store(latencies.count() - below, std::memory_order_relaxed);
    sum_.store(static_cast<double>(latencies.sumMicros()) / 1e6, std::memory_order_relaxed);
  }

  const std::vector<double>& bounds() const noexcept { return bounds_; }

  HistogramData data() const {
    HistogramData d{bounds_, {}, sum_.load(std::memory_order_relaxed)};
    d.cumulative.reserve(buckets_.size());
    std::uint64_t running = 0;
    for (const auto& bucket : buckets_) {
      running += bucket.load(std::memory_order_relaxed);
      d.cumulative.push_back(running);
    }
    return d;
  }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> buckets_;  // per bucket (not cumulative); last: above every bound
  std::atomic<double> sum_{0};
  bool isLatency_ = false;
};

struct MetricSample {
  MetricLabels labels;
  double value = 0;         // counters and gauges
  HistogramData histogram;  // histograms
};

struct MetricFamily {
  std::string name;
  std::string help;
  MetricType type = MetricType::Gauge;
  std::vector<MetricSample> samples;
};

struct MetricsSnapshot {
  std::vector<MetricFamily> families;  // sorted by name

  const MetricFamily* find(std::string_view name) const {
    for (const MetricFamily& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
  const MetricSample* sample(std::string_view name, const MetricLabels& labels = {}) const {
    const MetricFamily* family = find(name);
    if (family == nullptr) return nullptr;
    for (const MetricSample& s : family->samples) {
      if (s.labels == labels) return &s;
    }
    return nullptr;
  }
};

// Prometheus' naming rules, checked at registration so an exposition is always valid.
inline bool isValidMetricName(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = i > 0 && c >= '0' && c <= '9';
    if (!letter && !digit) return false;
  }
  return true;
}
inline bool isValidLabelName(std::string_view name) noexcept {
  return isValidMetricName(name) && name.find(':') == std::string_view::npos && !name.starts_with("__");
}

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Each returns the metric of that name and labels, creating it on first use. The same
  // name must always come with the same type, help and (for histograms) bounds.
  Counter& counter(std::string_view name, std::string_view help, const MetricLabels& labels = {}) {
    return std::get<std::unique_ptr<Counter>>(child(name, help, MetricType::Counter, labels, {})).operator*();
  }
  Gauge& gauge(std::string_view name, std::string_view help, const MetricLabels& labels = {}) {
    return std::get<std::unique_ptr<Gauge>>(child(name, help, MetricType::Gauge, labels, {})).operator*();
  }
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                       const MetricLabels& labels = {}) {
    return std::get<std::unique_ptr<Histogram>>(child(name, help, MetricType::Histogram, labels, std::move(bounds)))
        .operator*();
  }
  Histogram& latencyHistogram(std::string_view name, std::string_view help, const MetricLabels& labels = {}) {
    return histogram(name, help, Histogram::latencyBounds(), labels);
  }

  // Replaces every series of a gauge family at once: for series whose labels come and go
  // (the current top-N hot keys), which must not pile up as stale gauges. Such a family
  // belongs to this call only; gauge() with its name is an error, and vice versa.
  void replaceGauges(std::string_view name, std::string_view help,
                     std::vector<std::pair<MetricLabels, double>> series) {
    MetricFamily family{std::string(name), std::string(help), MetricType::Gauge, {}};
    for (auto& [labels, value] : series) {
      validate(name, MetricType::Gauge, labels);
      family.samples.push_back(MetricSample{std::move(labels), value, {}});
    }
    std::lock_guard lock(mutex_);
    if (families_.contains(name)) {
      throw std::invalid_argument("metric '" + std::string(name) +
                                  "' is registered as a metric, not replaced as a whole");
    }
    auto it = replaced_.find(name);
    if (it != replaced_.end() && it->second.help != family.help) {
      throw std::invalid_argument("metric '" + std::string(name) + "' is already published with other help text");
    }
    replaced_.insert_or_assign(std::string(name), std::move(family));
  }

  MetricsSnapshot snapshot() const {
    std::lock_guard lock(mutex_);
    MetricsSnapshot snap;
    snap.families.reserve(families_.size() + replaced_.size());
    for (const auto& [name, family] : replaced_) snap.families.push_back(family);
    for (const auto& [name, family] : families_) {
      MetricFamily out{name, family.help, family.type, {}};
      out.samples.reserve(family.children.size());
      for (const auto& [labels, metric] : family.children) {
        MetricSample sample{labels, 0, {}};
        if (const auto* c = std::get_if<std::unique_ptr<Counter>>(&metric)) sample.value = (*c)->value();
        if (const auto* g = std::get_if<std::unique_ptr<Gauge>>(&metric)) sample.value = (*g)->value();
        if (const auto* h = std::get_if<std::unique_ptr<Histogram>>(&metric)) sample.histogram = (*h)->data();
        out.samples.push_back(std::move(sample));
      }
      snap.families.push_back(std::move(out));
    }
    std::sort(snap.families.begin(), snap.families.end(),
              [](const MetricFamily& a, const MetricFamily& b) { return a.name < b.name; });
    return snap;
  }

 private:
  using Metric = std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>, std::unique_ptr<Histogram>>;
  struct Family {
    std::string help;
    MetricType type;
    std::vector<double> bounds;
    std::map<MetricLabels, Metric> children;  // unique_ptr: references stay valid as children are added
  };

  Metric& child(std::string_view name, std::string_view help, MetricType type, const MetricLabels& labels,
                std::vector<double> bounds) {
    std::lock_guard lock(mutex_);
    if (replaced_.contains(name)) {
      throw std::invalid_argument("metric '" + std::string(name) + "' is published with replaceGauges()");
    }
    auto it = families_.find(name);
    if (it == families_.end()) {
      validate(name, type, labels);
      it = families_.emplace(std::string(name), Family{std::string(help), type, std::move(bounds), {}}).first;
    } else if (it->second.type != type || it->second.help != help ||
               (type == MetricType::Histogram && it->second.bounds != bounds)) {
      throw std::invalid_argument("metric '" + std::string(name) + "' is already registered as a " +
                                  toString(it->second.type) + " with other help text or buckets");
    }
    Family& family = it->second;
    auto found = family.children.find(labels);
    if (found != family.children.end()) return found->second;
    validate(name, type, labels);
    switch (type) {
      case MetricType::Counter: return family.children.emplace(labels, std::make_unique<Counter>()).first->second;
      case MetricType::Gauge: return family.children.emplace(labels, std::make_unique<Gauge>()).first->second;
      case MetricType::Histogram:
        return family.children.emplace(labels, std::make_unique<Histogram>(family.bounds)).first->second;
    }
    throw std::logic_error("unknown metric type");
  }

  static void validate(std::string_view name, MetricType type, const MetricLabels& labels) {
    if (!isValidMetricName(name)) {
      throw std::invalid_argument("metric name '" + std::string(name) +
                                  "' is not a Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
    }
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const std::string& label = labels[i].first;
      if (!isValidLabelName(label) || (type == MetricType::Histogram && label == "le")) {
        throw std::invalid_argument("metric '" + std::string(name) + "': '" + label + "' is not a valid label name");
      }
      for (std::size_t j = 0; j < i; ++j) {
        if (labels[j].first == label) {
          throw std::invalid_argument("metric '" + std::string(name) + "': label '" + label + "' given twice");
        }
      }
    }
  }

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;
  std::map<std::string, MetricFamily, std::less<>> replaced_;
};

}  // namespace asyncstate
