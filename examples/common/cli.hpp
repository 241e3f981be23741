// examples/common/cli.hpp: what the example programs share: their --name=value flags, and the
// SIGINT / SIGTERM that starts a server's graceful shutdown. Header-only; examples only.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <colony/net.hpp>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace example {

// Flags: the program's --name=value arguments. Anything else (an unknown name, a missing '=',
// a number that does not parse) ends the program with a message and exit status 2, so that a
// typo never runs a benchmark with a silently ignored setting.
class Flags {
 public:
  Flags(int argc, char** argv, std::initializer_list<std::string_view> known)
      : prog_(argc > 0 ? argv[0] : "example"), known_(known) {
    for (int i = 1; i < argc; ++i) {
      std::string_view a = argv[i];
      const std::size_t eq = a.find('=');
      if (a.substr(0, 2) != "--" || eq == std::string_view::npos || !is_known(a.substr(2, eq - 2)))
        fail("unknown argument '" + std::string(a) + "'");
      args_.push_back(a);
    }
  }

  // str: the value of --name=VALUE (the last one given), or `def`.
  std::string str(std::string_view name, std::string def) const {
    for (auto it = args_.rbegin(); it != args_.rend(); ++it)
      if (it->substr(2, name.size()) == name && (*it)[name.size() + 2] == '=')
        return std::string(it->substr(name.size() + 3));
    return def;
  }
  // num: --name=N as a whole number in [lo, hi], or `def`.
  long num(std::string_view name, long def, long lo = 0, long hi = 1L << 40) const {
    const std::string s = str(name, "");
    if (s.empty()) return def;
    long v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
      fail("--" + std::string(name) + " must be a whole number from " + std::to_string(lo) +
           " to " + std::to_string(hi) + ", not '" + s + "'");
    return v;
  }

 private:
  bool is_known(std::string_view n) const {
    for (std::string_view k : known_)
      if (k == n) return true;
    return false;
  }
  [[noreturn]] void fail(const std::string& why) const {
    std::string names;
    for (std::string_view k : known_) names += " --" + std::string(k) + "=...";
    std::fprintf(stderr, "%s: %s\nflags:%s\n", prog_.c_str(), why.c_str(), names.c_str());
    std::exit(2);
  }

  std::string prog_;
  std::vector<std::string_view> known_;
  std::vector<std::string_view> args_;
};

// Args: argv with "--name VALUE" joined into "--name=VALUE" for the given names (the form Flags
// reads), so that `--tls-cert FILE` works as openssl-style tools spell it. argc() and argv()
// point into the object.
class Args {
 public:
  Args(int argc, char** argv, std::initializer_list<std::string_view> spaced) {
    for (int i = 1; i < argc; ++i) {
      const std::string_view a = argv[i];
      bool join = false;
      for (std::string_view s : spaced) join = join || a == s;
      if (join && i + 1 < argc)
        joined_.push_back(std::string(a) + "=" + argv[++i]);
      else
        joined_.emplace_back(a);
    }
    ptrs_.push_back(argc > 0 ? argv[0] : nullptr);
    for (auto& j : joined_) ptrs_.push_back(j.data());
  }
  Args(const Args&) = delete;
  Args& operator=(const Args&) = delete;

  int argc() const { return static_cast<int>(ptrs_.size()); }
  char** argv() { return ptrs_.data(); }
  // has: whether an argument is exactly `a` ("--help").
  bool has(std::string_view a) const {
    for (const auto& j : joined_)
      if (j == a) return true;
    return false;
  }

 private:
  std::vector<std::string> joined_;
  std::vector<char*> ptrs_;
};

// ShutdownSignal: turns SIGINT and SIGTERM into a byte on a self-pipe (the only thing a signal
// handler may safely do) and lets a fiber park until one arrives. One per program.
class ShutdownSignal {
 public:
  ShutdownSignal() {
    if (::pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "pipe2 for the shutdown signal");
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
  }
  ShutdownSignal(const ShutdownSignal&) = delete;
  ShutdownSignal& operator=(const ShutdownSignal&) = delete;

  // wait: parks the calling fiber (blocks a plain thread) until SIGINT or SIGTERM.
  void wait() {
    char c;
    while (::read(pipe_[0], &c, 1) != 1) colony::net::wait_readable(pipe_[0]);
  }

 private:
  static void on_signal(int) {
    const int saved = errno;
    char c = 1;
    ssize_t r = ::write(pipe_[1], &c, 1);  // async-signal-safe; EAGAIN: one is already pending
    (void)r;
    errno = saved;
  }

  static inline int pipe_[2] = {-1, -1};
};

}  // namespace example
