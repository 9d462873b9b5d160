#pragma once
// Test harness: a TLS client tunnel on loopback. stunnel (Debian package stunnel4)
// accepts plain connections on a free loopback port and forwards them over TLS to a
// server, verifying the server's certificate against a CA file -- how a client
// library without TLS (Debian 12's hiredis 0.14) reaches a TLS-only Redis port.
// SelfSignedCertificate makes the certificate with openssl for 127.0.0.1.

#include "child_process.hpp"
#include "redis_server.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asyncstate::test {

// The stunnel binary, if installed.
inline std::optional<std::string> stunnelBinary() {
  for (const char* candidate : {"/usr/bin/stunnel4", "/usr/bin/stunnel"}) {
    if (::access(candidate, X_OK) == 0) return std::string(candidate);
  }
  return std::nullopt;
}

// A key and a certificate for 127.0.0.1 (CN and subjectAltName), valid for two days, in
// a temporary directory removed by the destructor.
class SelfSignedCertificate {
 public:
  SelfSignedCertificate() {
    char pattern[] = "/tmp/asyncstate-tls-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("tls harness: mkdtemp failed");
    dir_ = pattern;
    const std::string command =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext "
        "subjectAltName=IP:127.0.0.1 -keyout " +
        key().string() + " -out " + certificate().string() + " > " + (dir_ / "openssl.log").string() + " 2>&1";
    if (std::system(command.c_str()) != 0) {
      throw std::runtime_error("tls harness: openssl failed:\n" + readFileTail(dir_ / "openssl.log"));
    }
  }
  ~SelfSignedCertificate() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  SelfSignedCertificate(const SelfSignedCertificate&) = delete;
  SelfSignedCertificate& operator=(const SelfSignedCertificate&) = delete;

  std::filesystem::path key() const { return dir_ / "key.pem"; }
  std::filesystem::path certificate() const { return dir_ / "cert.pem"; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

// stunnel in client mode: plain on 127.0.0.1:port() -> TLS to 127.0.0.1:tlsPort, the
// server's certificate verified against `ca` (chain and IP). Stopped by the destructor;
// dies with the test process (a ChildProcess).
class StunnelClientTunnel {
 public:
  StunnelClientTunnel(const std::string& binary, int tlsPort, const std::filesystem::path& ca,
                      const std::filesystem::path& workDir) {
    port_ = pickFreePort(false);
    config_ = workDir / "stunnel.conf";
    log_ = workDir / "stunnel.log";
    std::ofstream(config_) << "foreground = yes\npid =\ndebug = 5\noutput = " << log_.string()
                           << "\n[redis]\nclient = yes\naccept = 127.0.0.1:" << port_
                           << "\nconnect = 127.0.0.1:" << tlsPort << "\nCAfile = " << ca.string()
                           << "\nverifyChain = yes\ncheckIP = 127.0.0.1\n";
    process_.start({binary, config_.string()});
    waitUntilListening();
  }
  StunnelClientTunnel(const StunnelClientTunnel&) = delete;
  StunnelClientTunnel& operator=(const StunnelClientTunnel&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return readFileTail(log_, 20000); }

 private:
  void waitUntilListening() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_.running()) {
        throw std::runtime_error("tls harness: stunnel exited; log:\n" + readFileTail(log_));
      }
      if (!portIsFree(port_)) return;  // bound by stunnel
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("tls harness: stunnel did not listen within 10 s; log:\n" + readFileTail(log_));
  }

  int port_ = 0;
  ChildProcess process_;
  std::filesystem::path config_;
  std::filesystem::path log_;
};

}  // namespace asyncstate::test
