// UdpSocket: UDP datagrams on the netpoller.
//
// The socket core and its protocol (calls in progress, close, deadlines) are in socket.hpp.
#include <sys/socket.h>

#include <cerrno>

#include "colony/net.hpp"
#include "net/socket.hpp"

namespace colony::net {

using detail::checked;
using detail::last_errno;
using detail::make_socket;
using detail::Op;
using detail::open_bound;
using detail::PollMode;
using detail::set_socket_deadline;
using detail::Socket;
using detail::sockname;
using detail::throw_errno;

UdpSocket::UdpSocket() noexcept : s_(nullptr) {}
UdpSocket::~UdpSocket() = default;
UdpSocket::UdpSocket(UdpSocket&&) noexcept = default;
UdpSocket& UdpSocket::operator=(UdpSocket&&) noexcept = default;

UdpSocket UdpSocket::bind(const Address& addr, const ListenOptions& opts) {
  int fd = open_bound(addr, SOCK_DGRAM, opts, "bind");
  UdpSocket u;
  u.s_ = make_socket(fd, "udp");
  return u;
}

UdpSocket::Received UdpSocket::recv_from(void* buf, std::size_t n) {
  return recv_impl(buf, n, nullptr);
}
UdpSocket::Received UdpSocket::recv_from(void* buf, std::size_t n, const Context& ctx) {
  return recv_impl(buf, n, &ctx);
}
std::size_t UdpSocket::send_to(const void* buf, std::size_t n, const Address& to) {
  return send_impl(buf, n, to, nullptr);
}
std::size_t UdpSocket::send_to(const void* buf, std::size_t n, const Address& to,
                               const Context& ctx) {
  return send_impl(buf, n, to, &ctx);
}

UdpSocket::Received UdpSocket::recv_impl(void* buf, std::size_t n, const Context* ctx) {
  Socket& s = checked(s_, "recv_from");
  Op op(s, PollMode::read, ctx, "recv_from");
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ssize_t r = ::recvfrom(s.fd, buf, n, 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r >= 0)
      return {static_cast<std::size_t>(r),
              Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len)};
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "recv_from", &s);
    op.wait();
  }
}

std::size_t UdpSocket::send_impl(const void* buf, std::size_t n, const Address& to,
                                 const Context* ctx) {
  Socket& s = checked(s_, "send_to");
  Op op(s, PollMode::write, ctx, "send_to");
  for (;;) {
    ssize_t r = ::sendto(s.fd, buf, n, MSG_NOSIGNAL, to.sockaddr_ptr(), to.sockaddr_len());
    if (r >= 0) return static_cast<std::size_t>(r);
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "send_to", &s, &to);
    op.wait();
  }
}

void UdpSocket::set_read_deadline(Deadline t) noexcept {
  set_socket_deadline(s_.get(), PollMode::read, t);
}
void UdpSocket::set_write_deadline(Deadline t) noexcept {
  set_socket_deadline(s_.get(), PollMode::write, t);
}
void UdpSocket::close() noexcept {
  if (s_) s_->close();
}
Address UdpSocket::local_address() const {
  return sockname(checked(s_, "local_address"));
}
int UdpSocket::fd() const noexcept {
  return s_ && !s_->closing() ? s_->fd : -1;
}

}  // namespace colony::net
