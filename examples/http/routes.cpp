// demo_handler (the example's routes) and Request's accessors.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include "http.hpp"

namespace http {

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

std::string_view Request::path() const {
  return target.substr(0, target.find('?'));
}

std::string_view Request::query() const {
  auto q = target.find('?');
  return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

Handler demo_handler() {
  return [](const Request& req, Response& res) {
    const std::string_view path = req.path();
    if (path == "/") {
      res.body = "Hello, World!\n";
    } else if (path == "/echo") {
      res.content_type = "application/octet-stream";
      res.body.assign(req.body);
    } else if (path == "/count") {
      res.body = std::to_string(req.body.size()) + "\n";
    } else if (path == "/sleep") {
      long ms = 0;
      std::string_view q = req.query();
      if (q.substr(0, 3) == "ms=") ms = std::strtol(std::string(q.substr(3)).c_str(), nullptr, 10);
      ms = std::clamp(ms, 0L, 60000L);
      colony::Chan<int> never;
      colony::select(colony::on_recv(req.ctx->done()), colony::on_recv(never),
                     colony::on_timeout(std::chrono::milliseconds(ms)));
      res.body = "slept\n";
    } else {
      res.status = 404;
      res.body = "404 page not found\n";
    }
  };
}

}  // namespace http
