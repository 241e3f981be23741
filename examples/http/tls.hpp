// http::tls_context_from_files: the server's HTTPS settings from a certificate chain file and a
// private key file (PEM), as http_server's --tls-cert FILE --tls-key FILE take them. Set the
// result as Options::tls (it must outlive the server). Needs the library built with OpenSSL
// (COLONY_HTTP_HAVE_TLS); throws std::runtime_error when a file cannot be read and
// boost::system::system_error when they do not parse or do not match.
#pragma once

#include <colony/net/tls.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace http {

inline boost::asio::ssl::context tls_context_from_files(const std::string& cert_file,
                                                        const std::string& key_file) {
  auto slurp = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("http: cannot read " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  return colony::net::tls_server_context(slurp(cert_file), slurp(key_file));
}

}  // namespace http
