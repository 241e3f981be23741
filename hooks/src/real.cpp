// dlsym(RTLD_NEXT, ...) for every interposed function (real.hpp).
#include "real.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace colony::hooks::real {
namespace {

// resolve: the next definition of `name` after ours. Without one (a static executable) nothing
// can work: say so on stderr, with write(2) through the raw syscall wrapper, and abort.
template <class F>
F resolve(std::atomic<F>& slot, const char* name) noexcept {
  F f = slot.load(std::memory_order_acquire);
  if (f) return f;
  f = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
  if (!f) {
    static const char msg[] = "colony::hooks: dlsym(RTLD_NEXT) found no definition of ";
    (void)!::syscall(1 /* SYS_write */, 2, msg, sizeof msg - 1);
    (void)!::syscall(1, 2, name, std::strlen(name));
    (void)!::syscall(1, 2, "\n", 1);
    std::abort();
  }
  slot.store(f, std::memory_order_release);
  return f;
}

}  // namespace

#define COLONY_REAL(ret, name, params, args) \
  ret name params {                          \
    using Fn = ret(*) params;                \
    static std::atomic<Fn> slot{nullptr};    \
    return resolve(slot, #name) args;        \
  }

COLONY_REAL(ssize_t, read, (int fd, void* buf, size_t n), (fd, buf, n))
COLONY_REAL(ssize_t, write, (int fd, const void* buf, size_t n), (fd, buf, n))
COLONY_REAL(ssize_t, readv, (int fd, const iovec* iov, int iovcnt), (fd, iov, iovcnt))
COLONY_REAL(ssize_t, writev, (int fd, const iovec* iov, int iovcnt), (fd, iov, iovcnt))
COLONY_REAL(ssize_t, recv, (int fd, void* buf, size_t n, int flags), (fd, buf, n, flags))
COLONY_REAL(ssize_t, recvfrom,
            (int fd, void* buf, size_t n, int flags, sockaddr* from, socklen_t* fromlen),
            (fd, buf, n, flags, from, fromlen))
COLONY_REAL(ssize_t, recvmsg, (int fd, msghdr* msg, int flags), (fd, msg, flags))
COLONY_REAL(ssize_t, send, (int fd, const void* buf, size_t n, int flags), (fd, buf, n, flags))
COLONY_REAL(ssize_t, sendto,
            (int fd, const void* buf, size_t n, int flags, const sockaddr* to, socklen_t tolen),
            (fd, buf, n, flags, to, tolen))
COLONY_REAL(ssize_t, sendmsg, (int fd, const msghdr* msg, int flags), (fd, msg, flags))
COLONY_REAL(int, connect, (int fd, const sockaddr* addr, socklen_t len), (fd, addr, len))
COLONY_REAL(int, accept, (int fd, sockaddr* addr, socklen_t* len), (fd, addr, len))
COLONY_REAL(int, accept4, (int fd, sockaddr* addr, socklen_t* len, int flags),
            (fd, addr, len, flags))
COLONY_REAL(int, poll, (pollfd * fds, nfds_t nfds, int timeout), (fds, nfds, timeout))
COLONY_REAL(int, select, (int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv),
            (nfds, r, w, e, tv))
COLONY_REAL(unsigned, sleep, (unsigned s), (s))
COLONY_REAL(int, usleep, (useconds_t us), (us))
COLONY_REAL(int, nanosleep, (const timespec* req, timespec* rem), (req, rem))
COLONY_REAL(int, close, (int fd), (fd))
COLONY_REAL(int, dup, (int fd), (fd))
COLONY_REAL(int, dup2, (int fd, int fd2), (fd, fd2))
COLONY_REAL(int, dup3, (int fd, int fd2, int flags), (fd, fd2, flags))
COLONY_REAL(int, socket, (int domain, int type, int protocol), (domain, type, protocol))
COLONY_REAL(int, socketpair, (int domain, int type, int protocol, int sv[2]),
            (domain, type, protocol, sv))

#undef COLONY_REAL

}  // namespace colony::hooks::real
