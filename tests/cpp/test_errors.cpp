// Every failure becomes the right kvh::Error status / kvh::Result, through the
// wrapper and, for what the wrapper cannot express (NULL, stale handles), capi().
#include "helpers.hpp"

using kvhtest::TempDir;
using kvhtest::test_config;

namespace {

class Errors : public ::testing::Test {
 protected:
  void SetUp() override { tr_ = kvh::Tracer::open(test_config(dir_.file("kv.log"))); }
  kvh::Buffer alloc(uint64_t n = 256) { return tr_.allocate(kvh::Alloc::host(n).ids("tenant-a", "req-1", "m")); }

  TempDir dir_;
  kvh::Tracer tr_;
};

// The status, what() and message of a thrown kvh::Error.
template <class F>
kvh::status_t thrown_status(F &&f, std::string *what = nullptr, std::string *msg = nullptr) {
  try {
    f();
  } catch (const kvh::Error &e) {
    if (what != nullptr) *what = e.what();
    if (msg != nullptr) *msg = e.message();
    return e.status();
  }
  return KVH_OK;
}

TEST_F(Errors, ErrorCarriesStatusNameAndLastErrorText) {
  kvh::Buffer b = alloc();
  std::string what, msg;
  EXPECT_EQ(thrown_status([&] { b.free(); }, &what, &msg), KVH_E_COVERAGE);
  EXPECT_FALSE(msg.empty());
  EXPECT_EQ(what.rfind("KVH_E_COVERAGE: ", 0), 0u) << what;
  EXPECT_NE(what.find(msg), std::string::npos);
  // The Result form gives the same status and text.
  kvh::Buffer c = alloc();
  kvh::Status s = c.try_free();
  EXPECT_FALSE(s);
  EXPECT_EQ(s.status(), KVH_E_COVERAGE);
  EXPECT_FALSE(s.message().empty());
  EXPECT_EQ(s.error().status(), KVH_E_COVERAGE);
  EXPECT_THROW(s.value(), kvh::Error);
  EXPECT_STREQ(kvh::status_name(KVH_E_COVERAGE), "KVH_E_COVERAGE");
}

TEST_F(Errors, FreeWithoutSanitizeIsCoverageAndQuarantines) {
  kvh::Buffer b = alloc();
  b.mark_in_use();
  EXPECT_EQ(b.try_free().status(), KVH_E_COVERAGE);
  EXPECT_EQ(b.info().state, kvh::State::quarantined);
}

TEST_F(Errors, UnverifiedSanitizeIsNotEnoughToFree) {
  kvh::Buffer b = alloc(4096);
  kvh::Result<double> cov = b.try_sanitize(kvh::SanitizeOptions().verify(kvh::VerifyMode::none));
  ASSERT_TRUE(cov.ok()) << cov.to_string();
  EXPECT_DOUBLE_EQ(*cov, 0.0);
  EXPECT_EQ(b.try_free().status(), KVH_E_COVERAGE);
}

TEST_F(Errors, WrongTenantIsIsolation) {
  kvh::Buffer b = alloc();
  b.bind("tenant-a");
  EXPECT_EQ(thrown_status([&] { b.mark_in_use("tenant-evil"); }), KVH_E_ISOLATION);
  EXPECT_EQ(b.info().state, kvh::State::quarantined);
  kvh::Buffer c = alloc();
  EXPECT_EQ(c.try_bind("tenant-evil").status(), KVH_E_ISOLATION);
  kvh::Buffer e = alloc();
  EXPECT_EQ(e.try_mark_reuse("tenant-evil").status(), KVH_E_ISOLATION);
}

TEST_F(Errors, PolicyViolations) {
  kvh::Buffer r = tr_.allocate(kvh::Alloc::host(64).ids("t", "r", "m").max_reuse(0));
  r.mark_in_use("t");
  EXPECT_EQ(r.try_mark_reuse("t").status(), KVH_E_POLICY);  // 0 = first reuse violates
  EXPECT_EQ(r.info().state, kvh::State::quarantined);
  kvh::Buffer t = tr_.allocate(kvh::Alloc::host(64).ids("t", "r2", "m").ttl(0));
  EXPECT_EQ(t.try_mark_in_use("t").status(), KVH_E_POLICY);  // ttl <= 0 violates on first use
  kvh::Buffer u = tr_.allocate(kvh::Alloc::host(64).ids("t", "r3", "m").max_reuse(-1));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(u.try_mark_reuse("t").ok());
  EXPECT_EQ(u.info().reuse_count, 5);
}

TEST_F(Errors, InvalidIdentifiers) {
  const std::string too_long(KVH_MAX_ID_LEN + 1, 'x');
  const std::string at_limit(KVH_MAX_ID_LEN, 'x');
  for (const std::string &bad : {std::string("quote\"d"), std::string("new\nline"), too_long,
                                 std::string("bad\xff utf8")}) {
    kvh::Result<kvh::Buffer> r = tr_.try_allocate(kvh::Alloc::host(8).ids(bad, "r", "m"));
    EXPECT_EQ(r.status(), KVH_E_INVALID_ID) << bad.substr(0, 20) << ": " << r.to_string();
  }
  kvh::Result<kvh::Buffer> ok = tr_.try_allocate(kvh::Alloc::host(8).ids(at_limit, "r", "m"));
  EXPECT_TRUE(ok.ok()) << ok.to_string();
  kvh::Buffer b = alloc();
  EXPECT_EQ(b.try_quarantine("line\nbreak").status(), KVH_E_INVALID_ID);
}

TEST_F(Errors, BadStructSizes) {
  EXPECT_EQ(tr_.try_allocate(kvh::Alloc::host(8).ids("t", "r", "m").struct_size_override(8)).status(),
            KVH_E_STRUCT_SIZE);
  kvh::Buffer b = alloc();
  EXPECT_EQ(b.try_sanitize(kvh::SanitizeOptions().struct_size_override(3)).status(), KVH_E_STRUCT_SIZE);
  std::vector<unsigned char> mem(4 * 64);
  EXPECT_EQ(tr_.try_register_pool(kvh::PoolDesc::host(4).region(mem.data(), 64, 64).model("m").struct_size_override(
                                      sizeof(kvh_pool_desc) + 8))
                .status(),
            KVH_E_STRUCT_SIZE);
  TempDir other;
  EXPECT_EQ(kvh::Tracer::try_open(test_config(other.file("kv.log")).struct_size_override(4)).status(),
            KVH_E_STRUCT_SIZE);
  kvh_buffer_info bi{};
  bi.struct_size = 0;
  EXPECT_EQ(kvh_buffer_info_get(tr_.capi(), b.capi(), &bi), KVH_E_STRUCT_SIZE);
  EXPECT_STRNE(kvh_last_error(), "");
  // The *_init helpers set struct_size themselves.
  kvh_config c{};
  c.struct_size = 1;
  ASSERT_EQ(kvh_config_init(&c, sizeof c), KVH_OK);
  EXPECT_EQ(c.struct_size, sizeof(kvh_config));
  kvh_sanitize_opts so{};
  ASSERT_EQ(kvh_sanitize_opts_init(&so, sizeof so), KVH_OK);
  EXPECT_EQ(so.struct_size, sizeof(kvh_sanitize_opts));
  // ...and refuse a size they do not know, writing nothing.
  kvh_config small{};
  small.struct_size = 77;
  EXPECT_EQ(kvh_config_init(&small, sizeof small - 8), KVH_E_STRUCT_SIZE);
  EXPECT_EQ(small.struct_size, 77u);
}

// Forward-secure MAC settings reach the C structs; a state file that does not
// exist is an error naming it, not a tracer that silently uses no MAC.
TEST(ForwardSecure, OptionsMapToTheCStructs) {
  kvh::LogVerifyOptions vo;
  vo.fs_key("kvh-fs1:00:0:1", 1234);
  const kvh_verify_opts o = vo.capi();  // points into vo: keep it alive
  ASSERT_NE(o.fs_verify_key, nullptr);
  EXPECT_STREQ(o.fs_verify_key, "kvh-fs1:00:0:1");
  EXPECT_EQ(o.fs_now_unix, 1234);
  EXPECT_EQ(kvh::LogVerifyOptions().capi().fs_verify_key, nullptr);
  TempDir dir;
  const std::string missing = dir.file("absent.state");
  kvh::Result<kvh::Tracer> r =
      kvh::Tracer::try_open(kvh::Config().log_path(dir.file("kv.log")).fs_state_path(missing));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("absent.state"), std::string::npos) << r.message();
}

TEST_F(Errors, RawNullArguments) {
  uint64_t h = 0;
  kvh_alloc_desc d{};
  d.struct_size = sizeof d;
  d.nbytes = 8;
  d.tenant_id = "t";
  d.request_id = "r";
  d.model_id = "m";
  EXPECT_EQ(kvh_allocate(tr_.capi(), nullptr, &h), KVH_E_NULL_ARG);
  EXPECT_STRNE(kvh_last_error(), "");
  EXPECT_EQ(kvh_allocate(tr_.capi(), &d, nullptr), KVH_E_NULL_ARG);
  EXPECT_EQ(kvh_allocate(nullptr, &d, &h), KVH_E_NULL_ARG);
  d.tenant_id = nullptr;
  EXPECT_EQ(kvh_allocate(tr_.capi(), &d, &h), KVH_E_NULL_ARG);
  EXPECT_EQ(kvh_tracer_close(nullptr), KVH_E_NULL_ARG);
  kvh::Buffer b = alloc();
  EXPECT_EQ(b.try_quarantine(nullptr).status(), KVH_E_NULL_ARG);
}

TEST_F(Errors, RawStaleUnknownAndForeignHandles) {
  kvh::Buffer b = alloc();
  b.sanitize();
  const uint64_t h = b.capi();
  kvh_tracer *t = tr_.capi();
  b.free();
  double cov = 0;
  // A second free is KVH_E_FREED (and logs nothing).
  EXPECT_EQ(kvh_free(t, h), KVH_E_FREED);
  EXPECT_STRNE(kvh_last_error(), "");
  EXPECT_TRUE(kvhtest::stale_status(kvh_sanitize(t, h, nullptr, &cov)));
  EXPECT_TRUE(kvhtest::stale_status(kvh_mark_in_use(t, h, nullptr)));
  // The stale handle never reaches a newer buffer.
  kvh::Buffer n = alloc();
  EXPECT_NE(n.capi(), h);
  EXPECT_TRUE(kvhtest::stale_status(kvh_quarantine(t, h, "stale")));
  EXPECT_EQ(n.info().state, kvh::State::allocated);
  EXPECT_EQ(kvh_free(t, 0), KVH_E_UNKNOWN_HANDLE);
  EXPECT_EQ(kvh_attest_coverage(t, 0xdeadbeefcafeull, &cov), KVH_E_UNKNOWN_HANDLE);
  // A handle of another tracer.
  TempDir other;
  kvh::Tracer tr2 = kvh::Tracer::open(test_config(other.file("kv.log")));
  kvh::Buffer f = tr2.allocate(kvh::Alloc::host(8).ids("t", "r", "m"));
  EXPECT_EQ(kvh_attest_coverage(t, f.capi(), &cov), KVH_E_UNKNOWN_HANDLE);
  EXPECT_EQ(kvh_pool_sync(t, 0, &cov), KVH_E_UNKNOWN_HANDLE);
}

TEST_F(Errors, NonThrowingApiNeverThrows) {
  kvh::Buffer empty;
  EXPECT_EQ(empty.try_sanitize().status(), KVH_E_UNKNOWN_HANDLE);
  EXPECT_EQ(empty.try_info().status(), KVH_E_UNKNOWN_HANDLE);
  kvh::Pool nopool;
  EXPECT_EQ(nopool.try_release({1u, 2u}).status(), KVH_E_UNKNOWN_HANDLE);
  kvh::Result<double> r = empty.try_coverage();
  EXPECT_DOUBLE_EQ(std::move(r).value_or(-1.0), -1.0);
  kvh::Tracer none;
  EXPECT_EQ(none.try_metrics_json().status(), KVH_E_CLOSED);
  EXPECT_EQ(none.try_flush().status(), KVH_E_CLOSED);
}

TEST_F(Errors, LogErrors) {
  // A log path under a regular file cannot be created.
  const std::string file = dir_.file("plain");
  { std::ofstream(file) << "x"; }
  kvh::Result<kvh::Tracer> r = kvh::Tracer::try_open(test_config(file + "/kv.log"));
  EXPECT_TRUE(r.status() == KVH_E_IO || r.status() == KVH_E_LOG) << r.to_string();
  EXPECT_FALSE(r.message().empty());
  kvh::Result<kvh::LogVerification> v = kvh::try_log_verify(dir_.file("missing.log"));
  EXPECT_EQ(v.status(), KVH_E_IO) << v.to_string();
  // Checkpoint without checkpoint_dir configured.
  EXPECT_FALSE(tr_.try_checkpoint().ok());
}

}  // namespace
