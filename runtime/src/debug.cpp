#include "colony/debug.hpp"
#include "colony/sched/wait.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>

namespace colony {

std::vector<FiberInfo> fibers() { return sched::fibers(sched::current_or_default()); }

void dump_fibers(std::ostream& os, const std::vector<FiberInfo>& fs) {
  for (const FiberInfo& f : fs) {
    os << "fiber " << f.id << " [";
    if (f.status == sched::GStatus::waiting) {
      os << sched::to_string(f.reason);
      char buf[32];
      double s = static_cast<double>(f.waited_ns) / 1e9;
      if (s < 1) std::snprintf(buf, sizeof buf, ", %.0f ms", s * 1e3);
      else if (s < 120) std::snprintf(buf, sizeof buf, ", %.1f s", s);
      else std::snprintf(buf, sizeof buf, ", %.0f minutes", s / 60);
      os << buf;
    } else {
      os << sched::to_string(f.status);
      if (f.handed_off) os << ", in a blocking call, P handed off";
    }
    os << "]:\n    spawned at " << (f.file && *f.file ? f.file : "?") << ':' << f.line;
    if (f.function && *f.function) os << " in " << f.function;
    os << "\n\n";
  }
}

void dump_fibers(std::ostream& os) { dump_fibers(os, fibers()); }

std::string fiber_dump() {
  std::ostringstream os;
  dump_fibers(os);
  return os.str();
}

namespace {
int g_quit_pipe[2] = {-1, -1};

void on_sigquit(int) {
  int saved = errno;
  char c = 'q';
  ssize_t r = ::write(g_quit_pipe[1], &c, 1);
  (void)r;
  errno = saved;
}

void dumper() {
  sched::internal_thread(+1);  // not a thread that could wake fibers (deadlock detection)
  char c;
  while (::read(g_quit_pipe[0], &c, 1) == 1 || errno == EINTR) {
    std::ostringstream os;
    os << "colony: SIGQUIT: fiber dump\n";
    sched::for_each_scheduler(
        [](sched::Scheduler& s, void* arg) {
          auto& out = *static_cast<std::ostringstream*>(arg);
          out << "-- runtime with " << sched::fibers(s).size() << " live fibers\n";
          dump_fibers(out, sched::fibers(s));
        },
        &os);
    std::cerr << os.str() << std::flush;
  }
}
}  // namespace

void install_sigquit_dump() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (::pipe2(g_quit_pipe, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "colony: install_sigquit_dump: pipe");
    std::thread(dumper).detach();
    struct sigaction sa {};
    sa.sa_handler = on_sigquit;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGQUIT, &sa, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "colony: install_sigquit_dump: sigaction");
  });
}

}  // namespace colony
