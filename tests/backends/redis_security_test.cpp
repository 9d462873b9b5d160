// Redis security (issue 15): authentication with ACL users and the legacy password on
// every connection, least privilege proven against a real server and cluster, secrets
// kept out of every output, and TLS through a stunnel tunnel.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"
#include "redis_counting_job.hpp"

#include "../support/stunnel_tunnel.hpp"

#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/redis.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace asyncstate::test {
namespace {

const std::string kAdminPassword = "admin-Pw-7c1e";
const std::string kJobPassword = "job-S3cret-41f9";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ACL SETUSER <user> on ><password> <RedisBackend::aclRules(job)> on one server.
void createJobUser(const RedisServer& server, const std::string& user, const std::string& password,
                   const std::string& job) {
  std::vector<std::string> command{"ACL", "SETUSER", user, "reset", "on", ">" + password};
  std::istringstream rules(RedisBackend::aclRules(job));
  for (std::string rule; rules >> rule;) command.push_back(rule);
  ASSERT_EQ(server.query(command), "OK");
}

RedisOptions jobOptions(const std::vector<std::string>& seeds, const std::string& job, RedisCredentials credentials) {
  RedisOptions options;
  options.seeds = seeds;
  options.job = job;
  options.credentials = std::move(credentials);
  options.maxAttempts = 3;
  return options;
}

// Every record of the counting job, read back: count per key.
void expectCounts(RedisBackend& backend, int keys, int perKey) {
  const std::uint32_t count = backend.registerState("count", StateKind::Value);
  std::vector<StateRequest> reads;
  for (int k = 0; k < keys; ++k) reads.push_back(get(count, "key" + std::to_string(k)));
  MemoryBackend reference;
  runCountingJob(reference, countingInput(keys, perKey));
  const std::uint32_t referenceCount = reference.registerState("count", StateKind::Value);
  std::vector<StateRequest> referenceReads;
  for (int k = 0; k < keys; ++k) referenceReads.push_back(get(referenceCount, "key" + std::to_string(k)));
  const auto expected = run(reference, referenceReads);
  const auto actual = run(backend, reads);
  for (int k = 0; k < keys; ++k) EXPECT_EQ(shown(actual[k]), shown(expected[k])) << "key" << k;
}

class RedisSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new RedisServer({}, false, kAdminPassword); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { server_->query({"ACL", "LOG", "RESET"}); }
  static RedisServer* server_;
};
RedisServer* RedisSecurityTest::server_ = nullptr;

TEST_F(RedisSecurityTest, AJobRunsUnderItsLeastPrivilegeUserWithNoDeniedCommand) {
  createJobUser(*server_, "counter", kJobPassword, "counter");
  const RedisOptions options =
      jobOptions({server_->address()}, "counter", RedisCredentials::user("counter", kJobPassword));
  {
    RedisBackend backend(options);
    runCountingJob(backend, countingInput(40, 25));
    expectCounts(backend, 40, 25);
    // Every other path: map scans, snapshot, restore.
    const std::uint32_t m = backend.registerState("m", StateKind::Map);
    ASSERT_TRUE(run(backend, {putEntry(m, "k", "a", "1"), del(m, "k", "a"), putEntry(m, "k", "b", "2"),
                              append(backend.registerState("l", StateKind::List), "k", "x")})[0]
                    .ok);
    EXPECT_EQ(scanAll(backend, m, "k", 1).size(), 1u);
    const std::string saved = savepointBytes(backend);
    backend.restore(Savepoint::parse(saved));
    EXPECT_EQ(savepointBytes(backend), saved);
  }
  EXPECT_GT(RedisBackend::deleteJobKeys(options), 0u);
  EXPECT_EQ(server_->query({"ACL", "LOG"}), "0") << "the job's user was denied a command or key";
}

TEST_F(RedisSecurityTest, AnotherJobsUserCannotReadOrWriteTheJobsKeys) {
  createJobUser(*server_, "owner", kJobPassword, "owned");
  createJobUser(*server_, "intruder", "intruder-pw", "other");
  RedisBackend owner(jobOptions({server_->address()}, "owned", RedisCredentials::user("owner", kJobPassword)));
  const std::uint32_t v = owner.registerState("v", StateKind::Value);
  ASSERT_TRUE(run(owner, {put(v, "k", "mine")})[0].ok);
  const std::string key = "{owned:" + std::to_string(keyGroupOf("k")) + "}:1:v:k:v";
  ASSERT_EQ(server_->query({"GET", key}), "mine");

  const std::vector<std::string> intruder{"intruder", "intruder-pw"};
  EXPECT_TRUE(contains(redisQuery(server_->port(), {"GET", key}, std::chrono::milliseconds(2000), intruder), "NOPERM"));
  EXPECT_TRUE(contains(redisQuery(server_->port(), {"SET", key, "theirs"}, std::chrono::milliseconds(2000), intruder),
                       "NOPERM"));
  EXPECT_TRUE(contains(redisQuery(server_->port(), {"EVAL", "return redis.call('GET', KEYS[1])", "1", key},
                                  std::chrono::milliseconds(2000), intruder),
                       "NOPERM"));
  try {
    RedisBackend stolen(jobOptions({server_->address()}, "owned", RedisCredentials::user("intruder", "intruder-pw")));
    FAIL() << "a backend for job 'owned' must not start as the user of job 'other'";
  } catch (const BackendError& e) {
    EXPECT_TRUE(contains(e.what(), "NOPERM")) << e.what();
  }
  EXPECT_EQ(server_->query({"GET", key}), "mine");
  // deleteJobKeys as the intruder, for the owner's job: refused, nothing deleted.
  EXPECT_THROW(RedisBackend::deleteJobKeys(
                   jobOptions({server_->address()}, "owned", RedisCredentials::user("intruder", "intruder-pw"))),
               BackendError);
  EXPECT_EQ(server_->query({"GET", key}), "mine");
}

TEST_F(RedisSecurityTest, WrongOrMissingCredentialsFailAtStartNamingServerAndUserNotPassword) {
  createJobUser(*server_, "alice", kJobPassword, "wrong");
  const std::string wrongPassword = kJobPassword + "-typo";
  try {
    RedisBackend backend(jobOptions({server_->address()}, "wrong", RedisCredentials::user("alice", wrongPassword)));
    FAIL() << "a wrong password must fail at start";
  } catch (const BackendError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, server_->address())) << what;
    EXPECT_TRUE(contains(what, "user 'alice'")) << what;
    EXPECT_TRUE(contains(what, "WRONGPASS")) << what;
    EXPECT_FALSE(contains(what, kJobPassword)) << what;
  }
  try {
    RedisBackend backend(jobOptions({server_->address()}, "wrong", RedisCredentials()));
    FAIL() << "no password on a server that requires one must fail at start";
  } catch (const BackendError& e) {
    EXPECT_TRUE(contains(e.what(), server_->address())) << e.what();
    EXPECT_TRUE(contains(e.what(), "NOAUTH")) << e.what();
    EXPECT_TRUE(contains(e.what(), "default user")) << e.what();
  }
  // The legacy password-only form authenticates as the default user.
  RedisBackend legacy(jobOptions({server_->address()}, "legacy", RedisCredentials::password(kAdminPassword)));
  EXPECT_TRUE(run(legacy, {put(legacy.registerState("v", StateKind::Value), "k", "1")})[0].ok);
}

TEST_F(RedisSecurityTest, CredentialsComeFromTheEnvironmentOrAFile) {
  createJobUser(*server_, "envuser", kJobPassword, "fromenv");
  ::setenv("ASYNCSTATE_REDIS_USER", "envuser", 1);
  ::setenv("ASYNCSTATE_REDIS_PASSWORD", kJobPassword.c_str(), 1);
  RedisBackend fromEnvironment(jobOptions({server_->address()}, "fromenv", RedisCredentials::fromEnvironment()));
  ::unsetenv("ASYNCSTATE_REDIS_USER");
  ::unsetenv("ASYNCSTATE_REDIS_PASSWORD");
  EXPECT_TRUE(contains(fromEnvironment.describeConfiguration(),
                       "user 'envuser' (password from environment variable ASYNCSTATE_REDIS_PASSWORD)"));
  EXPECT_THROW(RedisCredentials::fromEnvironment(), std::invalid_argument);

  TempDir dir;
  const auto file = dir.path() / "redis-password";
  std::ofstream(file) << kJobPassword << "\n";
  RedisBackend fromFile(jobOptions({server_->address()}, "fromenv", RedisCredentials::fromFile("envuser", file)));
  EXPECT_TRUE(run(fromFile, {put(fromFile.registerState("v", StateKind::Value), "k", "1")})[0].ok);
  EXPECT_THROW(RedisCredentials::fromFile("envuser", dir.path() / "absent"), std::invalid_argument);
}

TEST_F(RedisSecurityTest, EveryReconnectionAuthenticatesAgain) {
  createJobUser(*server_, "reconnecting", kJobPassword, "reconnect");
  RedisBackend backend(
      jobOptions({server_->address()}, "reconnect", RedisCredentials::user("reconnecting", kJobPassword)));
  const std::uint32_t v = backend.registerState("v", StateKind::Value);
  ASSERT_TRUE(run(backend, {put(v, "k", "1")})[0].ok);
  ASSERT_NE(server_->query({"CLIENT", "KILL", "USER", "reconnecting"}), "0") << "the backend's connection was killed";
  const Outcome o = run(backend, {get(v, "k")})[0];
  EXPECT_EQ(shown(o), "1");
  EXPECT_GE(backend.redisStats().retries, 1u);
}

TEST_F(RedisSecurityTest, ThePasswordAppearsInNoOutputOfARun) {
  createJobUser(*server_, "quiet", kJobPassword, "quiet");
  const RedisOptions options = jobOptions({server_->address()}, "quiet", RedisCredentials::user("quiet", kJobPassword));
  std::string everything;
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  {
    RedisBackend backend(options);
    CachingBackend cached(backend, 1 << 20);
    std::ostringstream log;
    runCountingJob(cached, countingInput(20, 10), &log);
    everything +=
        log.str() + backend.describeConfiguration() + cached.describeConfiguration() + savepointBytes(backend);
    const RedisStats r = backend.redisStats();
    const BackendStats b = backend.stats();
    everything += std::to_string(r.pipelines) + std::to_string(r.commands) + std::to_string(b.requests);
    // Failures: every error that involves credentials or the job's server.
    auto collect = [&](auto&& action) {
      try {
        action();
      } catch (const std::exception& e) {
        everything += e.what();
      }
    };
    collect([&] {
      RedisBackend wrong(
          jobOptions({server_->address()}, "quiet", RedisCredentials::user("quiet", kJobPassword + "x")));
    });
    collect([&] {
      RedisBackend legacyWrong(jobOptions({server_->address()}, "quiet", RedisCredentials::password(kJobPassword)));
    });
    collect([&] {
      RedisBackend otherJob(jobOptions({server_->address()}, "notmine", RedisCredentials::user("quiet", kJobPassword)));
    });
    server_->query({"FLUSHALL"});
    collect([&] { runCountingJob(cached, countingInput(20, 1), &log); });
    collect([&] { savepointBytes(backend); });
    everything += log.str();
  }
  everything += ::testing::internal::GetCapturedStdout();
  everything += ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(everything, "user 'quiet'")) << "the outputs were captured";
  EXPECT_TRUE(contains(everything, "ASYNCSTATE_STATE_LOST")) << "the failed run was captured";
  EXPECT_FALSE(contains(everything, kJobPassword)) << everything;
  EXPECT_FALSE(contains(everything, kAdminPassword)) << everything;
}

TEST(RedisClusterSecurity, AJobRunsOnAClusterUnderItsAclUserWithNoDeniedCommand) {
  RedisCluster cluster(3, kAdminPassword);
  for (std::size_t n = 0; n < cluster.size(); ++n) {
    createJobUser(cluster.node(n), "clustered", kJobPassword, "clustered");
    cluster.node(n).query({"ACL", "LOG", "RESET"});
  }
  const RedisOptions options =
      jobOptions(cluster.seeds(), "clustered", RedisCredentials::user("clustered", kJobPassword));
  {
    RedisBackend backend(options);
    EXPECT_TRUE(contains(backend.describeConfiguration(), "cluster of 3 masters"));
    runCountingJob(backend, countingInput(60, 10));
    expectCounts(backend, 60, 10);
    savepointBytes(backend);
  }
  EXPECT_GT(RedisBackend::deleteJobKeys(options), 0u);
  for (std::size_t n = 0; n < cluster.size(); ++n) {
    EXPECT_EQ(cluster.node(n).query({"ACL", "LOG"}), "0") << "node " << n;
    EXPECT_EQ(cluster.node(n).query({"EVAL", "return #redis.call('KEYS', '{clustered:*')", "0"}), "0");
  }
  try {
    RedisBackend wrong(jobOptions(cluster.seeds(), "clustered", RedisCredentials::user("clustered", "nope")));
    FAIL() << "a wrong password must fail at start on a cluster too";
  } catch (const BackendError& e) {
    EXPECT_TRUE(contains(e.what(), "user 'clustered'")) << e.what();
    EXPECT_TRUE(contains(e.what(), cluster.node(0).address())) << e.what();
  }
}

TEST(RedisTls, AJobRunsThroughAStunnelTunnelToATlsOnlyPort) {
  const auto stunnel = stunnelBinary();
  if (!stunnel) GTEST_SKIP() << "stunnel4 is not installed (scripts/deps.sh installs it): TLS tunnel not tested";
  SelfSignedCertificate certificate;
  const int tlsPort = pickFreePort(false);
  RedisServer server({"--tls-port", std::to_string(tlsPort), "--tls-cert-file", certificate.certificate().string(),
                      "--tls-key-file", certificate.key().string(), "--tls-ca-cert-file",
                      certificate.certificate().string(), "--tls-auth-clients", "no"},
                     false, kAdminPassword);
  // The TLS port does not speak plain Redis: only the tunnel gets through.
  EXPECT_NE(redisQuery(tlsPort, {"PING"}, std::chrono::milliseconds(500)), "PONG");
  StunnelClientTunnel tunnel(*stunnel, tlsPort, certificate.certificate(), certificate.dir());
  createJobUser(server, "tls", kJobPassword, "tls");
  server.query({"ACL", "LOG", "RESET"});
  {
    RedisBackend backend(jobOptions({tunnel.address()}, "tls", RedisCredentials::user("tls", kJobPassword)));
    runCountingJob(backend, countingInput(20, 10));
    expectCounts(backend, 20, 10);
  }
  EXPECT_EQ(server.query({"ACL", "LOG"}), "0");
  const std::string log = tunnel.log();
  EXPECT_TRUE(contains(log, "Certificate accepted")) << log;
  EXPECT_FALSE(contains(log, kJobPassword));
}

}  // namespace
}  // namespace asyncstate::test
