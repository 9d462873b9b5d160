#pragma once
// A minimal keyed, timestamped event for runner tests, and a source that goes idle
// between bursts (the case where watermarks must still come exactly once).

#include <asyncstate/runner.hpp>

#include <cstdint>
#include <optional>

namespace asyncstate::testing {

struct Tick {
  int key;
  std::int64_t time;
};

// Yields 40 ticks (key i % 3, time i * 10) in bursts: of every 10 polls, 6 find nothing
// available while the input is not finished; it finishes after 400 polls.
class IdleTickSource final : public Source<Tick> {
 public:
  std::optional<Tick> next() override {
    ++calls_;
    if (calls_ % 10 >= 4 || position_ >= kTicks) return std::nullopt;
    const auto i = static_cast<int>(position_++);
    return Tick{i % 3, i * 10};
  }
  bool finished() const override { return position_ >= kTicks && calls_ > 400; }
  std::uint64_t position() const override { return position_; }
  void seek(std::uint64_t p) override { position_ = p; }

 private:
  static constexpr std::uint64_t kTicks = 40;
  std::uint64_t position_ = 0;
  std::uint64_t calls_ = 0;
};

}  // namespace asyncstate::testing
