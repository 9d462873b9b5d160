#pragma once
// Who the Redis backend authenticates as. The password is sent in AUTH on every
// connection and reconnection and nowhere else: it has no accessor that formats it,
// and describe() -- what messages and describeConfiguration() show -- names the user
// and where the password came from, never the password.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate {

class RedisCredentials {
 public:
  // No AUTH: the server's default user without a password.
  RedisCredentials() = default;

  // Legacy form: AUTH <password>, for a server with `requirepass` (the "default" user).
  static RedisCredentials password(std::string password) {
    return RedisCredentials({}, std::move(password), "given in the options");
  }

  // ACL form: AUTH <user> <password>.
  static RedisCredentials user(std::string user, std::string password) {
    return RedisCredentials(std::move(user), std::move(password), "given in the options");
  }

  // The password from $<passwordVariable>, the user from $<userVariable> (unset or
  // empty: the legacy password-only form). An unset or empty password variable is an
  // error, not "no authentication": asking for credentials and getting none is a
  // misconfiguration.
  static RedisCredentials fromEnvironment(const std::string& userVariable = "ASYNCSTATE_REDIS_USER",
                                          const std::string& passwordVariable = "ASYNCSTATE_REDIS_PASSWORD") {
    // getenv races only with a concurrent setenv; credentials are read once, while the
    // job is configured.
    const char* password = std::getenv(passwordVariable.c_str());  // NOLINT(concurrency-mt-unsafe)
    if (password == nullptr || *password == '\0') {
      throw std::invalid_argument("redis: environment variable " + passwordVariable + " (the password) is not set");
    }
    const char* user = std::getenv(userVariable.c_str());  // NOLINT(concurrency-mt-unsafe)
    return RedisCredentials(user != nullptr ? user : "", password, "from environment variable " + passwordVariable);
  }

  // The password is the file's content without its final line break (a secret mounted
  // by Kubernetes or Docker, a file readable only by the job's account).
  static RedisCredentials fromFile(std::string user, const std::filesystem::path& passwordFile) {
    std::ifstream in(passwordFile, std::ios::binary);
    if (!in) throw std::invalid_argument("redis: cannot read the password file " + passwordFile.string());
    std::string password((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!password.empty() && password.back() == '\n') password.pop_back();
    if (!password.empty() && password.back() == '\r') password.pop_back();
    if (password.empty())
      throw std::invalid_argument("redis: the password file " + passwordFile.string() + " is empty");
    return RedisCredentials(std::move(user), std::move(password), "from file " + passwordFile.string());
  }

  bool present() const { return !password_.empty(); }
  const std::string& userName() const { return user_; }

  // "user 'job-a' (password from file /run/secrets/redis)": safe for any message.
  std::string describe() const {
    if (!present()) return "no credentials (default user, no AUTH)";
    const std::string who = user_.empty() ? "the default user (password-only AUTH)" : "user '" + user_ + "'";
    return who + " (password " + source_ + ")";
  }

  // The argument vector of the AUTH command; only the connection code calls this.
  std::vector<std::string> authCommand() const {
    if (user_.empty()) return {"AUTH", password_};
    return {"AUTH", user_, password_};
  }

 private:
  RedisCredentials(std::string user, std::string password, std::string source)
      : user_(std::move(user)), password_(std::move(password)), source_(std::move(source)) {}

  std::string user_;
  std::string password_;
  std::string source_;
};

}  // namespace asyncstate
