#pragma once
// Keyed states scoped to the current record's key: ValueState, ListState, MapState,
// ReducingState, AggregatingState, with Flink State V2's async methods and the
// blocking sync methods kept for migration.

#include <asyncstate/controller.hpp>
#include <asyncstate/future.hpp>
#include <asyncstate/iterator.hpp>
#include <asyncstate/serializer.hpp>
#include <asyncstate/state_backend.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

// Marks the blocking sync methods so the analyzer (asyncstate-sync-state-access) can
// flag them in async code, and wrapping projects can mark their own blocking calls.
#if defined(__clang__)
#define ASYNCSTATE_BLOCKING [[clang::annotate("asyncstate::blocking")]]
#else
#define ASYNCSTATE_BLOCKING
#endif

namespace asyncstate {

// --- descriptors --------------------------------------------------------------

namespace detail {
template <class V>
concept Storable = requires { sizeof(Serializer<V>); };
}  // namespace detail

// Said where the state is declared, instead of "incomplete type Serializer" deep inside.
#define ASYNCSTATE_REQUIRE_STORABLE(V)                                                                               \
  static_assert(detail::Storable<V>,                                                                                 \
                "a state's value (or map key) type needs an asyncstate::Serializer: for a struct, write "            \
                "ASYNCSTATE_SERIALIZABLE(Type, field1, field2, ...) at global namespace scope after its definition " \
                "(or specialize asyncstate::Serializer<Type>)")

template <class V>
struct ValueStateDescriptor {
  ASYNCSTATE_REQUIRE_STORABLE(V);
  explicit ValueStateDescriptor(std::string stateName) : name(std::move(stateName)) {}
  std::string name;
};

template <class V>
struct ListStateDescriptor {
  ASYNCSTATE_REQUIRE_STORABLE(V);
  explicit ListStateDescriptor(std::string stateName) : name(std::move(stateName)) {}
  std::string name;
};

template <class UK, class UV>
struct MapStateDescriptor {
  ASYNCSTATE_REQUIRE_STORABLE(UK);
  ASYNCSTATE_REQUIRE_STORABLE(UV);
  explicit MapStateDescriptor(std::string stateName) : name(std::move(stateName)) {}
  std::string name;
};

template <class V>
struct ReducingStateDescriptor {
  ASYNCSTATE_REQUIRE_STORABLE(V);
  ReducingStateDescriptor(std::string stateName, std::function<V(const V&, const V&)> reduceFunction)
      : name(std::move(stateName)), reduce(std::move(reduceFunction)) {}
  std::string name;
  std::function<V(const V&, const V&)> reduce;
};

template <class In, class Acc, class Out>
struct AggregatingStateDescriptor {
  ASYNCSTATE_REQUIRE_STORABLE(Acc);
  AggregatingStateDescriptor(std::string stateName, std::function<Acc()> createAccumulatorFunction,
                             std::function<Acc(const In&, Acc)> addFunction,
                             std::function<Out(const Acc&)> resultFunction)
      : name(std::move(stateName)),
        createAccumulator(std::move(createAccumulatorFunction)),
        add(std::move(addFunction)),
        getResult(std::move(resultFunction)) {}
  std::string name;
  std::function<Acc()> createAccumulator;
  std::function<Acc(const In&, Acc)> add;
  std::function<Out(const Acc&)> getResult;
};

#undef ASYNCSTATE_REQUIRE_STORABLE

namespace detail {

// What every state shares: its registration and the controller its requests go to.
class StateBase {
 public:
  StateBase(AsyncExecutionController& controller, const std::string& name, StateKind kind)
      : controller_(&controller), handle_(controller.registerState(name, kind)) {
    controller.linkState(link_);
  }
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;
  // The library's own continuations (an add's read-modify-write, its sequencing) use
  // the state: what is in flight finishes, or is given up, before it goes -- unless the
  // controller went first (and drained then).
  ~StateBase() {
    if (link_.linked()) controller_->stateGoing(link_, handle_.name);
  }

  const std::string& name() const noexcept { return handle_.name; }

 protected:
  template <class R>
  StateFuture<R> request(RequestType type, const char* operation, AsyncExecutionController::Decoder<R> decode,
                         std::string userKey = {}, std::string value = {}, const void* context = nullptr) const {
    StateRequest r;
    r.type = type;
    r.userKey = std::move(userKey);
    r.value = std::move(value);
    return controller_->submit<R>(std::move(r), handle_, operation, decode, context);
  }

  template <class T>
  Stored<T> wait(StateFuture<T>&& future) const {
    return controller_->await(std::move(future));
  }

  static void ignoreResult(StateResult&, const void*) {}
  static bool wasFound(StateResult& r, const void*) { return r.found; }
  template <class V>
  static std::optional<V> decodeOptional(StateResult& r, const void*) {
    if (!r.found) return std::nullopt;
    return decode<V>(r.value);
  }

  AsyncExecutionController* controller_;
  StateHandle handle_;
  detail::ControllerLink link_;
};

// Orders the read-modify-writes of one state per key. Per-key order keeps other records
// out, but one record may start several adds without chaining them; each would read
// the value from before the others and all but one update would be lost. An add waits
// for the previous add of its key instead (a gate future that never fails), so every
// add reads what the one before it wrote. Keys with no add in flight hold nothing.
class ReadModifyWriteSequencer {
 public:
  template <class Op>
  StateFuture<void> run(AsyncExecutionController& controller, const char* operation, Op op) const {
    const std::string& key = controller.currentRecord(operation).keyBytes();
    Entry& entry = entries_[key];
    StateFuture<void> previous = std::move(entry.gate);
    auto* gate = Core<Unit>::create(currentRuntime());
    entry.gate = StateFuture<void>(gate);
    const std::uint64_t ticket = ++entry.ticket;
    StateFuture<void> work = previous.valid() ? std::move(previous).thenCompose(std::move(op)) : op();
    return FutureAccess::afterwards(
        std::move(work),
        [this, key, ticket, open = Producer<Unit>(gate)]() mutable {
          open.setValue(Unit{});
          auto it = entries_.find(key);
          if (it != entries_.end() && it->second.ticket == ticket) entries_.erase(it);
        },
        operation);
  }

 private:
  struct Entry {
    StateFuture<void> gate;  // completes when the newest add of the key has finished
    std::uint64_t ticket = 0;
  };
  mutable std::unordered_map<std::string, Entry> entries_;
};

// List blobs are concatenated frames (u32 length + element bytes), so Append is a
// plain byte append on every backend.
template <class V>
void appendFrame(std::string& out, const V& value) {
  const std::string bytes = encode(value);
  Serializer<std::uint32_t>::write(out, static_cast<std::uint32_t>(bytes.size()));
  out += bytes;
}

template <class V>
std::vector<V> decodeFrames(std::string_view blob) {
  std::vector<V> out;
  while (!blob.empty()) {
    const std::uint32_t n = Serializer<std::uint32_t>::read(blob);
    requireBytes(blob, n, "a list element");
    out.push_back(decode<V>(blob.substr(0, n)));
    blob.remove_prefix(n);
  }
  return out;
}

}  // namespace detail

template <class V>
class ValueState : private detail::StateBase {
 public:
  ValueState(AsyncExecutionController& controller, const ValueStateDescriptor<V>& descriptor)
      : StateBase(controller, descriptor.name, StateKind::Value) {}
  using StateBase::name;

  StateFuture<std::optional<V>> asyncValue() const {
    return request<std::optional<V>>(RequestType::Get, "ValueState.asyncValue", &decodeOptional<V>);
  }
  StateFuture<void> asyncUpdate(const V& value) const {
    return request<void>(RequestType::Put, "ValueState.asyncUpdate", &ignoreResult, {}, encode(value));
  }
  StateFuture<void> asyncClear() const {
    return request<void>(RequestType::Clear, "ValueState.asyncClear", &ignoreResult);
  }

  ASYNCSTATE_BLOCKING std::optional<V> value() const { return wait(asyncValue()); }
  ASYNCSTATE_BLOCKING void update(const V& value) const { wait(asyncUpdate(value)); }
  ASYNCSTATE_BLOCKING void clear() const { wait(asyncClear()); }
};

template <class V>
class ListState : private detail::StateBase, private detail::ChunkLoader<V> {
 public:
  ListState(AsyncExecutionController& controller, const ListStateDescriptor<V>& descriptor)
      : StateBase(controller, descriptor.name, StateKind::List) {}
  using StateBase::name;

  // The whole list arrives in one read (it is one blob on every backend).
  StateFuture<StateIterator<V>> asyncGet() const {
    return request<StateIterator<V>>(RequestType::Get, "ListState.asyncGet", &decodeList, {}, {}, this);
  }
  StateFuture<void> asyncAdd(const V& value) const {
    std::string frame;
    detail::appendFrame(frame, value);
    return request<void>(RequestType::Append, "ListState.asyncAdd", &ignoreResult, {}, std::move(frame));
  }
  StateFuture<void> asyncAddAll(const std::vector<V>& values) const {
    if (values.empty()) return completedVoidFuture();
    return request<void>(RequestType::Append, "ListState.asyncAddAll", &ignoreResult, {}, frames(values));
  }
  StateFuture<void> asyncUpdate(const std::vector<V>& values) const {
    if (values.empty()) return asyncClear();
    return request<void>(RequestType::Put, "ListState.asyncUpdate", &ignoreResult, {}, frames(values));
  }
  StateFuture<void> asyncClear() const {
    return request<void>(RequestType::Clear, "ListState.asyncClear", &ignoreResult);
  }

  ASYNCSTATE_BLOCKING std::vector<V> get() const { return wait(toVector(asyncGet())); }
  ASYNCSTATE_BLOCKING void add(const V& value) const { wait(asyncAdd(value)); }
  ASYNCSTATE_BLOCKING void addAll(const std::vector<V>& values) const { wait(asyncAddAll(values)); }
  ASYNCSTATE_BLOCKING void update(const std::vector<V>& values) const { wait(asyncUpdate(values)); }
  ASYNCSTATE_BLOCKING void clear() const { wait(asyncClear()); }

 private:
  static std::string frames(const std::vector<V>& values) {
    std::string out;
    for (const V& v : values) detail::appendFrame(out, v);
    return out;
  }
  static StateIterator<V> decodeList(StateResult& r, const void* self) {
    return StateIterator<V>(r.found ? detail::decodeFrames<V>(r.value) : std::vector<V>{}, false, {},
                            static_cast<const ListState*>(self));
  }
  StateFuture<StateIterator<V>> loadAfter(ScanCursor) const override { return completedFuture(StateIterator<V>()); }
};

template <class UK, class UV>
class MapState : private detail::StateBase {
 public:
  MapState(AsyncExecutionController& controller, const MapStateDescriptor<UK, UV>& descriptor)
      : StateBase(controller, descriptor.name, StateKind::Map), chunkSize_(controller.options().iteratorChunkSize) {}
  using StateBase::name;

  StateFuture<std::optional<UV>> asyncGet(const UK& key) const {
    return request<std::optional<UV>>(RequestType::Get, "MapState.asyncGet", &decodeOptional<UV>, encode(key));
  }
  StateFuture<void> asyncPut(const UK& key, const UV& value) const {
    return request<void>(RequestType::Put, "MapState.asyncPut", &ignoreResult, encode(key), encode(value));
  }
  template <class Entries = std::map<UK, UV>>
  StateFuture<void> asyncPutAll(const Entries& entries) const {
    std::vector<StateFuture<void>> puts;
    for (const auto& [k, v] : entries) puts.push_back(asyncPut(k, v));
    return combineAll(std::move(puts));
  }
  StateFuture<void> asyncRemove(const UK& key) const {
    return request<void>(RequestType::Delete, "MapState.asyncRemove", &ignoreResult, encode(key));
  }
  StateFuture<bool> asyncContains(const UK& key) const {
    return request<bool>(RequestType::Get, "MapState.asyncContains", &wasFound, encode(key));
  }
  StateFuture<StateIterator<std::pair<UK, UV>>> asyncEntries() const { return entriesLoader_.loadAfter({}); }
  StateFuture<StateIterator<UK>> asyncKeys() const { return keysLoader_.loadAfter({}); }
  StateFuture<StateIterator<UV>> asyncValues() const { return valuesLoader_.loadAfter({}); }
  StateFuture<bool> asyncIsEmpty() const {
    StateRequest r;
    r.type = RequestType::Scan;
    r.limit = 1;
    return controller_->submit<bool>(std::move(r), handle_, "MapState.asyncIsEmpty",
                                     [](StateResult& result, const void*) { return result.entries.empty(); });
  }
  StateFuture<void> asyncClear() const {
    return request<void>(RequestType::Clear, "MapState.asyncClear", &ignoreResult);
  }

  ASYNCSTATE_BLOCKING std::optional<UV> get(const UK& key) const { return wait(asyncGet(key)); }
  ASYNCSTATE_BLOCKING void put(const UK& key, const UV& value) const { wait(asyncPut(key, value)); }
  template <class Entries = std::map<UK, UV>>
  ASYNCSTATE_BLOCKING void putAll(const Entries& entries) const {
    wait(asyncPutAll(entries));
  }
  ASYNCSTATE_BLOCKING void remove(const UK& key) const { wait(asyncRemove(key)); }
  ASYNCSTATE_BLOCKING bool contains(const UK& key) const { return wait(asyncContains(key)); }
  ASYNCSTATE_BLOCKING std::vector<std::pair<UK, UV>> entries() const { return wait(toVector(asyncEntries())); }
  ASYNCSTATE_BLOCKING std::vector<UK> keys() const { return wait(toVector(asyncKeys())); }
  ASYNCSTATE_BLOCKING std::vector<UV> values() const { return wait(toVector(asyncValues())); }
  ASYNCSTATE_BLOCKING bool isEmpty() const { return wait(asyncIsEmpty()); }
  ASYNCSTATE_BLOCKING void clear() const { wait(asyncClear()); }

 private:
  // One loader per projection: each turns a Scan chunk into its element type.
  template <class T, T (*Project)(std::pair<std::string, std::string>&)>
  class Loader final : public detail::ChunkLoader<T> {
   public:
    explicit Loader(const MapState* state) : state_(state) {}
    StateFuture<StateIterator<T>> loadAfter(ScanCursor cursor) const override {
      StateRequest r;
      r.type = RequestType::Scan;
      r.cursor = std::move(cursor);
      r.limit = state_->chunkSize_;
      return state_->controller_->template submit<StateIterator<T>>(std::move(r), state_->handle_, "MapState.iterate",
                                                                    &decodeChunk, this);
    }

   private:
    static StateIterator<T> decodeChunk(StateResult& result, const void* self) {
      std::vector<T> chunk;
      chunk.reserve(result.entries.size());
      for (auto& entry : result.entries) chunk.push_back(Project(entry));
      return StateIterator<T>(std::move(chunk), result.more, std::move(result.nextCursor),
                              static_cast<const Loader*>(self));
    }
    const MapState* state_;
  };

  static std::pair<UK, UV> projectEntry(std::pair<std::string, std::string>& e) {
    UK k = decode<UK>(e.first);
    return {std::move(k), decode<UV>(e.second)};
  }
  static UK projectKey(std::pair<std::string, std::string>& e) { return decode<UK>(e.first); }
  static UV projectValue(std::pair<std::string, std::string>& e) { return decode<UV>(e.second); }

  std::uint32_t chunkSize_;
  Loader<std::pair<UK, UV>, &MapState::projectEntry> entriesLoader_{this};
  Loader<UK, &MapState::projectKey> keysLoader_{this};
  Loader<UV, &MapState::projectValue> valuesLoader_{this};
};

template <class V>
class ReducingState : private detail::StateBase {
 public:
  ReducingState(AsyncExecutionController& controller, const ReducingStateDescriptor<V>& descriptor)
      : StateBase(controller, descriptor.name, StateKind::Reducing), reduce_(descriptor.reduce) {}
  using StateBase::name;

  StateFuture<std::optional<V>> asyncGet() const {
    return request<std::optional<V>>(RequestType::Get, "ReducingState.asyncGet", &decodeOptional<V>);
  }
  // A read followed by a write; adds of one key run one after the other, so two adds
  // that were not chained both land.
  StateFuture<void> asyncAdd(const V& value) const {
    return sequencer_.run(*controller_, "ReducingState.asyncAdd", [this, value] {
      return asyncGet().thenCompose([this, value](std::optional<V> current) {
        V next = current ? reduce_(*current, value) : value;
        return request<void>(RequestType::Put, "ReducingState.asyncAdd", &ignoreResult, {}, encode(next));
      });
    });
  }
  StateFuture<void> asyncClear() const {
    return request<void>(RequestType::Clear, "ReducingState.asyncClear", &ignoreResult);
  }

  ASYNCSTATE_BLOCKING std::optional<V> get() const { return wait(asyncGet()); }
  ASYNCSTATE_BLOCKING void add(const V& value) const { wait(asyncAdd(value)); }
  ASYNCSTATE_BLOCKING void clear() const { wait(asyncClear()); }

 private:
  std::function<V(const V&, const V&)> reduce_;
  detail::ReadModifyWriteSequencer sequencer_;
};

template <class In, class Acc, class Out>
class AggregatingState : private detail::StateBase {
 public:
  AggregatingState(AsyncExecutionController& controller, const AggregatingStateDescriptor<In, Acc, Out>& descriptor)
      : StateBase(controller, descriptor.name, StateKind::Aggregating), function_(descriptor) {}
  using StateBase::name;

  StateFuture<std::optional<Out>> asyncGet() const {
    return request<std::optional<Acc>>(RequestType::Get, "AggregatingState.asyncGet", &decodeOptional<Acc>)
        .thenApply([this](std::optional<Acc> acc) -> std::optional<Out> {
          if (!acc) return std::nullopt;
          return function_.getResult(*acc);
        });
  }
  // As ReducingState::asyncAdd: adds of one key run one after the other.
  StateFuture<void> asyncAdd(const In& value) const {
    return sequencer_.run(*controller_, "AggregatingState.asyncAdd", [this, value] {
      return request<std::optional<Acc>>(RequestType::Get, "AggregatingState.asyncAdd", &decodeOptional<Acc>)
          .thenCompose([this, value](std::optional<Acc> acc) {
            Acc next = function_.add(value, acc ? std::move(*acc) : function_.createAccumulator());
            return request<void>(RequestType::Put, "AggregatingState.asyncAdd", &ignoreResult, {}, encode(next));
          });
    });
  }
  StateFuture<void> asyncClear() const {
    return request<void>(RequestType::Clear, "AggregatingState.asyncClear", &ignoreResult);
  }

  ASYNCSTATE_BLOCKING std::optional<Out> get() const { return wait(asyncGet()); }
  ASYNCSTATE_BLOCKING void add(const In& value) const { wait(asyncAdd(value)); }
  ASYNCSTATE_BLOCKING void clear() const { wait(asyncClear()); }

 private:
  AggregatingStateDescriptor<In, Acc, Out> function_;
  detail::ReadModifyWriteSequencer sequencer_;
};

}  // namespace asyncstate
