#pragma once
// The embedded default backend: hash tables in the task process, answering every
// request inline. Stores the same encoded bytes as the remote backends, so its
// savepoints restore anywhere.

#include <asyncstate/lightweight_checkpoint.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>
#include <asyncstate/state_registry.hpp>

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace asyncstate {

// A class template only so that its code is compiled by the translation units that use it,
// not by every UDF that includes the umbrella header; use it by its plain name below.
template <class = void>
class BasicMemoryBackend final : public StateBackend {
 public:
  // Measured on the example job (bench/analysis.md): from 32 to 128 the async job costs
  // the same; at Flink's 1000 it costs 10-20 % more.
  static constexpr std::size_t kPreferredBatchSize = 64;

  // `preferredBatchSize` 0 takes whatever batch the controller sends (a test of batching
  // itself needs that).
  BasicMemoryBackend() = default;
  explicit BasicMemoryBackend(std::size_t preferredBatchSize) : preferredBatchSize_(preferredBatchSize) {}

  std::string name() const override { return "memory"; }
  std::size_t preferredBatchSize() const override { return preferredBatchSize_; }

  std::uint32_t registerState(const std::string& stateName, StateKind kind) override {
    return tables_.add(stateName, kind);
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    ++stats_.batches;
    stats_.requests += batch.size();
    stats_.failures += tables_.rejectInvalid(batch, sink);
    for (StateRequest& request : batch) {
      StateResult result;
      execute(request, result);
      sink.complete(request.ticket, std::move(result));
    }
  }

  void snapshot(Savepoint& out) override {
    for (const auto& [stateName, kind, table] : tables_) {
      out.declare(stateName, kind);
      for (const auto& [key, value] : table.values) out.add(stateName, kind, key, "", value);
      for (const auto& [key, entries] : table.maps) {
        for (const auto& [userKey, value] : entries) out.add(stateName, kind, key, userKey, value);
      }
    }
  }

  void restore(const Savepoint& in) override {
    // Validate before touching anything: a rejected savepoint leaves the data as it was.
    refuseLightweightCheckpoint(in.metadata(), "memory");
    tables_.requireKindsOf(in);
    for (auto& state : tables_) state.data = Table{};
    for (const auto& [stateName, state] : in.states()) {
      Table& table = tables_.at(registerState(stateName, state.kind)).data;
      for (const SavepointEntry& e : state.entries) {
        if (state.kind == StateKind::Map) {
          table.maps[e.key][e.userKey] = e.value;
        } else {
          table.values[e.key] = e.value;
        }
      }
    }
  }

  BackendStats stats() const override { return stats_; }

 private:
  struct Table {
    std::unordered_map<std::string, std::string> values;                       // value, list, reducing, aggregating
    std::unordered_map<std::string, std::map<std::string, std::string>> maps;  // map states
  };

  void execute(StateRequest& request, StateResult& result) {
    auto& state = tables_.at(request.stateId);
    Table& table = state.data;
    const bool isMap = state.kind == StateKind::Map;
    switch (request.type) {
      case RequestType::Get:
        if (isMap) {
          auto it = table.maps.find(request.key);
          if (it == table.maps.end()) break;
          auto entry = it->second.find(request.userKey);
          if (entry == it->second.end()) break;
          result.found = true;
          result.value = entry->second;
        } else {
          auto it = table.values.find(request.key);
          if (it == table.values.end()) break;
          result.found = true;
          result.value = it->second;
        }
        break;
      case RequestType::Put:
        if (isMap) {
          table.maps[request.key][std::move(request.userKey)] = std::move(request.value);
        } else {
          table.values[std::move(request.key)] = std::move(request.value);
        }
        break;
      case RequestType::Delete:
        if (isMap) {
          auto it = table.maps.find(request.key);
          if (it == table.maps.end()) break;
          it->second.erase(request.userKey);
          if (it->second.empty()) table.maps.erase(it);
        } else {
          table.values.erase(request.key);
        }
        break;
      case RequestType::Append: table.values[std::move(request.key)].append(request.value); break;
      case RequestType::Scan: {
        bool more = false;
        auto it = table.maps.find(request.key);
        if (it != table.maps.end() && !request.cursor.atEnd()) {
          auto entry =
              request.cursor.atStart() ? it->second.begin() : it->second.upper_bound(request.cursor.lastUserKey());
          for (; entry != it->second.end() && result.entries.size() < request.limit; ++entry) {
            result.entries.emplace_back(entry->first, entry->second);
          }
          more = entry != it->second.end();
        }
        result.finishScan(request.cursor, more);
        break;
      }
      case RequestType::Clear:
        if (isMap) {
          table.maps.erase(request.key);
        } else {
          table.values.erase(request.key);
        }
        break;
    }
  }

  StateRegistry<Table> tables_{"memory"};
  BackendStats stats_;
  std::size_t preferredBatchSize_ = kPreferredBatchSize;
};

using MemoryBackend = BasicMemoryBackend<>;

}  // namespace asyncstate
