// Built as C++20: kvh::BlockIds accepts std::span. Exit status 0 = pass.
#include <kvhygiene.hpp>

#include <stdlib.h>

#include <cstdio>
#include <span>
#include <string>
#include <vector>

static_assert(KVH_HAS_STD_SPAN == 1, "C++20 std::span is detected");

int main() {
  char dir[] = "/tmp/kvh-cxx20-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 2;
  int rc = 1;
  {
    kvh::Tracer tr = kvh::Tracer::open(kvh::Config().log_path(std::string(dir) + "/kv.log").hmac_key("k"));
    std::vector<unsigned char> kv(16 * 64, 0);
    kvh::Pool pool = tr.register_pool(kvh::PoolDesc::host(16).model("m").region(kv.data(), 64, 64));
    std::vector<uint32_t> ids{1, 2, 3, 4};
    std::span<const uint32_t> first(ids.data(), 2);
    std::span<uint32_t> all(ids);
    pool.assign(first, "t", "r");
    pool.assign(all.subspan(2), "t", "r");
    for (uint32_t b : ids) kv[b * 64] = 0xff;
    const double cov = pool.release(all);
    bool zero = true;
    for (unsigned char c : kv) zero = zero && c == 0;
    rc = (cov == 100.0 && zero) ? 0 : 1;
  }
  std::string cmd = std::string("rm -rf '") + dir + "'";
  if (std::system(cmd.c_str()) != 0) rc = 1;
  std::printf("cxx20 span: %s\n", rc == 0 ? "ok" : "FAILED");
  return rc;
}
