// The interposed calls that end or replace an fd number (close, dup2, dup3) or hand out a new
// one (dup, socket, socketpair): they keep the per-fd table (fdtable.hpp) true to the kernel's.
// close and dup2/dup3 first retire the number: the fibers parked on it wake with EBADF and its
// netpoller registration is closed while the fd still names the same file, then the real call
// runs. The calls made by colony's runtime itself (its epoll fd, its eventfd) come here too;
// they find no waiters and cost one lock.
#include <sys/socket.h>
#include <unistd.h>

#include "hook.hpp"
#include "real.hpp"

using namespace colony::hooks::detail;
namespace real = colony::hooks::real;

namespace {

template <class F>
int replace(int fd, F&& call) {
  Fd* e = available() ? retire(fd) : nullptr;
  const int r = call();
  const int err = errno;
  forget(fd);
  unretire(e);
  set_errno(err);
  return r;
}

}  // namespace

extern "C" {

int close(int fd) {
  return replace(fd, [&] { return real::close(fd); });
}

int dup2(int fd, int fd2) noexcept {
  if (fd == fd2) return real::dup2(fd, fd2);
  return replace(fd2, [&] { return real::dup2(fd, fd2); });
}

int dup3(int fd, int fd2, int flags) noexcept {
  if (fd == fd2) return real::dup3(fd, fd2, flags);  // EINVAL
  return replace(fd2, [&] { return real::dup3(fd, fd2, flags); });
}

int dup(int fd) noexcept {
  const int r = real::dup(fd);
  if (r >= 0) forget(r);
  return r;
}

int socket(int domain, int type, int protocol) noexcept {
  const int r = real::socket(domain, type, protocol);
  if (r >= 0) forget(r);
  return r;
}

int socketpair(int domain, int type, int protocol, int sv[2]) noexcept {
  const int r = real::socketpair(domain, type, protocol, sv);
  if (r == 0) {
    forget(sv[0]);
    forget(sv[1]);
  }
  return r;
}

}  // extern "C"
