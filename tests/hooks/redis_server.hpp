// RedisServer: a private redis-server for one test or benchmark, on a loopback port it picks,
// with persistence off (--save '' --appendonly no), killed when the object is destroyed.
// Start it before any runtime exists (it forks). ok() is false, and why() says why, when
// redis-server is not installed or does not come up. kill() stops it early (SIGKILL: Redis gone
// at once, its connections reset), to see what its clients do then.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace colony::hooks_test {

// raise_fd_limit: the soft RLIMIT_NOFILE up to the hard one (thousands of connections; the
// server inherits it and sizes its maxclients from it).
inline void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

class RedisServer {
 public:
  RedisServer() {
    const char* bin = std::getenv("COLONY_REDIS_SERVER");
    std::string path = bin ? bin : "";
    if (path.empty()) {
      for (const char* p :
           {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"})
        if (::access(p, X_OK) == 0) {
          path = p;
          break;
        }
    }
    if (path.empty()) {
      why_ =
          "redis-server is not installed (scripts/setup.sh installs it; or set "
          "COLONY_REDIS_SERVER)";
      return;
    }
    raise_fd_limit();
    for (int attempt = 0; attempt < 3 && pid_ <= 0; ++attempt) start(path);
  }
  ~RedisServer() { stop(SIGTERM); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // kill: SIGKILL, and waits for the process to end. ok() is false after.
  void kill() { stop(SIGKILL); }

  bool ok() const { return pid_ > 0; }
  const std::string& why() const { return why_; }
  int port() const { return port_; }

 private:
  void stop(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      int st;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
  }
  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
    ::close(fd);
    return port;
  }
  static bool accepts(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }
  void start(const std::string& path) {
    port_ = free_port();
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {path,        "--port",        port,       "--bind",
                                     "127.0.0.1", "--save",        "",         "--appendonly",
                                     "no",        "--daemonize",   "no",       "--loglevel",
                                     "warning",   "--tcp-backlog", "4096",     "--maxclients",
                                     "20000",     "--logfile",     "/dev/null"};
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (::posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      why_ = "could not start " + path;
      return;
    }
    for (int i = 0; i < 500; ++i) {  // up to 5 s
      int st;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        why_ = path + " exited at start (port " + port + " taken?)";
        return;
      }
      if (accepts(port_)) {
        pid_ = pid;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    int st;
    ::waitpid(pid, &st, 0);
    why_ = path + " did not accept connections within 5 s";
  }

  pid_t pid_ = -1;
  int port_ = 0;
  std::string why_;
};

}  // namespace colony::hooks_test
