#pragma once
// State requests waiting to be sent to the backend as one batch: sent when the batch is
// full, when its buffer timeout expires, or when someone has to wait for them.

#include <asyncstate/state_backend.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

namespace asyncstate::detail {

template <class = void>
class BasicRequestBuffer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit BasicRequestBuffer(std::size_t batchSize) : batchSize_(batchSize) {}

  // Returns whether the batch is full.
  bool add(StateRequest&& request) {
    requests_.push_back(std::move(request));
    return requests_.size() >= batchSize_;
  }

  bool empty() const noexcept { return requests_.empty(); }
  std::size_t size() const noexcept { return requests_.size(); }

  // When the buffered batch must be sent; unset until the owner stamps it.
  std::optional<TimePoint> deadline() const noexcept { return deadline_; }
  void setDeadline(TimePoint deadline) noexcept { deadline_ = deadline; }

  // Hands everything buffered to send(batch), in batches of at most the batch size
  // (requests derived while draining may overdraw it). Returns the number of batches.
  template <class Send>
  std::size_t sendAll(Send&& send) {
    if (requests_.empty()) return 0;
    std::vector<StateRequest> pending = std::exchange(requests_, {});
    deadline_.reset();
    // The backend keeps the old buffer. Size the next one for a typical batch, so that
    // filling it does not move requests around; a small flush (a drain) only lowers the
    // estimate gradually, and sync access (one request a batch) lowers it to one.
    expected_ = std::max(std::min(pending.size(), batchSize_), expected_ - expected_ / 2);
    requests_.reserve(expected_);
    if (pending.size() <= batchSize_) {
      send(std::move(pending));
      return 1;
    }
    // Every UDF includes this header, so it cuts batches with a plain loop rather than
    // paying range-v3's compile time in every translation unit.
    std::size_t batches = 0;
    for (auto first = pending.begin(); first != pending.end(); ++batches) {
      const auto last = first + static_cast<std::ptrdiff_t>(std::min(batchSize_, std::size_t(pending.end() - first)));
      send(std::vector<StateRequest>(std::make_move_iterator(first), std::make_move_iterator(last)));
      first = last;
    }
    return batches;
  }

 private:
  std::size_t batchSize_;
  std::size_t expected_ = 0;  // requests the next batch is expected to hold
  std::vector<StateRequest> requests_;
  std::optional<TimePoint> deadline_;
};
using RequestBuffer = BasicRequestBuffer<>;  // a template so its members compile only where used (include cost)

}  // namespace asyncstate::detail
