#pragma once
// StateIterator<T>: the entries of a map (or list) state, loaded lazily in chunks.
// Each chunk is a plain range (composes with range-v3 views); onNext() walks every
// element, fetching further chunks as derived requests of the same record.
//
// Walking and collecting run in a loop over the chunks (detail::ChunkWalk), not as one
// nested future per chunk: a state of any size is iterated in constant stack depth and
// collected in linear time.

#include <asyncstate/future.hpp>
#include <asyncstate/state_backend.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace asyncstate {

template <class T>
class StateIterator;

namespace detail {
// Fetches the chunk at `cursor` (a Scan's nextCursor) for the current record's key.
template <class T>
class ChunkLoader {
 public:
  virtual ~ChunkLoader() = default;
  virtual StateFuture<StateIterator<T>> loadAfter(ScanCursor cursor) const = 0;
};

template <class T, class Policy>
class ChunkWalk;
}  // namespace detail

template <class T>
class StateIterator {
 public:
  StateIterator() = default;
  StateIterator(std::vector<T> chunk, bool more, ScanCursor cursor, const detail::ChunkLoader<T>* loader)
      : chunk_(std::move(chunk)), more_(more), cursor_(std::move(cursor)), loader_(loader) {}

  // True when the state holds no element at all.
  bool isEmpty() const noexcept { return chunk_.empty() && !more_; }

  // The loaded chunk; further chunks arrive through onNext().
  const std::vector<T>& currentChunk() const noexcept { return chunk_; }
  bool hasMoreChunks() const noexcept { return more_; }

  // Calls f(element) for every element, loading chunks as needed.
  //  - f returns void: the result completes after the last element.
  //  - f returns StateFuture<U>: the result collects every U, in element order, once
  //    every element's future completed; the first failure fails it and any further
  //    ones reach the error handler (as with combineAll).
  // The first failure -- an exception thrown by f, a failed chunk load, a failed element
  // future -- fails the result, and no further chunk is loaded.
  template <class F>
  auto onNext(F f) && {
    using R = std::invoke_result_t<F&, T&>;
    if constexpr (std::is_void_v<R>) {
      if (!more_) {
        // One chunk (a list, a small map): nothing to wait for.
        try {
          for (T& element : chunk_) std::invoke(f, element);
        } catch (...) {
          return failedFuture<void>(detail::continuationError(std::current_exception(), "StateIterator.onNext"));
        }
        return completedVoidFuture();
      }
      return walk(VisitEach<F>{std::move(f)});
    } else {
      using U = typename std::decay_t<R>::value_type;
      static_assert(!std::is_void_v<U>,
                    "onNext: a function returning StateFuture<void> is not collected; "
                    "return a value or use thenAccept inside");
      return walk(CollectResults<F, U>{std::move(f), {}});
    }
  }

  // Every element, loading all chunks.
  StateFuture<std::vector<T>> collect() && {
    if (!more_) return completedFuture(std::move(chunk_));
    return walk(CollectElements{});
  }

 private:
  template <class, class>
  friend class detail::ChunkWalk;

  // The policies a ChunkWalk applies to each chunk, and the result each yields.
  template <class F>
  struct VisitEach {
    using Value = void;
    F f;
    template <class Walk>
    void consume(std::vector<T>& chunk, Walk&) {
      for (T& element : chunk) std::invoke(f, element);
    }
    detail::Unit take() { return {}; }
  };

  struct CollectElements {
    using Value = std::vector<T>;
    std::vector<T> all;
    template <class Walk>
    void consume(std::vector<T>& chunk, Walk&) {
      if (all.empty()) {
        all = std::move(chunk);
      } else {
        all.insert(all.end(), std::make_move_iterator(chunk.begin()), std::make_move_iterator(chunk.end()));
      }
    }
    std::vector<T> take() { return std::move(all); }
  };

  template <class F, class U>
  struct CollectResults {
    using Value = std::vector<U>;
    F f;
    std::vector<std::optional<U>> results;  // indexed by element; filled as futures complete
    template <class Walk>
    void consume(std::vector<T>& chunk, Walk& walk) {
      for (T& element : chunk) {
        StateFuture<U> future = std::invoke(f, element);
        if (!future.valid()) throw FutureMisuseError("onNext: the function returned a consumed StateFuture");
        const std::size_t index = results.size();
        results.emplace_back();
        walk.hold();
        FutureAccess::observe(
            std::move(future),
            [&walk, index](StateFuture<U>&& ready) {
              FutureAccess::consumeReady(
                  std::move(ready), [&](U& value) { walk.policy().results[index].emplace(std::move(value)); },
                  [&](AsyncError& error) { walk.fail(std::move(error)); });
              walk.release();
            },
            "StateIterator.onNext");
      }
    }
    std::vector<U> take() {
      std::vector<U> out;
      out.reserve(results.size());
      for (std::optional<U>& value : results) out.push_back(std::move(*value));
      return out;
    }
  };

  template <class Policy>
  StateFuture<typename Policy::Value> walk(Policy policy) {
    return detail::ChunkWalk<T, Policy>::start(std::move(*this), std::move(policy));
  }

  std::vector<T> chunk_;
  bool more_ = false;
  ScanCursor cursor_;
  const detail::ChunkLoader<T>* loader_ = nullptr;
};

namespace detail {

// One iteration over every chunk of a StateIterator. A chunk that is already loaded is
// handled in the same loop turn; a pending one resumes the loop from its completion, so
// the stack never grows with the number of chunks. The result completes when the last
// chunk was consumed and every piece of work the policy holds (an element's future)
// finished. Owns itself: it is deleted right after completing the result.
template <class T, class Policy>
class ChunkWalk {
 public:
  using Value = typename Policy::Value;

  static StateFuture<Value> start(StateIterator<T>&& first, Policy policy) {
    auto* result = Core<Stored<Value>>::create(currentRuntime());
    StateFuture<Value> future(result);
    auto* walk = new ChunkWalk(result, std::move(policy));
    walk->run(std::move(first));
    return future;
  }

  Policy& policy() noexcept { return policy_; }

  // Work the result waits for, beyond the loading of chunks.
  void hold() noexcept { ++holds_; }
  void release() {
    if (--holds_ == 0) finish();
  }

  // The first failure fails the result; each later one reaches the error handler.
  void fail(AsyncError error) {
    if (error_) {
      currentRuntime().reportUnhandled(std::move(error));
    } else {
      error_ = std::make_unique<AsyncError>(std::move(error));
    }
  }

 private:
  ChunkWalk(Core<Stored<Value>>* result, Policy policy) : result_(result), policy_(std::move(policy)) {}

  void run(StateIterator<T>&& first) {
    StateIterator<T> current = std::move(first);
    for (;;) {
      StateFuture<StateIterator<T>> next;
      try {
        policy_.consume(current.chunk_, *this);
        if (!current.more_ || error_) break;
        next = current.loader_->loadAfter(std::move(current.cursor_));
      } catch (...) {
        fail(continuationError(std::current_exception(), "StateIterator.onNext"));
        break;
      }
      if (!next.isDone()) {
        FutureAccess::observe(
            std::move(next), [this](StateFuture<StateIterator<T>>&& ready) { arrived(std::move(ready)); },
            "StateIterator.onNext");
        return;
      }
      if (!take(std::move(next), current)) break;
    }
    release();  // the hold the loading of chunks kept
  }

  void arrived(StateFuture<StateIterator<T>>&& ready) {
    StateIterator<T> next;
    if (take(std::move(ready), next)) {
      run(std::move(next));
    } else {
      release();
    }
  }

  bool take(StateFuture<StateIterator<T>>&& ready, StateIterator<T>& into) {
    bool loaded = false;
    FutureAccess::consumeReady(
        std::move(ready),
        [&](StateIterator<T>& chunk) {
          into = std::move(chunk);
          loaded = true;
        },
        [&](AsyncError& error) { fail(std::move(error)); });
    return loaded;
  }

  void finish() {
    Core<Stored<Value>>* result = result_;
    if (error_) {
      result->setError(std::move(error_));
    } else {
      result->setValue(policy_.take());
    }
    delete this;
    result->release();
  }

  Core<Stored<Value>>* result_;
  Policy policy_;
  std::unique_ptr<AsyncError> error_;
  std::size_t holds_ = 1;  // the loading of chunks
};

}  // namespace detail

// All elements of an iterator future, as one vector.
template <class T>
StateFuture<std::vector<T>> toVector(StateFuture<StateIterator<T>>&& iterator) {
  return std::move(iterator).thenCompose([](StateIterator<T> it) { return std::move(it).collect(); });
}

}  // namespace asyncstate
