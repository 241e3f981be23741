// Helpers of the hooks tests: a ticker fiber that shows whether the thread it shares stays free,
// socket set-up, and the process's thread count.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>

namespace colony::hooks_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// TickFiber: a fiber that sleeps 10 ms at a time until stopped, counting its wake-ups and the
// longest gap between two. With max_procs = 1, a call that blocked the thread instead of
// parking the fiber would leave it at 0 ticks for the call's duration.
class TickFiber {
 public:
  TickFiber() {
    done_ = colony::spawn([this] {
      auto last = Clock::now();
      while (!stop_.load(std::memory_order_acquire)) {
        colony::this_fiber::sleep_for(10ms);
        const auto now = Clock::now();
        const std::int64_t gap =
            std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count();
        if (gap > max_gap_ms_.load(std::memory_order_relaxed))
          max_gap_ms_.store(gap, std::memory_order_relaxed);
        last = now;
        ticks_.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  ~TickFiber() { stop(); }
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    stop_.store(true, std::memory_order_release);
    done_.get();
  }
  int ticks() const { return ticks_.load(std::memory_order_relaxed); }
  std::int64_t max_gap_ms() const { return max_gap_ms_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> ticks_{0};
  std::atomic<std::int64_t> max_gap_ms_{0};
  bool stopped_ = false;
  colony::Future<void> done_;
};

inline bool nonblocking(int fd) {
  return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

// Pair: a blocking AF_UNIX stream socketpair, closed at the end.
struct Pair {
  int a = -1, b = -1;
  Pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) a = sv[0], b = sv[1];
  }
  ~Pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

// Listener: a blocking TCP listener on 127.0.0.1, on a port the kernel picks.
struct Listener {
  int fd = -1;
  int port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 128) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(fd);
      fd = -1;
      return;
    }
    port = ntohs(a.sin_port);
  }
  ~Listener() {
    if (fd >= 0) ::close(fd);
  }
};

inline sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  return a;
}

// threads: the process's thread count (/proc/self/status "Threads:").
inline int threads() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  return -1;
}

inline std::int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

}  // namespace colony::hooks_test
