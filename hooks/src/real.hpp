// The real functions behind the interposed ones, found with dlsym(RTLD_NEXT, name): libc's, or
// a sanitizer's interceptor that calls libc's. Each pointer is resolved on first use and kept
// (two threads that race resolve the same value), so they work before main and from any thread.
#pragma once

#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

namespace colony::hooks::real {

ssize_t read(int fd, void* buf, size_t n);
ssize_t write(int fd, const void* buf, size_t n);
ssize_t readv(int fd, const iovec* iov, int iovcnt);
ssize_t writev(int fd, const iovec* iov, int iovcnt);
ssize_t recv(int fd, void* buf, size_t n, int flags);
ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* from, socklen_t* fromlen);
ssize_t recvmsg(int fd, msghdr* msg, int flags);
ssize_t send(int fd, const void* buf, size_t n, int flags);
ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to, socklen_t tolen);
ssize_t sendmsg(int fd, const msghdr* msg, int flags);
int connect(int fd, const sockaddr* addr, socklen_t len);
int accept(int fd, sockaddr* addr, socklen_t* len);
int accept4(int fd, sockaddr* addr, socklen_t* len, int flags);
int poll(pollfd* fds, nfds_t nfds, int timeout);
int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv);
unsigned sleep(unsigned s);
int usleep(useconds_t us);
int nanosleep(const timespec* req, timespec* rem);
int close(int fd);
int dup(int fd);
int dup2(int fd, int fd2);
int dup3(int fd, int fd2, int flags);
int socket(int domain, int type, int protocol);
int socketpair(int domain, int type, int protocol, int sv[2]);

}  // namespace colony::hooks::real
