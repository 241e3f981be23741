// PollFd and wait_readable / wait_writable: readiness waits on any non-blocking fd.
//
// The socket core and its protocol (calls in progress, close, deadlines) are in socket.hpp.
#include "colony/net.hpp"
#include "net/socket.hpp"

namespace colony::net {

using detail::checked;
using detail::make_socket;
using detail::Op;
using detail::PollMode;
using detail::Socket;

namespace {
bool wait_fd(Socket& s, PollMode mode, std::int64_t deadline_ns, const Context* ctx) {
  Op op(s, mode, ctx, mode == PollMode::read ? "wait_readable" : "wait_writable");
  return op.wait_until(deadline_ns);
}
}  // namespace

PollFd::PollFd(int fd) : s_(make_socket(fd, "", false)) {}
PollFd::~PollFd() = default;
PollFd::PollFd(PollFd&&) noexcept = default;
PollFd& PollFd::operator=(PollFd&&) noexcept = default;
void PollFd::reset() noexcept {
  s_.reset();
}
int PollFd::fd() const noexcept {
  return s_ ? s_->fd : -1;
}

bool PollFd::wait_readable(Deadline d) {
  return wait_fd(checked(s_, "wait_readable"), PollMode::read, sched::deadline_at(d), nullptr);
}
bool PollFd::wait_writable(Deadline d) {
  return wait_fd(checked(s_, "wait_writable"), PollMode::write, sched::deadline_at(d), nullptr);
}
bool PollFd::wait_readable(const Context& ctx) {
  return wait_fd(checked(s_, "wait_readable"), PollMode::read, sched::kNoDeadline, &ctx);
}
bool PollFd::wait_writable(const Context& ctx) {
  return wait_fd(checked(s_, "wait_writable"), PollMode::write, sched::kNoDeadline, &ctx);
}

bool wait_readable(int fd, Deadline d) {
  return PollFd(fd).wait_readable(d);
}
bool wait_writable(int fd, Deadline d) {
  return PollFd(fd).wait_writable(d);
}
bool wait_readable(int fd, const Context& ctx) {
  return PollFd(fd).wait_readable(ctx);
}
bool wait_writable(int fd, const Context& ctx) {
  return PollFd(fd).wait_writable(ctx);
}

}  // namespace colony::net
