// Concurrent use from 8 threads; metrics JSON / exports / HTTP; log verification.
#include "helpers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

using kvhtest::FailureLog;
using kvhtest::GlobalHandlerGuard;
using kvhtest::TempDir;
using kvhtest::test_config;

namespace {

// The integer value of a top-level JSON key ("key": 12).
long long json_int(const std::string &json, const std::string &key) {
  const std::string k = "\"" + key + "\"";
  size_t p = json.find(k);
  if (p == std::string::npos) return -1;
  p = json.find_first_not_of(" \t\n", p + k.size());
  if (p == std::string::npos || json[p] != ':') return -1;
  p = json.find_first_not_of(" \t\n", p + 1);
  if (p == std::string::npos) return -1;
  size_t end = p;
  if (json[end] == '-') ++end;
  while (end < json.size() && json[end] >= '0' && json[end] <= '9') ++end;
  if (end == p || (end < json.size() && (json[end] == '.' || json[end] == 'e'))) return -1;  // not an integer
  return std::stoll(json.substr(p, end - p));
}

TEST(Concurrency, EightThreadsBuffersAndPool) {
  TempDir d;
  FailureLog fl;
  GlobalHandlerGuard g(fl.handler());
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  constexpr int kThreads = 8, kIters = 60;
  constexpr uint32_t kPerThread = 4, kBlockBytes = 256;
  std::vector<unsigned char> kv(kThreads * kPerThread * kBlockBytes, 0);
  kvh::Pool pool = tr.register_pool(kvh::PoolDesc::host(kThreads * kPerThread)
                                        .model("m")
                                        .region(kv.data(), kBlockBytes, kBlockBytes));
  std::atomic<int> errors{0};
  std::vector<std::string> first_error(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      const std::string tenant = "tenant-" + std::to_string(t);
      std::vector<uint32_t> mine;
      for (uint32_t i = 0; i < kPerThread; ++i) mine.push_back(t * kPerThread + i);
      auto fail = [&](const std::string &what) {
        if (errors.fetch_add(1) == 0 || first_error[t].empty()) first_error[t] = what;
      };
      for (int i = 0; i < kIters; ++i) {
        const std::string req = "req-" + std::to_string(i);
        kvh::Result<kvh::Buffer> b = tr.try_allocate(kvh::Alloc::host(1024).ids(tenant, req, "m"));
        if (!b) { fail(b.to_string()); continue; }
        if (!b->try_mark_in_use(tenant)) fail("mark_in_use");
        kvh::Result<double> cov = b->try_sanitize();
        if (!cov || *cov != 100.0) fail("sanitize " + cov.to_string());
        if (i % 2 == 0) {
          if (!b->try_free()) fail("free");
        }  // odd iterations: the destructor frees
        if (kvh::Status s = pool.try_assign(mine, tenant, req); !s) fail("assign " + s.to_string());
        for (uint32_t blk : mine) std::memset(kv.data() + blk * kBlockBytes, t + 1, kBlockBytes);
        kvh::Result<double> pc = pool.try_release(mine);
        if (!pc || *pc != 100.0) fail("release " + pc.to_string());
      }
    });
  }
  for (auto &th : ts) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(first_error[t].empty()) << "thread " << t << ": " << first_error[t];
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(fl.size(), 0u);
  EXPECT_TRUE(kvhtest::all_zero(kv.data(), kv.size()));
  const std::string m = tr.metrics_json();
  EXPECT_EQ(json_int(m, "allocations"), kThreads * kIters) << m;
}

TEST(Metrics, JsonExportsAndHttp) {
  TempDir d;
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  const std::string empty = tr.metrics_json();
  EXPECT_EQ(json_int(empty, "allocations"), 0) << empty;
  {
    kvh::Buffer a = tr.allocate(kvh::Alloc::host(100).ids("t", "r1", "m"));
    kvh::Buffer b = tr.allocate(kvh::Alloc::host(100).ids("t", "r2", "m"));
    b.quarantine("test");
    (void)b.release();  // stays quarantined in the tracer; not reported
    a.sanitize();
  }
  const std::string m = tr.metrics_json();
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m.front(), '{');
  EXPECT_EQ(m.back(), '}');
  EXPECT_EQ(json_int(m, "allocations"), 2) << m;
  EXPECT_GE(json_int(m, "quarantine_count"), 1) << m;
  const std::string jp = d.file("metrics.json"), pp = d.file("metrics.prom");
  tr.export_metrics(jp);
  tr.export_prometheus(pp);
  EXPECT_EQ(json_int(kvhtest::read_file(jp), "allocations"), 2);
  EXPECT_NE(kvhtest::read_file(pp).find("kv_hygiene_"), std::string::npos);
  { std::ofstream(d.file("plain")) << "x"; }  // a regular file where a directory is needed
  kvh::Status bad = tr.try_export_metrics(d.file("plain/m.json"));
  EXPECT_EQ(bad.status(), KVH_E_IO) << bad.to_string();
  EXPECT_FALSE(bad.message().empty());

  // HTTP on loopback, port chosen by the library.
  const std::string addr = tr.metrics_serve("127.0.0.1:0");
  ASSERT_FALSE(addr.empty());
  EXPECT_EQ(tr.try_metrics_serve("127.0.0.1:0").status(), KVH_E_BUSY);
  const auto colon = addr.rfind(':');
  ASSERT_NE(colon, std::string::npos);
  const int port = std::stoi(addr.substr(colon + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa), 0);
  const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  ASSERT_EQ(::send(fd, req, sizeof req - 1, 0), static_cast<ssize_t>(sizeof req - 1));
  std::string resp;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_EQ(resp.rfind("HTTP/1.", 0), 0u);
  EXPECT_NE(resp.find("kv_hygiene_"), std::string::npos);
  tr.metrics_stop();
}

TEST(ForensicLog, VerifiesAndDetectsTampering) {
  TempDir d;
  const std::string log = d.file("kv.log");
  {
    kvh::Tracer tr = kvh::Tracer::open(test_config(log));
    for (int i = 0; i < 3; ++i) {
      kvh::Buffer b = tr.allocate(kvh::Alloc::host(64).ids("t", "r" + std::to_string(i), "m"));
      b.mark_in_use("t");
    }
  }
  kvh::LogVerification v = kvh::log_verify(log, kvh::LogVerifyOptions().hmac_key(kvhtest::kTestKey));
  EXPECT_TRUE(v.ok) << v.report;
  EXPECT_GE(v.records, 3u * 4u);  // allocate, write, sanitize_start/end, free per buffer
  EXPECT_NE(v.report.find("\"ok\":true"), std::string::npos) << v.report;
  // The wrong key fails verification (not an error: ok == false).
  kvh::LogVerification wrong = kvh::log_verify(log, kvh::LogVerifyOptions().hmac_key("not-the-key"));
  EXPECT_FALSE(wrong.ok);
  // Flip one recorded tenant id.
  std::string text = kvhtest::read_file(log);
  const auto pos = text.find("\"r1\"");
  ASSERT_NE(pos, std::string::npos);
  text[pos + 2] = '9';
  { std::ofstream(log, std::ios::binary | std::ios::trunc) << text; }
  kvh::LogVerification bad = kvh::log_verify(log, kvh::LogVerifyOptions().hmac_key(kvhtest::kTestKey));
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.report.find("failures"), std::string::npos);
}

}  // namespace
