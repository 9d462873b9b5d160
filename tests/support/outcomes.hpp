#pragma once
// Reading a complete StateFuture in a test: through handle(), so that an unexpected
// failure is reported by the test instead of going to the error handler.

#include <asyncstate/future.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <type_traits>
#include <utility>

namespace asyncstate::test {

// The value of a complete future; an unexpected failure fails the test.
template <class T>
std::optional<T> valueOf(asyncstate::StateFuture<T>&& future) {
  EXPECT_TRUE(future.isDone());
  std::optional<T> out;
  std::move(future).handle([&](asyncstate::Outcome<T> outcome) {
    if (outcome.failed()) {
      ADD_FAILURE() << "unexpected failure: " << outcome.error().message();
    } else {
      out = std::move(outcome.value());
    }
  });
  return out;
}

// Whether a complete void future succeeded; a failure fails the test.
inline bool succeeded(asyncstate::StateFuture<void>&& future) {
  EXPECT_TRUE(future.isDone());
  bool ok = false;
  std::move(future).handle([&](asyncstate::Outcome<void> outcome) {
    if (outcome.failed()) ADD_FAILURE() << "unexpected failure: " << outcome.error().message();
    ok = !outcome.failed();
  });
  return ok;
}

// The failure of a complete future, if it failed.
template <class T>
std::optional<asyncstate::AsyncError> errorOf(asyncstate::StateFuture<T>&& future) {
  EXPECT_TRUE(future.isDone());
  std::optional<asyncstate::AsyncError> out;
  std::move(future).handle([&](asyncstate::Outcome<T> outcome) {
    if (outcome.failed()) out = outcome.error();
  });
  return out;
}

}  // namespace asyncstate::test
