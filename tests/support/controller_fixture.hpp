#pragma once
// A controller on the memory backend whose handler records every failure it receives;
// a test fails if a failure reaches the handler that the test did not take.

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <utility>
#include <vector>

namespace asyncstate::testing {

// A controller clock moved by the test, so buffer-timeout and stall decisions are
// deterministic. With a step, every reading also advances it: a wait that keeps
// consulting the clock runs out after a known number of readings.
class ManualClock {
 public:
  explicit ManualClock(std::chrono::milliseconds step = std::chrono::milliseconds(0)) : step_(step) {}
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  ControllerClock clock() {
    return [this] {
      const auto reading = now_;
      now_ += step_;
      return reading;
    };
  }
  void advance(std::chrono::milliseconds by) { now_ += by; }
  void setStep(std::chrono::milliseconds step) { step_ = step; }

 private:
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
  std::chrono::milliseconds step_;
};

class ControllerFixture : public ::testing::Test {
 protected:
  ControllerFixture() : controller_(backend_, options()) {}

  void TearDown() override {
    for (const AsyncError& e : unhandled_) ADD_FAILURE() << "unexpected failure at the handler: " << e.message();
  }

  ControllerOptions options() {
    ControllerOptions o;
    o.log = nullptr;
    o.errorHandler = [this](const AsyncError& e) {
      unhandled_.push_back(e);
      return ErrorAction::Continue;
    };
    return o;
  }

  template <class F>
  decltype(auto) onTask(F&& f) {
    return controller_.runOnTaskThread(std::forward<F>(f));
  }

  // The failures that reached the handler so far (the test takes responsibility).
  std::vector<AsyncError> takeUnhandled() { return std::exchange(unhandled_, {}); }

  MemoryBackend backend_;
  std::vector<AsyncError> unhandled_;
  AsyncExecutionController controller_;
};

}  // namespace asyncstate::testing
