// PostgresServer: a private PostgreSQL cluster for one test process: initdb of a fresh data
// directory in a temporary directory, then postgres on a loopback port it picks (and a unix
// socket in the same directory), with trust authentication and fsync off; stopped and removed
// when the object is destroyed. Start it before any runtime exists (it forks).
//
// postgres refuses to run as root, and CI runs as root: then initdb and postgres run as the
// `postgres` system user (made by Debian's postgresql package), which owns the temporary
// directory. ok() is false, and why() says why, when PostgreSQL is not installed or does not
// come up. The binaries are found in COLONY_PG_BINDIR, else the newest
// /usr/lib/postgresql/<version>/bin (Debian's layout), else the directory of PATH's initdb.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "hooks/redis_server.hpp"  // raise_fd_limit

namespace colony::hooks_test {

class PostgresServer {
 public:
  PostgresServer() {
    const auto t0 = std::chrono::steady_clock::now();
    bin_ = find_bindir();
    if (bin_.empty()) {
      why_ =
          "PostgreSQL's initdb and postgres were not found (scripts/setup.sh installs them; or "
          "set COLONY_PG_BINDIR)";
      return;
    }
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (!pw) {
        why_ = "running as root, and there is no `postgres` user to run PostgreSQL as";
        return;
      }
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
    } else {
      uid_ = ::geteuid();
      gid_ = ::getegid();
    }
    char tmpl[] = "/tmp/colony-pg.XXXXXX";  // short: a unix socket's path is at most 107 bytes
    if (!::mkdtemp(tmpl)) {
      why_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    dir_ = tmpl;
    if (::chown(dir_.c_str(), uid_, gid_) != 0) {
      why_ = "chown " + dir_ + ": " + std::strerror(errno);
      return;
    }
    raise_fd_limit();  // hundreds of connections
    const std::string log = dir_ + "/initdb.log";
    const int rc = run_and_wait({bin_ + "/initdb", "-D", dir_ + "/data", "-A", "trust", "-U",
                                 "postgres", "--no-sync", "-E", "UTF8", "--locale=C"},
                                log);
    if (rc != 0) {
      why_ = "initdb failed (" + std::to_string(rc) + "): " + tail(log);
      return;
    }
    initdb_ms_ = ms_since_start(t0);
    for (int attempt = 0; attempt < 3 && pid_ <= 0; ++attempt) start();
    startup_ms_ = ms_since_start(t0);
  }
  ~PostgresServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGINT);  // fast shutdown: ends the sessions, checkpoints, exits
      if (!wait_exit(pid_, 10'000)) {
        ::kill(pid_, SIGKILL);
        int st;
        ::waitpid(pid_, &st, 0);
      }
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  bool ok() const { return pid_ > 0; }
  const std::string& why() const { return why_; }
  int port() const { return port_; }
  // startup_ms: initdb and start together; initdb_ms: initdb alone.
  std::int64_t startup_ms() const { return startup_ms_; }
  std::int64_t initdb_ms() const { return initdb_ms_; }

  // conninfo: a libpq connection string for TCP on 127.0.0.1. A numeric hostaddr, so that
  // libpq resolves nothing (getaddrinfo is not interposed); no SSL or GSSAPI negotiation.
  std::string conninfo() const {
    return "hostaddr=127.0.0.1 port=" + std::to_string(port_) + common_options();
  }
  // unix_conninfo: the same over the unix socket in the temporary directory.
  std::string unix_conninfo() const {
    return "host=" + dir_ + " port=" + std::to_string(port_) + common_options();
  }

 private:
  static std::string common_options() {
    return " user=postgres dbname=postgres sslmode=disable gssencmode=disable "
           "connect_timeout=30";
  }
  static std::int64_t ms_since_start(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t0)
        .count();
  }
  static bool usable(const std::string& dir) {
    return ::access((dir + "/initdb").c_str(), X_OK) == 0 &&
           ::access((dir + "/postgres").c_str(), X_OK) == 0;
  }
  static std::string find_bindir() {
    if (const char* env = std::getenv("COLONY_PG_BINDIR"); env && *env)
      return usable(env) ? env : "";
    std::error_code ec;
    int best = -1;
    std::string found;
    for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      const std::string name = e.path().filename().string();
      const int v = std::atoi(name.c_str());
      const std::string dir = e.path().string() + "/bin";
      if (v > best && usable(dir)) best = v, found = dir;
    }
    if (!found.empty()) return found;
    if (const char* path = std::getenv("PATH")) {
      std::stringstream ss(path);
      std::string dir;
      while (std::getline(ss, dir, ':'))
        if (!dir.empty() && usable(dir)) return dir;
    }
    return "";
  }
  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback_any();
    socklen_t len = sizeof a;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
    ::close(fd);
    return port;
  }
  static sockaddr_in loopback_any() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }
  // tail: the last lines of a log file, for why().
  static std::string tail(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(f, line);) lines.push_back(line);
    std::string out;
    for (std::size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i)
      out += (out.empty() ? "" : " | ") + lines[i];
    return out.empty() ? "(no output)" : out;
  }
  static bool wait_exit(pid_t pid, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 10) {
      int st;
      if (::waitpid(pid, &st, WNOHANG) == pid) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // spawn: fork and exec argv as uid_/gid_, in dir_, with stdout and stderr to `log`. The child
  // gets SIGQUIT (PostgreSQL's immediate shutdown) if the test process dies first.
  pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
    std::vector<char*> argv;
    std::vector<std::string> copy = args;
    for (auto& s : copy) argv.push_back(s.data());
    argv.push_back(nullptr);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return -1;
    const bool switch_user = ::geteuid() == 0;
    const uid_t uid = uid_;
    const gid_t gid = gid_;
    const pid_t pid = ::fork();
    if (pid == 0) {  // child: async-signal-safe calls only
      ::dup2(out, 1);
      ::dup2(out, 2);
      if (::chdir(dir_.c_str()) != 0) ::_exit(126);
      if (switch_user && (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0))
        ::_exit(126);
      ::prctl(PR_SET_PDEATHSIG, SIGQUIT);  // after setuid, which clears it
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out);
    return pid;
  }
  int run_and_wait(const std::vector<std::string>& args, const std::string& log) {
    const pid_t pid = spawn(args, log);
    if (pid < 0) return -1;
    int st = 0;
    if (::waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  void start() {
    port_ = free_port();
    const std::string log = dir_ + "/postgres.log";
    const pid_t pid =
        spawn({bin_ + "/postgres", "-D", dir_ + "/data", "-p", std::to_string(port_), "-k", dir_,
               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
               "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"},
              log);
    if (pid < 0) {
      why_ = "could not start " + bin_ + "/postgres";
      return;
    }
    for (int i = 0; i < 1500; ++i) {  // up to 30 s
      int st;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        why_ = "postgres exited at start: " + tail(log);
        return;
      }
      if (::PQping(conninfo().c_str()) == PQPING_OK) {
        pid_ = pid;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
    int st;
    ::waitpid(pid, &st, 0);
    why_ = "postgres did not accept connections within 30 s: " + tail(log);
  }

  std::string bin_, dir_, why_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
  std::int64_t startup_ms_ = 0, initdb_ms_ = 0;
};

}  // namespace colony::hooks_test
