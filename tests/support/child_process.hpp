#pragma once
// Test harness: a server process the test starts (redis-server, stunnel, prometheus, the
// example job) and stops by pid -- in the destructor too, so a failing test leaves
// nothing behind. The child gets PR_SET_PDEATHSIG, so even a crashed test binary (an
// ASan abort) does not leave it running.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asyncstate::test {

// A loopback port the kernel considers free now; the server may lose it to another
// process before it binds, and a harness then tries another.
inline int freeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("test harness: socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("test harness: no free loopback port");
  return ntohs(addr.sin_port);
}

// Starts args[0] (a path) with args and returns its pid. In the child, `redirect` (which
// may only make async-signal-safe calls: the parent may run threads) sets up its file
// descriptors before exec. The child gets PR_SET_PDEATHSIG, so it dies with the test.
template <class Redirect>
pid_t spawnChild(const std::vector<std::string>& args, Redirect&& redirect) {
  if (args.empty()) throw std::invalid_argument("test harness: no program to start");
  // Built before fork: the child of a multithreaded process may only make
  // async-signal-safe calls until exec.
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("test harness: fork failed starting " + args.front());
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    redirect();
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Runs args[0] (a path) with args; its stdout and stderr are appended to `log` when
  // given, else inherited. Stops a child this object still runs first.
  void start(const std::vector<std::string>& args, const std::filesystem::path& log = {}) {
    stop();
    const std::string logPath = log.string();
    pid_ = spawnChild(args, [&] {
      if (logPath.empty()) return;
      const int fd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      }
    });
  }

  // Whether the child still runs; reaps it (and forgets its pid) when it has exited.
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exitStatus_ = status;
      return false;
    }
    return true;
  }

  // The waitpid() status of the child that exited last (see running()).
  int exitStatus() const noexcept { return exitStatus_; }

  // SIGTERM, then SIGKILL if the child is still there after `grace`; returns once reaped.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    exitStatus_ = status;
    pid_ = -1;
  }

  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_ = -1;
  int exitStatus_ = 0;
};

}  // namespace asyncstate::test
