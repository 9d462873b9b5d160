#pragma once
// A controller on the memory backend whose handler records every failure it receives;
// a test fails if a failure reaches the handler that the test did not take.

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace asyncstate::testing {

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
