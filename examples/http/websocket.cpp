// The WebSocket echo endpoint: Beast's websocket::stream over the connection's stream (plain or
// TLS), synchronous, on the connection's fiber. Each message goes back as it came (text or
// binary, whole: a fragmented message is read whole, then written as one). The session ends
// when the client closes it, after idle_timeout without a message, on a message larger than
// Limits::max_message_bytes (close code 1009), or at the server's shutdown.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#if defined(COLONY_HTTP_HAVE_TLS)
#include <boost/beast/websocket/ssl.hpp>
#endif
#include <chrono>

#include "conn.hpp"

namespace http {

template <class Stream>
void websocket_echo(Stream& s, const BeastRequest& req, const Options& opts,
                    std::atomic<bool>& idle, const std::atomic<bool>& stopping) {
  namespace websocket = boost::beast::websocket;
  using Clock = std::chrono::steady_clock;
  websocket::stream<Stream&> ws(s);
  ws.read_message_max(opts.limits.max_message_bytes);
  boost::beast::error_code ec;
  lowest(s).set_write_deadline(Clock::now() + opts.io_timeout);
  ws.accept(req, ec);
  if (ec) return;
  boost::beast::flat_buffer buf;
  for (;;) {
    idle.store(true);
    if (stopping.load()) break;
    lowest(s).set_read_deadline(Clock::now() + opts.idle_timeout);
    ws.read(buf, ec);
    idle.store(false);
    if (ec) break;  // closed by the client (ec == websocket::error::closed), gone, or too big
    ws.text(ws.got_text());
    lowest(s).set_write_deadline(Clock::now() + opts.io_timeout);
    ws.write(buf.data(), ec);
    if (ec) return;
    buf.clear();
    if (buf.capacity() > 64 * 1024) buf.shrink_to_fit();
  }
  if (ws.is_open()) {  // idle, shutdown or an error of ours: say goodbye, briefly
    lowest(s).set_deadline(Clock::now() + opts.linger_quiet);
    ws.close(websocket::close_code::going_away, ec);
  }
}

template void websocket_echo<colony::net::AsioStream>(colony::net::AsioStream&, const BeastRequest&,
                                                      const Options&, std::atomic<bool>&,
                                                      const std::atomic<bool>&);
#if defined(COLONY_HTTP_HAVE_TLS)
template void websocket_echo<colony::net::TlsStream>(colony::net::TlsStream&, const BeastRequest&,
                                                     const Options&, std::atomic<bool>&,
                                                     const std::atomic<bool>&);
#endif

}  // namespace http
