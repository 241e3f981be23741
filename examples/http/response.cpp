// Responses: a Response's head serialised by Beast's response_serializer onto the connection's
// output buffer, with a Date field formatted once a second.
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/serializer.hpp>
#include <ctime>
#include <mutex>

#include "conn.hpp"

namespace http {

namespace {

// DateCache: the Date field's value, formatted once a second.
class DateCache {
 public:
  std::string get() {
    const std::time_t now = std::time(nullptr);
    std::lock_guard<colony::sched::SpinLock> lk(lock_);
    if (now != sec_) {
      std::tm tm{};
      ::gmtime_r(&now, &tm);
      len_ = std::strftime(buf_, sizeof buf_, "%a, %d %b %Y %H:%M:%S GMT", &tm);
      sec_ = now;
    }
    return std::string(buf_, len_);
  }

 private:
  colony::sched::SpinLock lock_;
  std::time_t sec_ = 0;
  char buf_[64] = {};
  std::size_t len_ = 0;
};
DateCache g_date;

}  // namespace

void append_response(std::string& out, const Response& res, bool head_only, bool close,
                     bool http10_keep_alive) {
  namespace bh = beast_http;
  bh::response<bh::empty_body> m;
  m.version(11);
  m.result(static_cast<unsigned>(res.status));
  m.set(bh::field::date, g_date.get());
  m.content_length(res.body.size());
  if (!res.content_type.empty()) m.set(bh::field::content_type, res.content_type);
  for (const auto& [k, v] : res.headers) m.insert(k, v);
  if (close)
    m.set(bh::field::connection, "close");
  else if (http10_keep_alive)
    m.set(bh::field::connection, "keep-alive");
  bh::response_serializer<bh::empty_body> sr(m);
  boost::beast::error_code ec;
  while (!sr.is_done()) {
    sr.next(ec, [&](boost::beast::error_code&, const auto& buffers) {
      std::size_t n = 0;
      for (auto b : boost::beast::buffers_range_ref(buffers)) {
        out.append(static_cast<const char*>(b.data()), b.size());
        n += b.size();
      }
      sr.consume(n);
    });
    if (ec) break;  // an empty body cannot fail
  }
  if (!head_only) out += res.body;
}

void append_error(std::string& out, int status, const char* why) {
  Response r;
  r.status = status;
  r.body = std::string(why) + "\n";
  append_response(out, r, false, true, false);
}

}  // namespace http
