// kvh::Pool over a host-memory paged KV layout (vLLM: per layer a K and a V array).
#include "helpers.hpp"

#include <array>
#include <cstring>

using kvhtest::FailureLog;
using kvhtest::GlobalHandlerGuard;
using kvhtest::TempDir;
using kvhtest::test_config;

namespace {

constexpr uint32_t kBlocks = 16;
constexpr uint64_t kBlockBytes = 512;
constexpr int kLayers = 2;

// [layer][K|V] arrays of kBlocks blocks each.
struct HostKV {
  std::vector<std::vector<unsigned char>> arrays;
  HostKV() : arrays(2 * kLayers, std::vector<unsigned char>(kBlocks * kBlockBytes, 0)) {}
  kvh::PoolDesc desc() const {
    kvh::PoolDesc d = kvh::PoolDesc::host(kBlocks).model("llama-test").name("kv").verify(kvh::VerifyMode::full);
    for (const auto &a : arrays) d.region(a.data(), kBlockBytes, kBlockBytes);
    return d;
  }
  void fill(uint32_t block, unsigned char v) {
    for (auto &a : arrays) std::memset(a.data() + block * kBlockBytes, v, kBlockBytes);
  }
  bool zero(uint32_t block) const {
    for (const auto &a : arrays)
      if (!kvhtest::all_zero(a.data() + block * kBlockBytes, kBlockBytes)) return false;
    return true;
  }
};

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tr_ = kvh::Tracer::open(test_config(dir_.file("kv.log")));
    pool_ = tr_.register_pool(kv_.desc());
  }
  TempDir dir_;
  HostKV kv_;
  kvh::Tracer tr_;
  kvh::Pool pool_;
};

TEST_F(PoolTest, AssignWriteReleaseZeroesEveryRegion) {
  ASSERT_TRUE(pool_);
  const std::vector<uint32_t> blocks{0, 3, 7};
  pool_.assign(blocks, "tenant-a", "req-1");
  for (uint32_t b : blocks) kv_.fill(b, 0xa5);
  kv_.fill(9, 0x11);  // not released: must stay as written
  EXPECT_FALSE(kv_.zero(3));
  EXPECT_DOUBLE_EQ(pool_.release(blocks), 100.0);
  for (uint32_t b : blocks) EXPECT_TRUE(kv_.zero(b)) << "block " << b;
  EXPECT_FALSE(kv_.zero(9));
  // Sanitized blocks may go to another tenant.
  EXPECT_TRUE(pool_.try_assign(blocks, "tenant-b", "req-2").ok());
  EXPECT_DOUBLE_EQ(pool_.sync(), 100.0);
  const std::string log = kvhtest::read_file(dir_.file("kv.log"));
  (void)tr_.try_flush();
  const std::string flushed = kvhtest::read_file(dir_.file("kv.log"));
  EXPECT_NE(flushed.find("\"pool_assign\""), std::string::npos);
  EXPECT_NE(flushed.find("\"pool_release\""), std::string::npos);
}

TEST_F(PoolTest, SpansFromEveryContainer) {
  const std::array<uint32_t, 2> arr{1, 2};
  const uint32_t carr[] = {4, 5};
  const std::vector<uint32_t> vec{6};
  const uint32_t raw[] = {8, 10};
  pool_.assign(arr, "t", "r-arr");
  pool_.assign(carr, "t", "r-carr");
  pool_.assign(vec, "t", "r-vec");
  pool_.assign(kvh::BlockIds(raw, 2), "t", "r-raw");
  pool_.assign({11u, 12u}, "t", "r-il");
  for (uint32_t b : {1u, 2u, 4u, 5u, 6u, 8u, 10u, 11u, 12u}) kv_.fill(b, 0x77);
  EXPECT_DOUBLE_EQ(pool_.release({1u, 2u, 4u, 5u, 6u, 8u, 10u, 11u, 12u}), 100.0);
  for (uint32_t b : {1u, 2u, 4u, 5u, 6u, 8u, 10u, 11u, 12u}) EXPECT_TRUE(kv_.zero(b));
}

TEST_F(PoolTest, UnsanitizedBlockToAnotherTenantIsIsolationAllOrNothing) {
  pool_.assign({3u}, "tenant-a", "req-a");
  kv_.fill(3, 0x42);
  kvh::Status s = pool_.try_assign({4u, 3u}, "tenant-b", "req-b");
  EXPECT_EQ(s.status(), KVH_E_ISOLATION) << s.to_string();
  EXPECT_FALSE(s.message().empty());
  // All-or-nothing: block 4 was not given to tenant-b, so tenant-c may take it.
  EXPECT_TRUE(pool_.try_assign({4u}, "tenant-c", "req-c").ok());
  (void)tr_.try_flush();
  EXPECT_NE(kvhtest::read_file(dir_.file("kv.log")).find("\"isolation_violation\""), std::string::npos);
}

TEST_F(PoolTest, QuarantinedBlockReturnsThroughAVerifiedScrub) {
  pool_.assign({5u}, "tenant-a", "req-a");
  kv_.fill(5, 0x42);
  EXPECT_EQ(pool_.try_assign({5u}, "tenant-b", "req-b").status(), KVH_E_ISOLATION);
  EXPECT_EQ(pool_.try_assign({5u}, "tenant-b", "req-b").status(), KVH_E_QUARANTINED);
  EXPECT_EQ(pool_.try_release_quarantine({5u, 6u}, "reviewed").status(), KVH_E_STATE);  // 6 is free
  EXPECT_FALSE(kv_.zero(5));
  EXPECT_DOUBLE_EQ(pool_.release_quarantine({5u}, "reviewed"), 100.0);
  EXPECT_TRUE(kv_.zero(5));
  EXPECT_TRUE(pool_.try_assign({5u}, "tenant-b", "req-b").ok());
  (void)tr_.try_flush();
  EXPECT_NE(kvhtest::read_file(dir_.file("kv.log")).find("\"release_quarantine\""), std::string::npos);
}

TEST_F(PoolTest, BadBlockIdsAndDescriptors) {
  EXPECT_EQ(pool_.try_assign({kBlocks}, "t", "r").status(), KVH_E_INVALID_ARG);
  EXPECT_EQ(pool_.try_release({kBlocks + 100}).status(), KVH_E_INVALID_ARG);
  EXPECT_EQ(pool_.try_assign({1u}, "bad\"tenant", "r").status(), KVH_E_INVALID_ID);
  // Overlapping regions are refused at registration.
  std::vector<unsigned char> mem(kBlocks * kBlockBytes);
  kvh::Result<kvh::Pool> overlap = tr_.try_register_pool(kvh::PoolDesc::host(kBlocks)
                                                             .model("m")
                                                             .region(mem.data(), kBlockBytes, kBlockBytes)
                                                             .region(mem.data() + 8, kBlockBytes, kBlockBytes));
  EXPECT_EQ(overlap.status(), KVH_E_INVALID_ARG) << overlap.to_string();
  kvh::Result<kvh::Pool> noregions = tr_.try_register_pool(kvh::PoolDesc::host(4).model("m"));
  EXPECT_FALSE(noregions.ok());
  EXPECT_TRUE(noregions.status() == KVH_E_INVALID_ARG || noregions.status() == KVH_E_NULL_ARG)
      << noregions.to_string();
  // Raw: a NULL block list with n > 0.
  EXPECT_EQ(kvh_pool_assign(tr_.capi(), pool_.capi(), nullptr, 2, "t", "r"), KVH_E_NULL_ARG);
  EXPECT_EQ(kvh_pool_assign(tr_.capi(), 0, nullptr, 0, "t", "r"), KVH_E_UNKNOWN_HANDLE);
}

TEST_F(PoolTest, UnregisterWithAssignedBlocksNeedsForce) {
  pool_.assign({2u, 5u}, "t", "r");
  kv_.fill(2, 0x99);
  kv_.fill(5, 0x99);
  EXPECT_EQ(pool_.try_unregister(false).status(), KVH_E_STATE);
  EXPECT_TRUE(pool_);  // still owned
  pool_.unregister(true);
  EXPECT_FALSE(pool_);
  EXPECT_TRUE(kv_.zero(2));
  EXPECT_TRUE(kv_.zero(5));
  EXPECT_EQ(pool_.try_sync().status(), KVH_E_UNKNOWN_HANDLE);
}

TEST_F(PoolTest, DestructorForceUnregistersAndMovedFromIsInert) {
  FailureLog fl;
  GlobalHandlerGuard g(fl.handler());
  pool_.assign({1u}, "t", "r");
  kv_.fill(1, 0x3c);
  kvh::Pool moved = std::move(pool_);
  EXPECT_FALSE(pool_);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(pool_.try_assign({2u}, "t", "r").status(), KVH_E_UNKNOWN_HANDLE);
  const uint64_t h = moved.capi();
  moved = kvh::Pool();  // ~Pool of the registered one: unregister(force) zeroizes block 1
  EXPECT_TRUE(kv_.zero(1));
  EXPECT_EQ(fl.size(), 0u);
  double cov = 0;
  EXPECT_TRUE(kvhtest::stale_status(kvh_pool_sync(tr_.capi(), h, &cov)));
}

}  // namespace
