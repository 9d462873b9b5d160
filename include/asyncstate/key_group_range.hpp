#pragma once
// Key-group ranges: how a job at parallelism K splits the kMaxKeyGroups key groups among
// its K subtasks. As Flink's KeyGroupRangeAssignment does, every subtask owns one
// contiguous range, the ranges are as equal as integer division allows, and a key group's
// owner is computed, never looked up: so a checkpoint taken at K can be cut into the
// ranges of any K' by key group alone.

#include <asyncstate/state_backend.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace asyncstate {

// The key groups [first, last], both included.
struct KeyGroupRange {
  std::uint32_t first = 0;
  std::uint32_t last = kMaxKeyGroups - 1;

  bool contains(std::uint32_t keyGroup) const noexcept { return keyGroup >= first && keyGroup <= last; }
  bool overlaps(const KeyGroupRange& other) const noexcept { return first <= other.last && other.first <= last; }
  std::uint32_t size() const noexcept { return last - first + 1; }
  std::string toString() const { return "[" + std::to_string(first) + ", " + std::to_string(last) + "]"; }
  friend bool operator==(const KeyGroupRange&, const KeyGroupRange&) = default;
};

// Parallelism ranges from 1 (one subtask owns everything) to kMaxKeyGroups (one key group
// each): a subtask without a key group would receive nothing.
inline void requireValidParallelism(std::uint32_t parallelism) {
  if (parallelism == 0 || parallelism > kMaxKeyGroups) {
    throw std::invalid_argument("parallelism " + std::to_string(parallelism) + " is out of range: it must be 1 to " +
                                std::to_string(kMaxKeyGroups) + " (the number of key groups)");
  }
}

// Flink's computeKeyGroupRangeForOperatorIndex.
inline KeyGroupRange keyGroupRangeOf(std::uint32_t subtask, std::uint32_t parallelism) {
  requireValidParallelism(parallelism);
  if (subtask >= parallelism) {
    throw std::invalid_argument("subtask " + std::to_string(subtask) + " does not exist at parallelism " +
                                std::to_string(parallelism));
  }
  return {(subtask * kMaxKeyGroups + parallelism - 1) / parallelism, ((subtask + 1) * kMaxKeyGroups - 1) / parallelism};
}

// Flink's computeOperatorIndexForKeyGroup: the subtask whose range holds `keyGroup`.
inline std::uint32_t subtaskOfKeyGroup(std::uint32_t keyGroup, std::uint32_t parallelism) noexcept {
  return keyGroup * parallelism / kMaxKeyGroups;
}

}  // namespace asyncstate
