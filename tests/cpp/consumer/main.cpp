// Downstream program built against an installed kvhygiene (find_package).
#include <kvhygiene.hpp>

#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int main() {
  char dir[] = "/tmp/kvh-consumer-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 2;
  int rc = 0;
  try {
    kvh::check_version();
    kvh::Tracer tr = kvh::Tracer::open(kvh::Config().log_path(std::string(dir) + "/kv.log").hmac_key("consumer"));
    {
      kvh::Buffer b = tr.allocate(kvh::Alloc::host(1 << 16).ids("tenant-a", "req-1", "model"));
      auto *p = static_cast<unsigned char *>(b.data());
      std::memset(p, 0x7f, 1 << 16);
      b.mark_in_use("tenant-a");
      if (b.sanitize() != 100.0) rc = 1;
      for (int i = 0; i < (1 << 16); ++i) rc |= p[i] != 0;
    }  // ~Buffer frees
    std::vector<unsigned char> kv(2 * 32 * 256, 0);
    kvh::Pool pool = tr.register_pool(
        kvh::PoolDesc::host(32).model("model").region(kv.data(), 256, 256).region(kv.data() + 32 * 256, 256, 256));
    const std::vector<uint32_t> blocks{0, 5, 31};
    pool.assign(blocks, "tenant-a", "req-2");
    for (uint32_t b : blocks) {
      std::memset(kv.data() + b * 256, 1, 256);
      std::memset(kv.data() + 32 * 256 + b * 256, 2, 256);
    }
    if (pool.release(blocks) != 100.0) rc = 1;
    for (unsigned char c : kv) rc |= c != 0;
    std::printf("consumer: kvhygiene %s, metrics %s\n", kvh::version(), tr.metrics_json().c_str());
  } catch (const kvh::Error &e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    rc = 1;
  }
  std::string cmd = std::string("rm -rf '") + dir + "'";
  if (std::system(cmd.c_str()) != 0) rc = 1;
  std::printf("consumer: %s\n", rc == 0 ? "ok" : "FAILED");
  return rc;
}
