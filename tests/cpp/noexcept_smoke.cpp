// Built with -fno-exceptions: the throwing API must be compiled out and the
// try_* API must work on its own. Exit status 0 = pass.
#include <kvhygiene.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

static_assert(KVH_HAS_EXCEPTIONS == 0, "this file must be built with -fno-exceptions");

template <class T, class = void>
struct has_throwing_open : std::false_type {};
template <class T>
struct has_throwing_open<T, std::void_t<decltype(T::open(std::declval<const kvh::Config &>()))>> : std::true_type {};
template <class T, class = void>
struct has_throwing_free : std::false_type {};
template <class T>
struct has_throwing_free<T, std::void_t<decltype(std::declval<T &>().free())>> : std::true_type {};
template <class T, class = void>
struct has_throwing_release : std::false_type {};
template <class T>
struct has_throwing_release<T, std::void_t<decltype(std::declval<T &>().release(kvh::BlockIds()))>>
    : std::true_type {};
static_assert(!has_throwing_open<kvh::Tracer>::value, "Tracer::open is compiled out");
static_assert(!has_throwing_free<kvh::Buffer>::value, "Buffer::free is compiled out");
static_assert(!has_throwing_release<kvh::Pool>::value, "Pool::release is compiled out");

static int failures = 0;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

int main() {
  char dir[] = "/tmp/kvh-noexcept-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 2;
  const std::string log = std::string(dir) + "/kv.log";
  {
    kvh::Result<kvh::Tracer> tr = kvh::Tracer::try_open(
        kvh::Config().log_path(log).hmac_key("k").coverage_threshold(99.9).default_max_reuse(-1).no_default_ttl());
    if (!tr) {
      std::fprintf(stderr, "open: %s\n", tr.to_string().c_str());
      return 1;
    }
    kvh::Result<kvh::Buffer> b = tr->try_allocate(kvh::Alloc::host(4096).ids("t", "r", "m"));
    CHECK(b.ok());
    if (b) {
      CHECK(b->try_mark_in_use("t").ok());
      kvh::Result<double> cov = b->try_sanitize(kvh::SanitizeOptions::full());
      CHECK(cov.ok() && *cov == 100.0);
      CHECK(b->try_free().ok());
      CHECK(b->try_free().status() == KVH_E_FREED);
    }
    kvh::Result<kvh::Buffer> q = tr->try_allocate(kvh::Alloc::host(64).ids("t", "r2", "m"));
    CHECK(q.ok());
    if (q) CHECK(q->try_free().status() == KVH_E_COVERAGE);
    std::vector<unsigned char> kv(8 * 128, 0x5a);
    kvh::Result<kvh::Pool> p = tr->try_register_pool(kvh::PoolDesc::host(8).model("m").region(kv.data(), 128, 128));
    CHECK(p.ok());
    if (p) {
      const std::vector<uint32_t> ids{0, 1, 2, 3, 4, 5, 6, 7};
      CHECK(p->try_assign(ids, "t", "r").ok());
      kvh::Result<double> pc = p->try_release(ids);
      CHECK(pc.ok() && *pc == 100.0);
      bool zero = true;
      for (unsigned char c : kv) zero = zero && c == 0;
      CHECK(zero);
    }
    kvh::Result<std::string> m = tr->try_metrics_json();
    CHECK(m.ok() && !m->empty());
    CHECK(tr->try_close().ok());
    CHECK(tr->try_close().status() == KVH_E_CLOSED);
  }
  std::string cmd = std::string("rm -rf '") + dir + "'";
  if (std::system(cmd.c_str()) != 0) ++failures;
  if (failures == 0) std::printf("noexcept smoke: ok\n");
  return failures == 0 ? 0 : 1;
}
