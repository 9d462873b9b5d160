#pragma once
// The embedded default backend: hash tables in the task process, answering every
// request inline. Stores the same encoded bytes as the remote backends, so its
// savepoints restore anywhere.

#include <asyncstate/savepoint.hpp>
#include <asyncstate/state_backend.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace asyncstate {

// A class template only so that its code is compiled by the translation units that use it,
// not by every UDF that includes the umbrella header; use it by its plain name below.
template <class = void>
class BasicMemoryBackend final : public StateBackend {
 public:
  std::string name() const override { return "memory"; }

  std::uint32_t registerState(const std::string& stateName, StateKind kind) override {
    for (std::uint32_t id = 0; id < tables_.size(); ++id) {
      if (tables_[id].name != stateName) continue;
      if (tables_[id].kind != kind) {
        throw std::invalid_argument("state '" + stateName + "' is already registered as " + toString(tables_[id].kind) +
                                    ", not " + toString(kind));
      }
      return id;
    }
    tables_.push_back(Table{stateName, kind, {}, {}});
    return static_cast<std::uint32_t>(tables_.size() - 1);
  }

  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    ++stats_.batches;
    stats_.requests += batch.size();
    for (StateRequest& request : batch) {
      StateResult result;
      execute(request, result);
      sink.complete(request.ticket, std::move(result));
    }
  }

  void snapshot(Savepoint& out) override {
    for (const Table& table : tables_) {
      out.declare(table.name, table.kind);
      for (const auto& [key, value] : table.values) out.add(table.name, table.kind, key, "", value);
      for (const auto& [key, entries] : table.maps) {
        for (const auto& [userKey, value] : entries) out.add(table.name, table.kind, key, userKey, value);
      }
    }
  }

  void restore(const Savepoint& in) override {
    // Validate before touching anything: a rejected savepoint leaves the data as it was.
    for (const auto& [stateName, state] : in.states()) {
      for (const Table& table : tables_) {
        if (table.name == stateName && table.kind != state.kind) {
          throw std::invalid_argument("savepoint holds state '" + stateName + "' as " + toString(state.kind) +
                                      ", but it is registered as " + toString(table.kind));
        }
      }
    }
    for (Table& table : tables_) {
      table.values.clear();
      table.maps.clear();
    }
    for (const auto& [stateName, state] : in.states()) {
      Table& table = tables_[registerState(stateName, state.kind)];
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
    std::string name;
    StateKind kind;
    std::unordered_map<std::string, std::string> values;                       // value, list, reducing, aggregating
    std::unordered_map<std::string, std::map<std::string, std::string>> maps;  // map states
  };

  void execute(StateRequest& request, StateResult& result) {
    Table& table = tables_.at(request.stateId);
    const bool isMap = table.kind == StateKind::Map;
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
        auto it = table.maps.find(request.key);
        if (it == table.maps.end()) break;
        auto entry = request.cursor.empty() ? it->second.begin() : it->second.upper_bound(request.cursor.substr(1));
        for (; entry != it->second.end() && result.entries.size() < request.limit; ++entry) {
          result.entries.emplace_back(entry->first, entry->second);
        }
        result.more = entry != it->second.end();
        // The cursor is the last key returned, tagged so that an empty user key differs from "start".
        if (!result.entries.empty()) result.nextCursor = "@" + result.entries.back().first;
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

  std::vector<Table> tables_;
  BackendStats stats_;
};

using MemoryBackend = BasicMemoryBackend<>;

}  // namespace asyncstate
