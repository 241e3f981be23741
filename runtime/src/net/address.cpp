// Address: an IPv4 or IPv6 socket address: parsing, formatting, comparison.
#include <arpa/inet.h>
#include <net/if.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "colony/net.hpp"

namespace colony::net {

Address::Address() noexcept : ss_{}, len_(0) {
  ss_.ss_family = AF_UNSPEC;
}

int Address::family() const noexcept {
  return ss_.ss_family;
}

std::uint16_t Address::port() const noexcept {
  if (is_v4()) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss_)->sin_port);
  if (is_v6()) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_port);
  return 0;
}

Address Address::with_port(std::uint16_t port) const noexcept {
  Address a = *this;
  if (a.is_v4()) reinterpret_cast<sockaddr_in*>(&a.ss_)->sin_port = htons(port);
  if (a.is_v6()) reinterpret_cast<sockaddr_in6*>(&a.ss_)->sin6_port = htons(port);
  return a;
}

std::string Address::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  if (is_v4()) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss_)->sin_addr, buf, sizeof buf);
    return buf;
  }
  if (is_v6()) {
    auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss_);
    ::inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    std::string h = buf;
    if (s6->sin6_scope_id != 0) h += "%" + std::to_string(s6->sin6_scope_id);
    return h;
  }
  return {};
}

std::string Address::to_string() const {
  if (is_v4()) return host() + ":" + std::to_string(port());
  if (is_v6()) return "[" + host() + "]:" + std::to_string(port());
  return {};
}

bool operator==(const Address& a, const Address& b) noexcept {
  if (a.family() != b.family()) return false;
  if (a.is_v4()) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a.ss_);
    auto* y = reinterpret_cast<const sockaddr_in*>(&b.ss_);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.is_v6()) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(&a.ss_);
    auto* y = reinterpret_cast<const sockaddr_in6*>(&b.ss_);
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return true;
}

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
  Address a;
  if (!sa) return a;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&a.ss_, sa, sizeof(sockaddr_in));
    a.len_ = sizeof(sockaddr_in);
  } else if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&a.ss_, sa, sizeof(sockaddr_in6));
    a.len_ = sizeof(sockaddr_in6);
  }
  return a;
}

namespace {

// parse_host: fills `a` from a numeric host and port; the error message on failure.
const char* parse_host(std::string_view host, std::uint16_t port, sockaddr_storage& ss,
                       socklen_t& len) noexcept {
  if (host.size() > INET6_ADDRSTRLEN + IF_NAMESIZE) return "host too long";
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  std::memcpy(buf, host.data(), host.size());
  ss = {};
  if (host.find(':') == std::string_view::npos) {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    if (::inet_pton(AF_INET, buf, &s4->sin_addr) != 1) return "not a numeric IPv4 address";
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return nullptr;
  }
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
  char* pct = std::strchr(buf, '%');
  if (pct) {
    *pct = '\0';
    const char* zone = pct + 1;
    if (*zone == '\0') return "empty IPv6 zone";
    char* end = nullptr;
    unsigned long id = std::strtoul(zone, &end, 10);
    if (*end != '\0') id = ::if_nametoindex(zone);
    if (id == 0) return "unknown IPv6 zone";
    s6->sin6_scope_id = static_cast<std::uint32_t>(id);
  }
  if (::inet_pton(AF_INET6, buf, &s6->sin6_addr) != 1) return "not a numeric IPv6 address";
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons(port);
  len = sizeof(sockaddr_in6);
  return nullptr;
}

// parse_address: "host:port", "[v6]:port" or ":port"; the error message on failure.
const char* parse_address(std::string_view s, sockaddr_storage& ss, socklen_t& len) noexcept {
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return "missing ']' in address";
    host = s.substr(1, close - 1);
    if (close + 1 >= s.size() || s[close + 1] != ':') return "missing port in address";
    port = s.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return "not an IPv6 address between []";
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return "missing port in address";
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return "IPv6 address must be in []";
    if (host.empty()) host = "0.0.0.0";
  }
  if (port.empty() || port.size() > 5) return "invalid port";
  unsigned p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return "invalid port";
    p = p * 10 + static_cast<unsigned>(c - '0');
  }
  if (p > 65535) return "port out of range";
  return parse_host(host, static_cast<std::uint16_t>(p), ss, len);
}

}  // namespace

std::optional<Address> Address::try_parse(std::string_view s) noexcept {
  Address a;
  if (parse_address(s, a.ss_, a.len_)) return std::nullopt;
  return a;
}

Address Address::parse(std::string_view s) {
  Address a;
  if (const char* err = parse_address(s, a.ss_, a.len_))
    throw std::invalid_argument("colony::net::Address: " + std::string(err) + ": \"" +
                                std::string(s) + "\"");
  return a;
}

Address Address::ip(std::string_view host, std::uint16_t port) {
  Address a;
  if (const char* err = parse_host(host, port, a.ss_, a.len_))
    throw std::invalid_argument("colony::net::Address: " + std::string(err) + ": \"" +
                                std::string(host) + "\"");
  return a;
}

namespace {
Address make_v4(std::uint32_t addr, std::uint16_t port) noexcept {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(port);
  s.sin_addr.s_addr = htonl(addr);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&s), sizeof s);
}
Address make_v6(const in6_addr& addr, std::uint16_t port) noexcept {
  sockaddr_in6 s{};
  s.sin6_family = AF_INET6;
  s.sin6_port = htons(port);
  s.sin6_addr = addr;
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&s), sizeof s);
}
}  // namespace

Address Address::loopback_v4(std::uint16_t port) noexcept {
  return make_v4(INADDR_LOOPBACK, port);
}
Address Address::loopback_v6(std::uint16_t port) noexcept {
  return make_v6(in6addr_loopback, port);
}
Address Address::any_v4(std::uint16_t port) noexcept {
  return make_v4(INADDR_ANY, port);
}
Address Address::any_v6(std::uint16_t port) noexcept {
  return make_v6(in6addr_any, port);
}

}  // namespace colony::net
