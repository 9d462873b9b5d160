#pragma once
// How the tests run the example e-commerce job (examples/ecommerce): its key and event-time
// selectors, and runner settings small enough that a few thousand events cross many
// batches, watermarks and checkpoints.

#include "ecommerce/events.hpp"

#include <asyncstate/runner.hpp>

#include <cstdint>
#include <string>

namespace asyncstate::test {

inline std::string ecommerceKeyOf(const ecommerce::Event& e) { return e.userId; }
inline std::int64_t ecommerceTimeOf(const ecommerce::Event& e) { return e.timestamp; }

inline RunnerOptions ecommerceRunnerOptions() {
  RunnerOptions o;
  o.controller.log = nullptr;
  o.controller.batchSize = 50;
  o.controller.inFlightLimit = 200;
  o.watermarkEvery = 500;
  o.maxOutOfOrderness = 1000;
  return o;
}

}  // namespace asyncstate::test
