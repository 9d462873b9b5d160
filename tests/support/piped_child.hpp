#pragma once
// A child process the test starts with its stdout on a pipe, read line by line, and kills
// (SIGKILL) at a moment of the test's choosing: the crash tests' job under test.

#include "child_process.hpp"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asyncstate::test {

// A child process whose stdout is a pipe read line by line.
class PipedChild {
 public:
  explicit PipedChild(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = spawnChild(argv, [&] {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
    });
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~PipedChild() {
    if (pid_ > 0) kill();
    ::close(out_);
  }
  PipedChild(const PipedChild&) = delete;
  PipedChild& operator=(const PipedChild&) = delete;

  // The next line, or "" at the end of its output.
  std::string readLine() {
    std::string line;
    char c;
    while (::read(out_, &c, 1) == 1) {
      if (c == '\n') return line;
      line += c;
    }
    return line;
  }

  // Kills the child (SIGKILL) and returns every complete line it printed.
  std::vector<std::string> kill() {
    ::kill(pid_, SIGKILL);
    return finish();
  }

  // Waits for the child to exit by itself and returns every complete line it printed.
  std::vector<std::string> finish() {
    std::vector<std::string> lines;
    std::string partial;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out_, buf, sizeof buf)) > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == '\n') {
          lines.push_back(std::exchange(partial, {}));
        } else {
          partial += buf[i];
        }
      }
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return lines;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

}  // namespace asyncstate::test
