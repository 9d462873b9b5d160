#pragma once
// StateRegistry: the table of registered states every backend keeps -- name, kind and
// whatever the backend stores per state (a hash table, a column family handle), under
// the id registerState() returned. It holds the rules of the StateBackend contract in
// one place, so every backend gives the same answers and the same errors:
//  - registering is idempotent per name; the same name with another kind is a
//    std::invalid_argument naming both kinds;
//  - a request naming an id that was never returned fails with UnknownStateError
//    (rejectInvalid), and so does a Scan that could never progress (limit 0), while the
//    rest of its batch runs;
//  - ids are handed out densely in registration order, which is also the order
//    snapshot() walks; restore() checks every savepoint state's kind against the
//    registered one before anything is deleted (requireKindsOf) and registers the
//    states it did not know.

#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asyncstate {

// A request named a state id its backend never returned from registerState().
class UnknownStateError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The per-state data of a backend that needs none besides name and kind.
struct NoStateData {};

template <class Data = NoStateData>
class StateRegistry {
 public:
  struct State {
    std::string name;
    StateKind kind;
    Data data;
  };

  // `owner` starts every error message ("rocksdb /var/lib/job"), so that an error names
  // the backend that raised it.
  explicit StateRegistry(std::string owner) : owner_(std::move(owner)) {}

  const std::string& owner() const noexcept { return owner_; }
  std::size_t size() const noexcept { return states_.size(); }
  bool empty() const noexcept { return states_.empty(); }

  // In registration order: ids 0, 1, ...
  auto begin() noexcept { return states_.begin(); }
  auto end() noexcept { return states_.end(); }
  auto begin() const noexcept { return states_.begin(); }
  auto end() const noexcept { return states_.end(); }

  bool contains(std::uint32_t id) const noexcept { return id < states_.size(); }

  State& at(std::uint32_t id) {
    if (!contains(id)) throw unknownId(id);
    return states_[id];
  }
  const State& at(std::uint32_t id) const {
    if (!contains(id)) throw unknownId(id);
    return states_[id];
  }

  // The name of `id` for error messages: also for an id that is not registered.
  std::string nameOf(std::uint32_t id) const {
    return contains(id) ? states_[id].name : "#" + std::to_string(id) + " (not registered)";
  }

  std::optional<std::uint32_t> idOf(std::string_view name) const {
    for (std::uint32_t id = 0; id < states_.size(); ++id) {
      if (states_[id].name == name) return id;
    }
    return std::nullopt;
  }

  const State* find(std::string_view name) const {
    const std::optional<std::uint32_t> id = idOf(name);
    return id ? &states_[*id] : nullptr;
  }

  // The id of `name` when it is registered as `kind`; nullopt when it is not registered;
  // std::invalid_argument when it is registered as another kind.
  std::optional<std::uint32_t> existing(const std::string& name, StateKind kind) const {
    const std::optional<std::uint32_t> id = idOf(name);
    if (id && states_[*id].kind != kind) {
      throw std::invalid_argument(owner_ + ": state '" + name + "' is already registered as " +
                                  toString(states_[*id].kind) + ", not " + toString(kind));
    }
    return id;
  }

  // registerState() of a backend: the existing id, or a new one. `create(name, kind)`
  // runs only for a new name and returns its Data, after doing what the backend records
  // elsewhere (a kind row, a column family); when it throws, nothing is registered.
  template <class Create>
    requires std::invocable<Create&, const std::string&, StateKind>
  std::uint32_t add(const std::string& name, StateKind kind, Create&& create) {
    if (const std::optional<std::uint32_t> id = existing(name, kind)) return *id;
    Data data = create(name, kind);
    states_.push_back(State{name, kind, std::move(data)});
    return static_cast<std::uint32_t>(states_.size() - 1);
  }

  std::uint32_t add(const std::string& name, StateKind kind)
    requires std::default_initializable<Data>
  {
    return add(name, kind, [](const std::string&, StateKind) { return Data{}; });
  }

  void clear() noexcept { states_.clear(); }

  // Restore and checkpoint checks: a std::invalid_argument when `source` ("savepoint",
  // "checkpoint /x") holds `name` as another kind than it is registered with.
  void requireKind(const std::string& name, StateKind kind, std::string_view source) const {
    const State* state = find(name);
    if (state != nullptr && state->kind != kind) {
      throw std::invalid_argument(owner_ + ": " + std::string(source) + " has state '" + name + "' as " +
                                  toString(kind) + " but it is registered as " + toString(state->kind) +
                                  "; nothing was restored");
    }
  }

  // Every state of `in` against the registered ones, before restore() changes anything.
  void requireKindsOf(const Savepoint& in) const {
    for (const auto& [name, state] : in.states()) requireKind(name, state.kind, "savepoint");
  }

  // Fails each request of `batch` that names no registered state, or that is a Scan
  // with limit 0 (it could never progress), with UnknownStateError / invalid_argument,
  // and removes it from `batch`; the others keep their order. Returns how many failed.
  std::size_t rejectInvalid(std::vector<StateRequest>& batch, CompletionSink& sink) const {
    std::size_t rejected = 0;
    std::erase_if(batch, [&](const StateRequest& request) {
      std::exception_ptr error;
      if (!contains(request.stateId)) {
        error = std::make_exception_ptr(unknownId(request.stateId, request.type));
      } else if (request.type == RequestType::Scan && request.limit == 0) {
        error = std::make_exception_ptr(std::invalid_argument(
            owner_ + ": scan of state '" + states_[request.stateId].name + "' with limit 0 can return nothing"));
      } else {
        return false;
      }
      ++rejected;
      sink.fail(request.ticket, std::move(error));
      return true;
    });
    return rejected;
  }

 private:
  UnknownStateError unknownId(std::uint32_t id, std::optional<RequestType> type = std::nullopt) const {
    return UnknownStateError(owner_ + ": " + (type ? std::string(toString(*type)) + " on " : std::string()) +
                             "unknown state id " + std::to_string(id) + " (" + std::to_string(states_.size()) +
                             " states registered; ids come from registerState)");
  }

  std::string owner_;
  std::vector<State> states_;
};

}  // namespace asyncstate
