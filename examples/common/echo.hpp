// examples/common/echo.hpp: the connection loop of examples/echo_server.cpp (header-only, so
// that tests/http_test.cpp can run it too).
#pragma once

#include <chrono>
#include <colony/net.hpp>
#include <cstdint>
#include <system_error>

namespace example {

// echo: writes back what s reads until the peer ends its side; returns the bytes echoed.
// idle_timeout: a connection that sends nothing for this long, or does not take its echo for
// this long, is ended (returns; the caller closes it). zero: no limit. Other errors (a reset,
// the socket cut by a shutdown) are thrown.
inline std::uint64_t echo(colony::net::TcpStream& s, std::chrono::milliseconds idle_timeout) {
  std::uint64_t total = 0;
  char buf[4096];
  try {
    for (;;) {
      if (idle_timeout.count() > 0) s.set_deadline(std::chrono::steady_clock::now() + idle_timeout);
      const std::size_t n = s.read(buf, sizeof buf);
      if (n == 0) break;
      s.write_all(buf, n);
      total += n;
    }
  } catch (const std::system_error& e) {
    if (!colony::net::is_timeout(e.code())) throw;
  }
  return total;
}

}  // namespace example
