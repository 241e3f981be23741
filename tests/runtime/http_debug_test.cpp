// The debug pages of examples/http/debug.hpp on a served http::Server: /debug/fibers shows a
// fiber parked in a handler, /debug/vars is JSON with the runtime's per-processor stats, and
// /metrics is Prometheus's text format with the same numbers; with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "http/debug.hpp"
#include "http/http.hpp"
#include "http_test.hpp"

using namespace std::chrono_literals;
using colony::net::TcpStream;
using colony::testing::Http;
using colony::testing::read_reply;
using colony::testing::TestServer;

namespace {

// get: one GET on a new connection; the response's body.
std::string get(const colony::net::Address& addr, const std::string& path, int want = 200) {
  TcpStream c = TcpStream::connect(addr, 5s);
  c.write_all("GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string buf;
  auto r = read_reply(c, buf);
  EXPECT_TRUE(r) << path;
  if (!r) return "";
  EXPECT_EQ(r->status, want) << path;
  return r->body;
}

// A server with the debug pages in front of demo_handler, and a /block route that parks its
// fiber on a channel until the test closes it.
struct DebugServer {
  colony::Chan<int> release;
  std::atomic<int> blocked{0};
  http::DebugOptions dbg;
  std::atomic<const http::Server*> self{nullptr};
  TestServer ts;

  DebugServer()
      : dbg(options()),
        ts({}, http::with_debug(
                   [this](const http::Request& req, http::Response& res) {
                     if (req.path() != "/block") return http::demo_handler()(req, res);
                     ++blocked;
                     (void)release.recv();
                     res.body = "released\n";
                   },
                   dbg)) {
    self.store(&ts.server());
  }
  http::DebugOptions options() {
    http::DebugOptions o;
    o.groups.emplace_back("http", [this] {
      const http::Server* s = self.load();
      return s ? http::server_vars(*s) : http::Vars{};
    });
    return o;
  }
};

TEST_P(Http, DebugFibersListsAFiberBlockedInAHandler) {
  run_fibers([&] {
    DebugServer ds;
    TcpStream c = TcpStream::connect(ds.ts.addr(), 5s);
    c.write_all("GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (ds.blocked.load() == 0 && std::chrono::steady_clock::now() < until)
      colony::this_fiber::sleep_for(1ms);
    ASSERT_EQ(ds.blocked.load(), 1);
    const std::string dump = get(ds.ts.addr(), "/debug/fibers");
    EXPECT_NE(dump.find(" fibers\n"), std::string::npos) << dump;
    // The blocked connection fiber: its wait reason and time, and where it was spawned.
    EXPECT_NE(dump.find("[chan receive, "), std::string::npos) << dump;
    EXPECT_NE(dump.find("server.cpp:"), std::string::npos) << dump;
    EXPECT_NE(dump.find("running"), std::string::npos) << "the fiber serving the dump" << dump;
    ds.release.close();
    std::string buf;
    auto r = read_reply(c, buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "released\n");
  });
}

TEST_P(Http, DebugVarsIsJsonWithPerProcessorStats) {
  run_fibers([&] {
    DebugServer ds;
    (void)get(ds.ts.addr(), "/");
    const std::string body = get(ds.ts.addr(), "/debug/vars");
    boost::property_tree::ptree t;
    std::istringstream in(body);
    ASSERT_NO_THROW(boost::property_tree::read_json(in, t)) << body;
    EXPECT_EQ(t.get<int>("colony.max_procs"), GetParam());
    EXPECT_EQ(static_cast<int>(t.get_child("colony.procs").size()), GetParam()) << body;
    std::uint64_t switches = 0;
    for (const auto& [k, p] : t.get_child("colony.procs"))
      switches += p.get<std::uint64_t>("switches");
    EXPECT_GT(switches, 0u);
    EXPECT_GE(t.get<std::uint64_t>("colony.total.switches"), switches);
    EXPECT_GE(t.get<int>("colony.fibers"), 2);  // the server's accept loop and this connection
    EXPECT_GT(t.get<std::int64_t>("process.rss_bytes"), 1 << 20);
    EXPECT_GE(t.get<int>("http.requests"), 1);
    EXPECT_GE(t.get<int>("http.open_connections"), 1);
  });
}

TEST_P(Http, MetricsAreInPrometheusTextFormat) {
  run_fibers([&] {
    DebugServer ds;
    (void)get(ds.ts.addr(), "/");
    const std::string body = get(ds.ts.addr(), "/metrics");
    const std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"\})? -?[0-9]+$)");
    const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
    std::istringstream in(body);
    int samples = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind('#', 0) == 0)
        EXPECT_TRUE(std::regex_match(line, comment)) << line;
      else if (std::regex_match(line, sample))
        ++samples;
      else
        ADD_FAILURE() << "not a sample: " << line;
    }
    EXPECT_GT(samples, 10);
    for (const std::string& want : std::vector<std::string>{
             "# TYPE colony_fibers gauge\n",
             "\ncolony_max_procs " + std::to_string(GetParam()) + "\n",
             "# TYPE colony_proc_switches_total counter\n",
             "\ncolony_proc_switches_total{proc=\"" + std::to_string(GetParam() - 1) + "\"} ",
             "\nprocess_resident_memory_bytes ", "\ncolony_http_requests_total ",
             "# TYPE colony_http_open_connections gauge\n"})
      EXPECT_NE(body.find(want), std::string::npos) << want << "\n" << body;
  });
}

}  // namespace
