#pragma once
// StateIterator<T>: the entries of a map (or list) state, loaded lazily in chunks.
// Each chunk is a plain range (composes with range-v3 views); onNext() walks every
// element, fetching further chunks as derived requests of the same record.

#include <asyncstate/future.hpp>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace asyncstate {

template <class T>
class StateIterator;

namespace detail {
// Fetches the chunk after `cursor` for the current record's key.
template <class T>
class ChunkLoader {
 public:
  virtual ~ChunkLoader() = default;
  virtual StateFuture<StateIterator<T>> loadAfter(std::string cursor) const = 0;
};
}  // namespace detail

template <class T>
class StateIterator {
 public:
  StateIterator() = default;
  StateIterator(std::vector<T> chunk, bool more, std::string cursor, const detail::ChunkLoader<T>* loader)
      : chunk_(std::move(chunk)), more_(more), cursor_(std::move(cursor)), loader_(loader) {}

  // True when the state holds no element at all.
  bool isEmpty() const noexcept { return chunk_.empty() && !more_; }

  // The loaded chunk; further chunks arrive through onNext().
  const std::vector<T>& currentChunk() const noexcept { return chunk_; }
  bool hasMoreChunks() const noexcept { return more_; }

  // Calls f(element) for every element, loading chunks as needed.
  //  - f returns void: the result completes after the last element.
  //  - f returns StateFuture<U>: the result collects every U, in element order.
  template <class F>
  auto onNext(F f) && {
    using R = std::invoke_result_t<F&, T&>;
    if constexpr (std::is_void_v<R>) {
      for (T& element : chunk_) std::invoke(f, element);
      if (!more_) return completedVoidFuture();
      return loader_->loadAfter(std::move(cursor_)).thenCompose([f = std::move(f)](StateIterator next) mutable {
        return std::move(next).onNext(std::move(f));
      });
    } else {
      using U = typename std::decay_t<R>::value_type;
      static_assert(!std::is_void_v<U>,
                    "onNext: a function returning StateFuture<void> is not collected; "
                    "return a value or use thenAccept inside");
      std::vector<StateFuture<U>> results;
      results.reserve(chunk_.size());
      for (T& element : chunk_) results.push_back(std::invoke(f, element));
      StateFuture<std::vector<U>> mine = combineAll(std::move(results));
      if (!more_) return mine;
      auto rest = loader_->loadAfter(std::move(cursor_)).thenCompose([f = std::move(f)](StateIterator next) mutable {
        return std::move(next).onNext(std::move(f));
      });
      return std::move(mine).thenCombine(std::move(rest), [](std::vector<U> head, std::vector<U> tail) {
        head.insert(head.end(), std::make_move_iterator(tail.begin()), std::make_move_iterator(tail.end()));
        return head;
      });
    }
  }

  // Every element, loading all chunks.
  StateFuture<std::vector<T>> collect() && {
    if (!more_) return completedFuture(std::move(chunk_));
    return loader_->loadAfter(std::move(cursor_)).thenCompose([head = std::move(chunk_)](StateIterator next) mutable {
      return std::move(next).collect().thenApply([head = std::move(head)](std::vector<T> tail) mutable {
        head.insert(head.end(), std::make_move_iterator(tail.begin()), std::make_move_iterator(tail.end()));
        return std::move(head);
      });
    });
  }

 private:
  std::vector<T> chunk_;
  bool more_ = false;
  std::string cursor_;
  const detail::ChunkLoader<T>* loader_ = nullptr;
};

// All elements of an iterator future, as one vector.
template <class T>
StateFuture<std::vector<T>> toVector(StateFuture<StateIterator<T>>&& iterator) {
  return std::move(iterator).thenCompose([](StateIterator<T> it) { return std::move(it).collect(); });
}

}  // namespace asyncstate
