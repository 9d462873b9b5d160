#pragma once
// A loopback TCP proxy that can misbehave on demand, to test clients against real
// network faults: refuse connections for a while, or forward a script call to the
// server and then cut the connection instead of returning the reply (the server has
// applied the call, the client never learns it).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asyncstate::test {

class TcpProxy {
 public:
  explicit TcpProxy(int targetPort) : targetPort_(targetPort) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 64) != 0) {
      throw std::runtime_error("tcp proxy: cannot listen on loopback");
    }
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }

  ~TcpProxy() {
    stop_ = true;
    thread_.join();
    for (auto& [fd, peer] : peers_) ::close(fd);
    ::close(listener_);
  }

  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // While set, new connections are closed at once and open ones are cut.
  void refuse(bool on) { refusing_ = on; }
  // The next EVALSHA reaches the server, but its reply is replaced by a disconnect.
  void dropNextScriptReply() { dropArmed_ = true; }
  int droppedReplies() const { return dropped_.load(); }

 private:
  static sockaddr_in loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    return addr;
  }

  struct Peer {
    int other;
    bool toServer;  // data read from this fd goes to the server
  };

  void closePair(int fd) {
    auto it = peers_.find(fd);
    if (it == peers_.end()) return;
    const int other = it->second.other;
    ::close(fd);
    ::close(other);
    peers_.erase(fd);
    peers_.erase(other);
    scriptSent_.erase(fd);
    scriptSent_.erase(other);
  }

  void loop() {
    while (!stop_) {
      if (refusing_) {
        while (!peers_.empty()) closePair(peers_.begin()->first);
      }
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (auto& [fd, peer] : peers_) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) accept();
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0 || !peers_.contains(fds[i].fd)) continue;
        pump(fds[i].fd);
      }
    }
  }

  void accept() {
    const int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    if (refusing_) {
      ::close(client);
      return;
    }
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback(targetPort_);
    if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(server);
      ::close(client);
      return;
    }
    peers_[client] = Peer{server, true};
    peers_[server] = Peer{client, false};
  }

  void pump(int fd) {
    char buf[65536];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      closePair(fd);
      return;
    }
    const Peer peer = peers_.at(fd);
    const std::string_view data(buf, static_cast<std::size_t>(n));
    if (peer.toServer && dropArmed_ && data.find("EVALSHA") != std::string_view::npos) {
      scriptSent_[peer.other] = true;
      dropArmed_ = false;
    } else if (!peer.toServer && scriptSent_.contains(fd)) {
      ++dropped_;
      closePair(fd);
      return;
    }
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t w = ::write(peer.other, data.data() + off, data.size() - off);
      if (w <= 0) {
        closePair(fd);
        return;
      }
      off += static_cast<std::size_t>(w);
    }
  }

  int targetPort_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> refusing_{false};
  std::atomic<bool> dropArmed_{false};
  std::atomic<int> dropped_{0};
  std::map<int, Peer> peers_;       // proxy thread only
  std::map<int, bool> scriptSent_;  // server fds whose next reply is dropped
  std::thread thread_;
};

}  // namespace asyncstate::test
