// RAII behaviour of kvh::Tracer / kvh::Buffer / kvh::Pool against the real library.
#include "helpers.hpp"

#include <cstring>
#include <filesystem>
#include <type_traits>

using kvhtest::FailureLog;
using kvhtest::GlobalHandlerGuard;
using kvhtest::TempDir;
using kvhtest::test_config;

static_assert(!std::is_copy_constructible<kvh::Tracer>::value, "Tracer is move-only");
static_assert(!std::is_copy_assignable<kvh::Tracer>::value, "Tracer is move-only");
static_assert(std::is_nothrow_move_constructible<kvh::Tracer>::value, "Tracer moves");
static_assert(!std::is_copy_constructible<kvh::Buffer>::value, "Buffer is move-only");
static_assert(std::is_nothrow_move_constructible<kvh::Buffer>::value, "Buffer moves");
static_assert(std::is_nothrow_move_assignable<kvh::Buffer>::value, "Buffer moves");
static_assert(!std::is_copy_constructible<kvh::Pool>::value, "Pool is move-only");
static_assert(std::is_nothrow_move_constructible<kvh::Pool>::value, "Pool moves");
static_assert(std::is_nothrow_destructible<kvh::Buffer>::value, "Buffer destructor never throws");
static_assert(std::is_nothrow_destructible<kvh::Pool>::value, "Pool destructor never throws");
static_assert(std::is_nothrow_destructible<kvh::Tracer>::value, "Tracer destructor never throws");

namespace {

kvh::Alloc host_alloc(uint64_t n, const char *tenant = "tenant-a", const char *req = "req-1") {
  return kvh::Alloc::host(n).ids(tenant, req, "model-x");
}

TEST(Version, MatchesHeaderMajor) {
  EXPECT_TRUE(kvh::try_check_version().ok());
  EXPECT_NO_THROW(kvh::check_version());
  EXPECT_EQ(kvh::version_number() / 10000, static_cast<uint32_t>(KVH_VERSION_MAJOR));
  const std::string v = kvh::version();
  EXPECT_EQ(v.substr(0, v.find('.')), std::to_string(KVH_VERSION_MAJOR));
}

TEST(Tracer, OpenWritesLogAndCloseOnce) {
  TempDir d;
  const std::string log = d.file("kv.log");
  kvh::Tracer tr = kvh::Tracer::open(test_config(log));
  ASSERT_TRUE(tr);
  EXPECT_NE(tr.capi(), nullptr);
  {
    kvh::Buffer b = tr.allocate(host_alloc(64));
    b.mark_in_use();
  }
  tr.close();
  EXPECT_FALSE(tr);
  EXPECT_EQ(tr.capi(), nullptr);
  // A second close never reaches the library.
  kvh::Status s = tr.try_close();
  EXPECT_EQ(s.status(), KVH_E_CLOSED);
  EXPECT_THROW(tr.close(), kvh::Error);
  // The log was flushed: it has allocate ... free records.
  const std::string text = kvhtest::read_file(log);
  EXPECT_NE(text.find("\"allocate\""), std::string::npos);
  EXPECT_NE(text.find("\"free\""), std::string::npos);
}

TEST(Tracer, DestructorClosesSoTheLogCanBeReopened) {
  TempDir d;
  const std::string log = d.file("kv.log");
  {
    kvh::Tracer tr = kvh::Tracer::open(test_config(log));
    // While open, a second writer on the same log is refused.
    kvh::Result<kvh::Tracer> second = kvh::Tracer::try_open(test_config(log));
    EXPECT_EQ(second.status(), KVH_E_LOG) << second.to_string();
    EXPECT_FALSE(second.message().empty());
  }
  kvh::Result<kvh::Tracer> again = kvh::Tracer::try_open(test_config(log));
  EXPECT_TRUE(again.ok()) << again.to_string();
}

TEST(Tracer, RetentionKeepsRotatedFilesWithinTheLimit) {
  TempDir d;
  const std::string log = d.file("kv.log");
  {
    kvh::Tracer tr = kvh::Tracer::open(test_config(log).max_log_bytes(4096).retention(0, 0, d.file("archive")));
    for (int i = 0; i < 50; i++) {
      kvh::Buffer b = tr.allocate(host_alloc(64));
      b.mark_in_use();
    }  // each destructor sanitizes and frees: ~5 records per buffer, several rotations
  }    // close applies retention to what was still queued
  int rotated = 0, archived = 0;
  for (const auto &e : std::filesystem::directory_iterator(d.path()))
    rotated += e.path().filename().string().rfind("kv-", 0) == 0;
  for (const auto &e : std::filesystem::directory_iterator(d.file("archive")))
    archived += e.path().extension() == ".log";
  EXPECT_EQ(rotated, 0) << "max_rotated 0 keeps no rotated file";
  EXPECT_GT(archived, 0) << "pruned files were archived";
  EXPECT_NE(kvhtest::read_file(log).find("\"prune\""), std::string::npos);

  kvh::Result<kvh::Tracer> unlimited = kvh::Tracer::try_open(test_config(d.file("other.log")).retention(0, -1));
  EXPECT_EQ(unlimited.status(), KVH_E_CONFIG) << unlimited.to_string();
}

TEST(Tracer, MovedFromIsInert) {
  TempDir d;
  kvh::Tracer a = kvh::Tracer::open(test_config(d.file("kv.log")));
  kvh_tracer *raw = a.capi();
  kvh::Tracer b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): inertness is the point
  EXPECT_EQ(a.capi(), nullptr);
  EXPECT_EQ(b.capi(), raw);
  kvh::Result<kvh::Buffer> r = a.try_allocate(host_alloc(16));
  EXPECT_EQ(r.status(), KVH_E_CLOSED);
  EXPECT_NE(r.message().find("empty tracer"), std::string::npos) << r.message();
  EXPECT_EQ(a.try_close().status(), KVH_E_CLOSED);
  kvh::Tracer c;
  c = std::move(b);
  EXPECT_EQ(c.capi(), raw);
  kvh::Buffer buf = c.allocate(host_alloc(16));
  EXPECT_TRUE(buf);
}

TEST(Tracer, OutlivedByItsBuffersClosesAfterTheLastOne) {
  TempDir d;
  const std::string log = d.file("kv.log");
  FailureLog fl;
  GlobalHandlerGuard g(fl.handler());
  kvh::Buffer b;
  {
    kvh::Tracer tr = kvh::Tracer::open(test_config(log));
    b = tr.allocate(host_alloc(128));
  }
  // The tracer object is gone but the C tracer stays open for the buffer.
  EXPECT_NE(b.tracer_capi(), nullptr);
  EXPECT_DOUBLE_EQ(b.sanitize(), 100.0);
  EXPECT_EQ(kvh::Tracer::try_open(test_config(log)).status(), KVH_E_LOG);
  b = kvh::Buffer();  // last owner: sanitize + free + close
  EXPECT_EQ(fl.size(), 0u);
  kvh::Result<kvh::Tracer> again = kvh::Tracer::try_open(test_config(log));
  EXPECT_TRUE(again.ok()) << again.to_string();
}

TEST(Buffer, LifecycleZeroesLibraryOwnedMemory) {
  TempDir d;
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  kvh::Buffer b = tr.allocate(host_alloc(4096, "tenant-a", "req-7"));
  kvh::BufferInfo i = b.info();
  EXPECT_EQ(i.state, kvh::State::allocated);
  EXPECT_EQ(i.nbytes, 4096u);
  EXPECT_TRUE(i.library_owned);
  EXPECT_EQ(i.tenant_id, "tenant-a");
  EXPECT_EQ(i.request_id, "req-7");
  EXPECT_EQ(i.model_id, "model-x");
  auto *p = static_cast<unsigned char *>(b.data());
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x5a, 4096);
  b.bind("tenant-a", "stream-0");
  EXPECT_EQ(b.info().state, kvh::State::bound);
  b.mark_in_use("tenant-a");
  EXPECT_EQ(b.info().state, kvh::State::in_use);
  EXPECT_DOUBLE_EQ(b.sanitize(kvh::SanitizeOptions::full()), 100.0);
  EXPECT_TRUE(kvhtest::all_zero(p, 4096));
  EXPECT_EQ(b.info().state, kvh::State::sanitized);
  EXPECT_DOUBLE_EQ(b.coverage(), 100.0);
  b.free();
  EXPECT_FALSE(b);
  EXPECT_EQ(b.handle(), 0u);
  // Freed: the wrapper refuses without reaching the library, as KVH_E_FREED.
  EXPECT_EQ(b.try_free().status(), KVH_E_FREED);
  EXPECT_EQ(b.try_info().status(), KVH_E_FREED);
}

TEST(Buffer, DestructorSanitizesAndFreesCallerRegion) {
  TempDir d;
  FailureLog fl;
  GlobalHandlerGuard g(fl.handler());
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  std::vector<unsigned char> region(8192, 0xab);
  uint64_t h = 0;
  {
    kvh::Buffer b = tr.allocate(kvh::Alloc::region(region.data(), region.size()).ids("t1", "r1", "m1"));
    h = b.handle();
    ASSERT_NE(h, 0u);
    EXPECT_FALSE(b.info().library_owned);
    b.mark_in_use("t1");
    EXPECT_FALSE(kvhtest::all_zero(region.data(), region.size()));
  }
  EXPECT_TRUE(kvhtest::all_zero(region.data(), region.size()));
  int32_t state = -1;
  EXPECT_TRUE(kvhtest::stale_status(kvhtest::raw_state(tr.capi(), h, &state)));
  EXPECT_EQ(fl.size(), 0u);
}

TEST(Buffer, MovedFromIsInertAndMoveAssignDisposesTheOld) {
  TempDir d;
  FailureLog fl;
  GlobalHandlerGuard g(fl.handler());
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  kvh::Buffer a = tr.allocate(host_alloc(256));
  kvh::Buffer x = tr.allocate(host_alloc(256, "tenant-b", "req-2"));
  const uint64_t ha = a.handle(), hx = x.handle();
  kvh::Buffer b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.handle(), 0u);
  EXPECT_EQ(b.handle(), ha);
  kvh::Result<double> r = a.try_sanitize();
  EXPECT_EQ(r.status(), KVH_E_UNKNOWN_HANDLE);
  EXPECT_NE(r.message().find("moved-from"), std::string::npos) << r.message();
  EXPECT_THROW(a.mark_in_use(), kvh::Error);
  // x's old buffer is sanitized and freed by the move assignment.
  x = std::move(b);
  EXPECT_EQ(x.handle(), ha);
  int32_t state = -1;
  EXPECT_TRUE(kvhtest::stale_status(kvhtest::raw_state(tr.capi(), hx, &state)));
  EXPECT_EQ(kvhtest::raw_state(tr.capi(), ha, &state), KVH_OK);
  x = std::move(x);  // self-move keeps the buffer  NOLINT
  EXPECT_EQ(kvhtest::raw_state(tr.capi(), ha, &state), KVH_OK);
  EXPECT_EQ(fl.size(), 0u);
}

TEST(Buffer, ReleaseGivesUpOwnership) {
  TempDir d;
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  uint64_t h = 0;
  {
    kvh::Buffer b = tr.allocate(host_alloc(64));
    h = b.release();
    EXPECT_FALSE(b);
  }
  int32_t state = -1;
  ASSERT_EQ(kvhtest::raw_state(tr.capi(), h, &state), KVH_OK);  // still live
  EXPECT_EQ(state, KVH_STATE_ALLOCATED);
  double cov = 0;
  ASSERT_EQ(kvh_sanitize(tr.capi(), h, nullptr, &cov), KVH_OK);
  EXPECT_EQ(kvh_free(tr.capi(), h), KVH_OK);
}

TEST(Buffer, DestructorFailureQuarantinesAndReportsToTracerHandler) {
  TempDir d;
  FailureLog global, local;
  GlobalHandlerGuard g(global.handler());
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  tr.set_failure_handler(local.handler());
  uint64_t h = 0;
  {
    kvh::Buffer b = tr.allocate(host_alloc(512, "tenant-a"));
    h = b.handle();
    // Another tenant touches it: isolation violation, quarantined (sticky).
    kvh::Status s = b.try_mark_in_use("tenant-b");
    EXPECT_EQ(s.status(), KVH_E_ISOLATION) << s.to_string();
    EXPECT_EQ(b.info().state, kvh::State::quarantined);
  }  // ~Buffer: sanitize passes, free is refused (quarantined): reported, not thrown
  ASSERT_EQ(local.size(), 1u);
  EXPECT_EQ(global.size(), 0u);
  const kvh::Failure &f = local.failures[0];
  EXPECT_EQ(f.handle, h);
  EXPECT_EQ(f.status, KVH_E_QUARANTINED) << f.to_string();
  EXPECT_TRUE(f.quarantined);
  EXPECT_FALSE(f.message.empty());
  EXPECT_NE(f.operation.find("~Buffer"), std::string::npos);
  int32_t state = -1;
  ASSERT_EQ(kvhtest::raw_state(tr.capi(), h, &state), KVH_OK);
  EXPECT_EQ(state, KVH_STATE_QUARANTINED);
}

TEST(Buffer, DestructorFailureGoesToGlobalHandlerAndThrowingHandlerIsSwallowed) {
  TempDir d;
  FailureLog global;
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  {
    GlobalHandlerGuard g(global.handler());
    kvh::Buffer b = tr.allocate(host_alloc(64));
    b.quarantine("test: suspicious");
  }
  ASSERT_EQ(global.size(), 1u);
  EXPECT_EQ(global.failures[0].status, KVH_E_QUARANTINED);
  int calls = 0;
  tr.set_failure_handler([&calls](const kvh::Failure &) {
    ++calls;
    throw std::runtime_error("handler throws");
  });
  {
    kvh::Buffer b = tr.allocate(host_alloc(64));
    b.quarantine("test: suspicious");
  }  // must not terminate
  EXPECT_EQ(calls, 1);
}

TEST(Buffer, DestructorAfterExplicitCloseReportsClosed) {
  TempDir d;
  FailureLog local;
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  tr.set_failure_handler(local.handler());
  kvh::Buffer b = tr.allocate(host_alloc(64));
  const uint64_t h = b.handle();
  tr.close();
  EXPECT_EQ(b.try_sanitize().status(), KVH_E_CLOSED);
  EXPECT_EQ(b.tracer_capi(), nullptr);
  b = kvh::Buffer();
  ASSERT_EQ(local.size(), 1u);
  EXPECT_EQ(local.failures[0].status, KVH_E_CLOSED);
  EXPECT_EQ(local.failures[0].handle, h);
}

TEST(Buffer, QuarantineIsStickyUntilSanitizedAndReleased) {
  TempDir d;
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  kvh::Buffer b = tr.allocate(host_alloc(1024));
  b.quarantine("operator");
  EXPECT_EQ(b.try_free().status(), KVH_E_QUARANTINED);
  EXPECT_TRUE(b);  // a refused free keeps ownership
  EXPECT_EQ(b.try_release_quarantine("too early").status(), KVH_E_STATE);
  EXPECT_DOUBLE_EQ(b.sanitize(), 100.0);
  EXPECT_EQ(b.info().state, kvh::State::quarantined);
  b.release_quarantine("sanitized and verified");
  b.free();
  EXPECT_FALSE(b);
}

TEST(Buffer, SanitizeManyReturnsEveryCoverage) {
  TempDir d;
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  std::vector<unsigned char> r1(1000, 1), r2(3000, 2);
  kvh::Buffer a = tr.allocate(kvh::Alloc::region(r1.data(), r1.size()).ids("t", "r1", "m"));
  kvh::Buffer b = tr.allocate(kvh::Alloc::region(r2.data(), r2.size()).ids("t", "r2", "m"));
  kvh::Buffer c = tr.allocate(host_alloc(0));  // zero-length: 100 % after sanitize
  std::vector<double> cov = tr.sanitize_many({&a, &b, &c});
  ASSERT_EQ(cov.size(), 3u);
  for (double v : cov) EXPECT_DOUBLE_EQ(v, 100.0);
  EXPECT_TRUE(kvhtest::all_zero(r1.data(), r1.size()));
  EXPECT_TRUE(kvhtest::all_zero(r2.data(), r2.size()));
  a.free();
  b.free();
  c.free();
}

TEST(Tracer, AdoptTakesOwnershipOfARawTracer) {
  TempDir d;
  kvh_config c{};
  c.struct_size = sizeof c;
  ASSERT_EQ(kvh_config_init(&c, sizeof c), KVH_OK);
  const std::string log = d.file("kv.log");
  c.log_path = log.c_str();
  kvh_tracer *raw = nullptr;
  ASSERT_EQ(kvh_tracer_open(&c, &raw), KVH_OK);
  {
    kvh::Tracer tr = kvh::Tracer::adopt(raw);
    EXPECT_EQ(tr.capi(), raw);
    kvh::Buffer b = tr.allocate(host_alloc(32));
    EXPECT_TRUE(b);
  }  // closed here: the log is free again
  EXPECT_TRUE(kvh::Tracer::try_open(test_config(log)).ok());
  EXPECT_FALSE(kvh::Tracer::adopt(nullptr));
}

TEST(Pool, DestructorAfterExplicitCloseReportsClosed) {
  TempDir d;
  FailureLog local;
  kvh::Tracer tr = kvh::Tracer::open(test_config(d.file("kv.log")));
  tr.set_failure_handler(local.handler());
  std::vector<unsigned char> mem(4 * 64);
  kvh::Pool p = tr.register_pool(kvh::PoolDesc::host(4).model("m").region(mem.data(), 64, 64));
  const uint64_t h = p.capi();
  tr.close();
  EXPECT_EQ(p.try_assign({0u}, "t", "r").status(), KVH_E_CLOSED);
  p = kvh::Pool();
  ASSERT_EQ(local.size(), 1u);
  EXPECT_EQ(local.failures[0].status, KVH_E_CLOSED);
  EXPECT_EQ(local.failures[0].handle, h);
  EXPECT_NE(local.failures[0].operation.find("~Pool"), std::string::npos);
}

TEST(ResultType, ValueStatusAndMessage) {
  kvh::Result<int> ok(7);
  EXPECT_TRUE(ok);
  EXPECT_EQ(ok.status(), KVH_OK);
  EXPECT_EQ(*ok, 7);
  EXPECT_EQ(ok.value_or(3), 7);
  EXPECT_EQ(ok.to_string(), "KVH_OK");
  kvh::Result<int> bad(KVH_E_FREED, "gone");
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.value_or(3), 3);
  EXPECT_EQ(bad.to_string(), "KVH_E_FREED: gone");
  EXPECT_EQ(bad.status_only().status(), KVH_E_FREED);
  try {
    (void)bad.value();
    ADD_FAILURE() << "value() of an error must throw";
  } catch (const kvh::Error &e) {
    EXPECT_EQ(e.status(), KVH_E_FREED);
    EXPECT_EQ(e.message(), "gone");
    EXPECT_STREQ(e.name(), "KVH_E_FREED");
    EXPECT_STREQ(e.what(), "KVH_E_FREED: gone");
  }
  // A "failure" built from KVH_OK cannot pass for success.
  kvh::Result<int> odd(KVH_OK, "");
  EXPECT_FALSE(odd);
  EXPECT_EQ(odd.status(), KVH_E_INTERNAL);
  kvh::Status s;
  EXPECT_TRUE(s);
  EXPECT_NO_THROW(s.value());
}

}  // namespace
