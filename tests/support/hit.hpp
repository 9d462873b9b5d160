#pragma once
// The record of the small jobs the backend tests run: a key and an event time.

#include <cstdint>
#include <string>

namespace asyncstate::test {

struct Hit {
  std::string key;
  std::int64_t timestamp = 0;
};

}  // namespace asyncstate::test
