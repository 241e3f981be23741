// What the net tests (colony_net_test: TCP, UDP, deadlines and cancellation, PollFd, addresses,
// one file each beside this one) share: the Net suite, run with 1, 2, 4 and 8 processors
// (instantiated once, in tcp_test.cpp), an echo server, and a wait for fibers parked in
// "IO wait".
#pragma once

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <cstddef>
#include <system_error>
#include <utility>

#include "test_util.hpp"

namespace colony::testing {

class Net : public ProcsTest {};

// EchoServer: accepts on 127.0.0.1 (or addr) and echoes in one fiber per connection; stop()
// closes the listener and waits for every connection fiber.
class EchoServer {
 public:
  explicit EchoServer(const net::Address& addr = net::Address::loopback_v4(0))
      : ln_(net::TcpListener::listen(addr)), addr_(ln_.local_address()) {
    wg_.add(1);
    colony::go([this] {
      for (;;) {
        net::TcpStream c;
        try {
          c = ln_.accept();
        } catch (const std::system_error& e) {
          if (!colony::net::is_closed(e.code())) ADD_FAILURE() << "accept: " << e.what();
          break;
        }
        ++accepted_;
        wg_.add(1);
        colony::go(
            [this](net::TcpStream s) {
              try {
                char buf[4096];
                while (std::size_t n = s.read(buf, sizeof buf)) s.write_all(buf, n);
              } catch (const std::system_error& e) {
                if (e.code() != std::errc::connection_reset) ADD_FAILURE() << "echo: " << e.what();
              }
              wg_.done();
            },
            std::move(c));
      }
      wg_.done();
    });
  }
  ~EchoServer() { stop(); }
  void stop() {
    ln_.close();
    wg_.wait();
  }
  const net::Address& addr() const { return addr_; }
  int accepted() const { return accepted_.load(); }

 private:
  net::TcpListener ln_;
  net::Address addr_;
  colony::WaitGroup wg_;
  std::atomic<int> accepted_{0};
};

// parked_io: fibers of this runtime now parked in "IO wait".
inline int parked_io() {
  int n = 0;
  for (const auto& f : colony::fibers())
    if (f.status == colony::sched::GStatus::waiting && f.reason == colony::sched::WaitReason::io)
      ++n;
  return n;
}
inline bool wait_parked_io(int n) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (parked_io() < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    colony::this_fiber::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace colony::testing
