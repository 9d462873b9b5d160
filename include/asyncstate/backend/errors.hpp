#pragma once
// Failure types shared by the backends and their wrappers. The split that matters is
// whether retrying is safe: a TransientBackendError promises that the failed request
// took no effect, so RetryingBackend may send it again without applying it twice.

#include <asyncstate/detail/printable_bytes.hpp>
#include <asyncstate/state_backend.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace asyncstate {

// The request was not applied and may be retried (an outage, a refused connection).
class TransientBackendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A fault that LatencyInjectingBackend produced on purpose.
class InjectedFault : public TransientBackendError {
 public:
  using TransientBackendError::TransientBackendError;
};

// A backend request failed for good (storage error, retries exhausted).
class BackendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// "get on state 'orders' for key 'k1'": the context every backend error message carries.
inline std::string describeRequest(const StateRequest& request, std::string_view stateName) {
  std::string text = std::string(toString(request.type)) + " on state '" + std::string(stateName) + "' for key '" +
                     printableBytes(request.key) + "'";
  if (!request.userKey.empty()) text += " user key '" + printableBytes(request.userKey) + "'";
  return text;
}
}  // namespace detail

// Backends that stand in for remote storage say so in describeConfiguration() with this
// line unless a local cache is in front of them; CachingBackend strips it when it has
// room, so the warning appears exactly when reads go to the network uncached.
inline constexpr std::string_view kNoLocalCacheWarning =
    "WARNING: no local state cache (0 bytes): every state read is a remote round trip; "
    "wrap the backend in CachingBackend with a non-zero size";

namespace detail {
inline std::string withoutNoCacheWarning(std::string_view description) {
  std::string out;
  std::size_t start = 0;
  while (start <= description.size()) {
    std::size_t end = description.find('\n', start);
    if (end == std::string_view::npos) end = description.size();
    std::string_view line = description.substr(start, end - start);
    if (line != kNoLocalCacheWarning) {
      if (!out.empty()) out += '\n';
      out += line;
    }
    start = end + 1;
  }
  return out;
}
}  // namespace detail

}  // namespace asyncstate
