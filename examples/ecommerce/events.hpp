#pragma once
// The e-commerce event stream of the example job and its seeded generator.

#include <asyncstate/serializer.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace ecommerce {

enum class EventType : std::uint8_t { View, AddToCart, Purchase, ProfileUpdate };

struct Event {
  std::string userId;
  EventType type = EventType::View;
  std::string attribute;       // ProfileUpdate: which profile field
  std::string value;           // ProfileUpdate: its new value
  std::int64_t timestamp = 0;  // event time, ms
};

// One output row: a user's activity in one tumbling window, enriched with the profile.
struct WindowCount {
  std::string userId;
  std::int64_t windowStart = 0;
  std::int64_t events = 0;
  std::int64_t purchases = 0;
  std::string segment;
  std::string country;

  friend bool operator==(const WindowCount&, const WindowCount&) = default;
  friend bool operator<(const WindowCount& a, const WindowCount& b) {
    return std::tie(a.userId, a.windowStart) < std::tie(b.userId, b.windowStart);
  }
};

// Activity counted per window, stored as one map entry per window start.
struct Activity {
  std::int64_t events = 0;
  std::int64_t purchases = 0;
};

inline constexpr std::int64_t kWindowMillis = 10'000;
// The generator's event-time clock: where it starts and how far it advances per event.
inline constexpr std::int64_t kFirstEventMillis = 1'700'000'000'000;
inline constexpr std::int64_t kMillisPerEvent = 2;

// Seeded, so sync and async runs (and checkpoint replays) see the same stream. Users
// follow a skewed distribution (a few very active users), timestamps advance with
// bounded disorder, and about 2% of events update a profile field.
inline std::vector<Event> generateEvents(std::size_t count, std::uint64_t seed = 42, std::size_t users = 5000) {
  std::mt19937_64 rng(seed);
  std::discrete_distribution<int> typeDist({70, 20, 8, 2});
  std::geometric_distribution<std::size_t> userDist(20.0 / static_cast<double>(users));
  std::uniform_int_distribution<int> jitter(-500, 500);
  const char* segments[] = {"new", "regular", "vip"};
  const char* countries[] = {"DE", "FR", "US", "JP", "BR"};
  std::vector<Event> events;
  events.reserve(count);
  std::int64_t clock = kFirstEventMillis;
  for (std::size_t i = 0; i < count; ++i) {
    clock += kMillisPerEvent;
    Event e;
    e.userId = "user-" + std::to_string(userDist(rng) % users);
    e.type = static_cast<EventType>(typeDist(rng));
    e.timestamp = clock + jitter(rng);
    if (e.type == EventType::ProfileUpdate) {
      if (rng() % 2 == 0) {
        e.attribute = "segment";
        e.value = segments[rng() % 3];
      } else {
        e.attribute = "country";
        e.value = countries[rng() % 5];
      }
    }
    events.push_back(std::move(e));
  }
  return events;
}

inline std::int64_t windowOf(std::int64_t timestamp) { return timestamp - timestamp % kWindowMillis; }

}  // namespace ecommerce

ASYNCSTATE_SERIALIZABLE(ecommerce::Activity, events, purchases);
