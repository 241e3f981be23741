// colony::net::TlsStream: TLS over colony sockets, with OpenSSL through Boost.Asio's ssl::stream
// used synchronously. Every call parks the fiber (or blocks a plain thread) on the netpoller, as
// AsioStream's do: handshake, read_some, write_some, shutdown, and Beast's http::read/write and
// websocket::stream<TlsStream> on top.
//
//   // server
//   auto sctx = colony::net::tls_server_context(cert_chain_pem, key_pem);
//   colony::net::TlsStream s(colony::net::AsioStream(ln.accept()), sctx);
//   s.handshake(boost::asio::ssl::stream_base::server);
//   // client: verifies the server's certificate chain and its name
//   auto cctx = colony::net::tls_client_context();            // system trust store
//   colony::net::TlsStream c(colony::net::AsioStream(TcpStream::connect(addr)), cctx);
//   colony::net::tls_client_setup(c, "example.com");         // SNI + host-name check
//   c.handshake(boost::asio::ssl::stream_base::client);
//
// Certificate verification for clients: Asio's ssl::context verifies nothing unless told to
// (verify_none); tls_client_context() turns verification on (verify_peer, with the system's
// trust store from set_default_verify_paths, TLS 1.2 at least). Trust other authorities with
// add_certificate_authority on the context. tls_client_setup adds the name check: a chain that
// verifies but was issued for another name is refused too. To turn verification off (tests
// only), call set_verify_mode(boost::asio::ssl::verify_none) on the context.
//
// Errors are boost::system::error_code: OpenSSL's (category asio.ssl, e.g. "certificate verify
// failed"), asio::ssl::error::stream_truncated when the peer closes without close_notify, and
// the TCP ones of <colony/net/asio.hpp> (timed_out, eof, connection_reset, ...). A failed
// handshake is an error code (or boost::system::system_error from the throwing overload),
// never a crash. Deadlines and Context: set them on s.next_layer() (the AsioStream).
//
// Needs OpenSSL (target colony::tls, which links OpenSSL::SSL and OpenSSL::Crypto); colony's
// core never links it. Only the synchronous operations are supported (see asio.hpp, on the
// executor).
#pragma once

#include <boost/asio/ssl.hpp>
#include <string>
#include <string_view>

#include "colony/net/asio.hpp"

namespace colony::net {

// TlsStream: a TLS stream over an AsioStream. next_layer() is the AsioStream (deadlines, Context,
// close); lowest_layer() too.
using TlsStream = boost::asio::ssl::stream<AsioStream>;

// tls_client_context: a client context that verifies the server (see the top): TLS 1.2 or
// later, verify_peer, the system's default trust store.
inline boost::asio::ssl::context tls_client_context() {
  namespace ssl = boost::asio::ssl;
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  ctx.set_default_verify_paths();
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

// tls_server_context: a server context presenting `cert_chain_pem` (the certificate, then any
// intermediates, PEM) with the private key `key_pem` (PEM); TLS 1.2 or later. Throws
// boost::system::system_error when they do not parse or do not match.
inline boost::asio::ssl::context tls_server_context(std::string_view cert_chain_pem,
                                                    std::string_view key_pem) {
  namespace ssl = boost::asio::ssl;
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  ctx.use_certificate_chain(boost::asio::buffer(cert_chain_pem.data(), cert_chain_pem.size()));
  ctx.use_private_key(boost::asio::buffer(key_pem.data(), key_pem.size()), ssl::context::pem);
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    throw boost::system::system_error(
        boost::system::error_code(static_cast<int>(::ERR_get_error()),
                                  boost::asio::error::get_ssl_category()),
        "colony::net: tls_server_context: the key does not match the certificate");
  return ctx;
}

// tls_client_setup: before a client handshake: sends `host` as SNI (unless it is an IP address,
// which SNI may not carry) and checks that the server's certificate was issued for `host` (a DNS
// name, or an IP address against the certificate's IP entries). Sets ec when OpenSSL refuses.
inline void tls_client_setup(TlsStream& s, const std::string& host, boost::system::error_code& ec) {
  ec = {};
  boost::system::error_code parse;
  boost::asio::ip::make_address(host, parse);
  if (parse && SSL_set_tlsext_host_name(s.native_handle(), host.c_str()) != 1) {
    ec = boost::system::error_code(static_cast<int>(::ERR_get_error()),
                                   boost::asio::error::get_ssl_category());
    return;
  }
  s.set_verify_callback(boost::asio::ssl::host_name_verification(host), ec);
}
inline void tls_client_setup(TlsStream& s, const std::string& host) {
  boost::system::error_code ec;
  tls_client_setup(s, host, ec);
  if (ec) throw boost::system::system_error(ec, "colony::net: tls_client_setup");
}

}  // namespace colony::net
