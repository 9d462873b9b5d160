#pragma once
// hiredis plumbing shared by the Redis backend: owned replies, addresses, timeouts,
// and opening an authenticated connection to one node.

#include <asyncstate/backend/redis_options.hpp>

#include <hiredis/hiredis.h>

#include <sys/time.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace asyncstate::detail {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

inline std::pair<std::string, int> splitAddress(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("redis: address '" + address + "' is not host:port");
  return {address.substr(0, colon), std::stoi(address.substr(colon + 1))};
}

inline timeval toTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
  return tv;
}

inline bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// A connection, or why there is none. `rejected` means the server refused the
// credentials (or has none configured for them): retrying cannot help.
struct RedisConnectAttempt {
  redisContext* ctx = nullptr;
  std::string error;
  bool rejected = false;
};

// Connects with the options' timeouts and authenticates when credentials are given.
// Error texts name the node and the user, never the password: the server's AUTH errors
// (WRONGPASS, ERR ... no password is set) do not echo it either.
inline RedisConnectAttempt openRedisConnection(const std::string& host, int port, const std::string& address,
                                               const RedisOptions& options) {
  RedisConnectAttempt attempt;
  redisContext* ctx = redisConnectWithTimeout(host.c_str(), port, toTimeval(options.connectTimeout));
  if (ctx == nullptr) {
    attempt.error = "cannot allocate a hiredis context";
    return attempt;
  }
  if (ctx->err != 0) {
    attempt.error = "cannot connect to " + address + ": " + ctx->errstr;
    redisFree(ctx);
    return attempt;
  }
  redisSetTimeout(ctx, toTimeval(options.commandTimeout));
  redisEnableKeepAlive(ctx);
  if (options.credentials.present()) {
    const std::vector<std::string> auth = options.credentials.authCommand();
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const std::string& a : auth) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    RedisReplyPtr reply(
        static_cast<redisReply*>(redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!reply) {
      attempt.error = "connection to " + address + " lost during AUTH: " + ctx->errstr;
      redisFree(ctx);
      return attempt;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      attempt.error = "authentication as " + options.credentials.describe() + " to " + address +
                      " failed: " + std::string(reply->str, reply->len);
      attempt.rejected = true;
      redisFree(ctx);
      return attempt;
    }
  }
  attempt.ctx = ctx;
  return attempt;
}

}  // namespace asyncstate::detail
