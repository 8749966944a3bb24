// paged_engine — a reference "engine" showing how a paged-attention server uses
// kvhygiene through the C++ wrapper.
//
// It holds a paged KV pool in host memory in vLLM's layout (per layer one K and
// one V array of num_blocks blocks; a block is block_size tokens x heads x
// head_dim fp16 values), registers it as one kvh::Pool (2 x layers regions),
// and runs requests from several tenants on several threads: a request arrives
// (prefill blocks), grows by appending blocks (decode), and finishes. Blocks are
// assigned through kvh::Pool::assign and released through kvh::Pool::release,
// which zeroizes every layer's K and V slice of every released block in one call.
// Each assigned block is filled with the tenant's (random) data.
//
// At the end every block must be free and all zero, the pool must unregister
// cleanly and no operation may have failed: otherwise the exit status is 1.
//
//   paged_engine --blocks 512 --block-size 16 --layers 4 --heads 8 --head-dim 64
//                --tenants 4 --threads 4 --duration 5
#include <kvhygiene.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  uint32_t blocks = 512;
  uint32_t block_size = 16;  // tokens per block
  uint32_t layers = 4;
  uint32_t heads = 8;
  uint32_t head_dim = 64;
  uint32_t tenants = 4;
  uint32_t threads = 4;
  double duration = 5.0;     // seconds
  uint32_t max_blocks = 16;  // blocks of the longest request
  uint32_t active = 4;       // concurrent requests per thread
  std::string log;           // forensic log; default: a temporary directory
  bool verify_log = false;
  bool metrics = false;
  bool inject_isolation = false;  // demonstrate detection: must exit 1
};

void usage(const char *argv0) {
  std::fprintf(stderr,
               "usage: %s [--blocks N] [--block-size TOKENS] [--layers L] [--heads H] [--head-dim D]\n"
               "          [--tenants T] [--threads P] [--duration SECONDS] [--max-blocks B]\n"
               "          [--active R] [--log PATH] [--verify-log] [--metrics] [--inject-isolation]\n",
               argv0);
}

bool parse(int argc, char **argv, Options *o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](const char *what) -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "paged_engine: %s needs a value\n", what);
        return nullptr;
      }
      return argv[++i];
    };
    auto u32 = [&](uint32_t *dst) {
      const char *v = next(a.c_str());
      if (v == nullptr) return false;
      char *end = nullptr;
      const unsigned long x = std::strtoul(v, &end, 10);
      if (*v == '\0' || *end != '\0' || x == 0 || x > 0xffffffffUL) {
        std::fprintf(stderr, "paged_engine: %s: not a positive integer: %s\n", a.c_str(), v);
        return false;
      }
      *dst = static_cast<uint32_t>(x);
      return true;
    };
    if (a == "--blocks") { if (!u32(&o->blocks)) return false; }
    else if (a == "--block-size") { if (!u32(&o->block_size)) return false; }
    else if (a == "--layers") { if (!u32(&o->layers)) return false; }
    else if (a == "--heads") { if (!u32(&o->heads)) return false; }
    else if (a == "--head-dim") { if (!u32(&o->head_dim)) return false; }
    else if (a == "--tenants") { if (!u32(&o->tenants)) return false; }
    else if (a == "--threads") { if (!u32(&o->threads)) return false; }
    else if (a == "--max-blocks") { if (!u32(&o->max_blocks)) return false; }
    else if (a == "--active") { if (!u32(&o->active)) return false; }
    else if (a == "--duration") {
      const char *v = next("--duration");
      if (v == nullptr) return false;
      char *end = nullptr;
      o->duration = std::strtod(v, &end);
      if (*v == '\0' || *end != '\0' || !(o->duration > 0)) {
        std::fprintf(stderr, "paged_engine: --duration: not a positive number: %s\n", v);
        return false;
      }
    } else if (a == "--log") {
      const char *v = next("--log");
      if (v == nullptr) return false;
      o->log = v;
    } else if (a == "--verify-log") {
      o->verify_log = true;
    } else if (a == "--metrics") {
      o->metrics = true;
    } else if (a == "--inject-isolation") {
      o->inject_isolation = true;
    } else if (a == "-h" || a == "--help") {
      usage(argv[0]);
      std::exit(0);
    } else {
      std::fprintf(stderr, "paged_engine: unknown flag %s\n", a.c_str());
      return false;
    }
  }
  if (o->threads * o->active > o->blocks) {
    std::fprintf(stderr, "paged_engine: --blocks must be at least --threads x --active (%u)\n",
                 o->threads * o->active);
    return false;
  }
  return true;
}

// The free-block list shared by all threads (the engine's block manager).
class BlockManager {
 public:
  explicit BlockManager(uint32_t n) {
    for (uint32_t b = 0; b < n; ++b) free_.push_back(b);
  }
  // Up to n blocks; fewer when the pool is short.
  void take(uint32_t n, std::vector<uint32_t> *out) {
    std::lock_guard<std::mutex> lk(mu_);
    while (n-- > 0 && !free_.empty()) {
      out->push_back(free_.front());
      free_.pop_front();
    }
  }
  void give(const std::vector<uint32_t> &blocks) {
    std::lock_guard<std::mutex> lk(mu_);
    for (uint32_t b : blocks) free_.push_back(b);
  }
  size_t free_count() {
    std::lock_guard<std::mutex> lk(mu_);
    return free_.size();
  }
  std::vector<uint32_t> free_blocks() {
    std::lock_guard<std::mutex> lk(mu_);
    return std::vector<uint32_t>(free_.begin(), free_.end());
  }

 private:
  std::mutex mu_;
  std::deque<uint32_t> free_;
};

struct Xorshift {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

struct Request {
  std::string tenant, id;
  std::vector<uint32_t> blocks;
  uint32_t target = 0;
};

struct Stats {
  std::atomic<uint64_t> requests{0}, blocks_released{0}, release_calls{0}, assign_calls{0}, errors{0};
  std::atomic<uint64_t> assign_ns{0}, write_ns{0};  // time inside pool assign / writing tenant data
};

uint64_t since_ns(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}

struct Engine {
  Options opt;
  uint64_t block_bytes = 0;                   // one layer's K (or V) slice of a block
  std::vector<unsigned char *> arrays;        // [layer*2 + (0=K, 1=V)]
  kvh::Pool *pool = nullptr;
  BlockManager *blocks = nullptr;
  Stats stats;
  std::mutex err_mu;
  std::string first_error;

  void error(const std::string &what) {
    stats.errors.fetch_add(1);
    std::lock_guard<std::mutex> lk(err_mu);
    if (first_error.empty()) first_error = what;
  }

  // The tenant's KV data: every layer's K and V slice of each block.
  void write(const std::vector<uint32_t> &ids, Xorshift *rng) {
    for (uint32_t b : ids) {
      for (unsigned char *arr : arrays) {
        auto *p = reinterpret_cast<uint64_t *>(arr + b * block_bytes);
        for (uint64_t i = 0; i < block_bytes / 8; ++i) p[i] = rng->next() | 1;  // never all-zero
      }
    }
  }

  bool assign(Request &r, uint32_t n, Xorshift *rng) {
    std::vector<uint32_t> got;
    blocks->take(n, &got);
    if (got.empty()) return false;
    const auto t0 = std::chrono::steady_clock::now();
    kvh::Status s = pool->try_assign(got, r.tenant, r.id);
    stats.assign_ns.fetch_add(since_ns(t0));
    stats.assign_calls.fetch_add(1);
    if (!s) {
      error("assign " + r.id + ": " + s.to_string());
      blocks->give(got);  // all-or-nothing: nothing was assigned
      return false;
    }
    const auto t1 = std::chrono::steady_clock::now();
    write(got, rng);
    stats.write_ns.fetch_add(since_ns(t1));
    r.blocks.insert(r.blocks.end(), got.begin(), got.end());
    return true;
  }

  void finish(Request &r, std::vector<double> *lat_us) {
    if (r.blocks.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    kvh::Result<double> cov = pool->try_release(r.blocks);
    const auto t1 = std::chrono::steady_clock::now();
    lat_us->push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    stats.release_calls.fetch_add(1);
    if (!cov) {
      error("release " + r.id + ": " + cov.to_string());
    } else if (*cov < 100.0) {
      error("release " + r.id + ": coverage " + std::to_string(*cov));
    } else {
      stats.blocks_released.fetch_add(r.blocks.size());
      stats.requests.fetch_add(1);
      blocks->give(r.blocks);  // only zeroized blocks go back to the free list
    }
    r.blocks.clear();
  }

  void run_thread(uint32_t t, std::chrono::steady_clock::time_point deadline, std::vector<double> *lat_us) {
    Xorshift rng{0x9e3779b97f4a7c15ULL ^ (uint64_t(t + 1) * 0xbf58476d1ce4e5b9ULL)};
    std::vector<Request> active;
    uint64_t seq = 0;
    while (std::chrono::steady_clock::now() < deadline && stats.errors.load() == 0) {
      if (active.size() < opt.active) {  // a request arrives: prefill
        Request r;
        r.tenant = "tenant-" + std::to_string(rng.next() % opt.tenants);
        r.id = "t" + std::to_string(t) + "-r" + std::to_string(seq++);
        r.target = 1 + static_cast<uint32_t>(rng.next() % opt.max_blocks);
        const uint32_t prefill = 1 + static_cast<uint32_t>(rng.next() % std::min<uint32_t>(4, r.target));
        if (assign(r, prefill, &rng)) {
          active.push_back(std::move(r));
        } else if (!active.empty()) {  // pool exhausted: preempt this thread's largest request
          auto it = std::max_element(active.begin(), active.end(),
                                     [](const Request &a, const Request &b) { return a.blocks.size() < b.blocks.size(); });
          finish(*it, lat_us);
          active.erase(it);
        } else {
          std::this_thread::yield();
        }
        continue;
      }
      // Decode step of one request: append a block, or finish at its target.
      const size_t k = rng.next() % active.size();
      Request &r = active[k];
      if (r.blocks.size() >= r.target || !assign(r, 1, &rng)) {
        finish(r, lat_us);
        active.erase(active.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
    for (Request &r : active) finish(r, lat_us);
  }
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  if (!parse(argc, argv, &opt)) {
    usage(argv[0]);
    return 2;
  }
  if (kvh::Status v = kvh::try_check_version(); !v) {
    std::fprintf(stderr, "paged_engine: %s\n", v.to_string().c_str());
    return 1;
  }
  std::string tmpdir;
  if (opt.log.empty()) {
    char dir[] = "/tmp/kvh-paged-engine-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      std::perror("paged_engine: mkdtemp");
      return 1;
    }
    tmpdir = dir;
    opt.log = tmpdir + "/kv_cache.log";
  }

  Engine eng;
  eng.opt = opt;
  eng.block_bytes = uint64_t(opt.block_size) * opt.heads * opt.head_dim * 2;  // fp16
  const uint64_t array_bytes = eng.block_bytes * opt.blocks;
  for (uint32_t i = 0; i < 2 * opt.layers; ++i) {
    const uint64_t rounded = (array_bytes + 4095) / 4096 * 4096;
    auto *p = static_cast<unsigned char *>(std::aligned_alloc(4096, rounded));
    if (p == nullptr) {
      std::fprintf(stderr, "paged_engine: out of memory for %" PRIu64 " bytes\n", rounded);
      return 1;
    }
    std::memset(p, 0, rounded);
    eng.arrays.push_back(p);
  }

  std::atomic<uint64_t> handler_failures{0};
  int rc = 0;
  double elapsed = 0;
  std::vector<double> lat_all;
  {
    kvh::Result<kvh::Tracer> tr = kvh::Tracer::try_open(kvh::Config().log_path(opt.log));
    if (!tr) {
      std::fprintf(stderr, "paged_engine: open tracer: %s\n", tr.to_string().c_str());
      return 1;
    }
    tr->set_failure_handler([&handler_failures](const kvh::Failure &f) {
      handler_failures.fetch_add(1);
      std::fprintf(stderr, "paged_engine: hygiene failure: %s\n", f.to_string().c_str());
    });
    kvh::PoolDesc desc = kvh::PoolDesc::host(opt.blocks).model("paged-engine-demo").name("vllm-host-kv");
    for (unsigned char *arr : eng.arrays) desc.region(arr, eng.block_bytes, eng.block_bytes);  // K0 V0 K1 V1 ...
    kvh::Result<kvh::Pool> pool = tr->try_register_pool(desc);
    if (!pool) {
      std::fprintf(stderr, "paged_engine: register pool: %s\n", pool.to_string().c_str());
      return 1;
    }
    BlockManager bm(opt.blocks);
    eng.pool = &*pool;
    eng.blocks = &bm;

    std::printf("paged_engine: %u blocks x %u tokens, %u layers x (K,V), %u heads x %u dim fp16: "
                "%" PRIu64 " B per layer slice, %" PRIu64 " B per block, %.1f MiB pool; %u tenants, %u threads, %.1f s\n",
                opt.blocks, opt.block_size, opt.layers, opt.heads, opt.head_dim, eng.block_bytes,
                eng.block_bytes * 2 * opt.layers, double(array_bytes) * 2 * opt.layers / (1 << 20), opt.tenants,
                opt.threads, opt.duration);
    std::vector<std::vector<double>> lat(opt.threads);
    const auto t0 = std::chrono::steady_clock::now();
    const auto deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(opt.duration));
    std::vector<std::thread> ts;
    for (uint32_t t = 0; t < opt.threads; ++t) ts.emplace_back([&, t] { eng.run_thread(t, deadline, &lat[t]); });
    for (auto &th : ts) th.join();
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto &l : lat) lat_all.insert(lat_all.end(), l.begin(), l.end());

    if (opt.inject_isolation) {  // a buggy scheduler hands tenant-0's live block to tenant-1
      Request victim{"tenant-0", "inject-victim", {}, 1}, thief{"tenant-1", "inject-thief", {}, 1};
      Xorshift rng{42};
      if (eng.assign(victim, 1, &rng)) {
        kvh::Status s = pool->try_assign(victim.blocks, thief.tenant, thief.id);
        std::printf("inject-isolation: assigning block %u of %s to %s: %s\n", victim.blocks[0],
                    victim.tenant.c_str(), thief.tenant.c_str(), s.to_string().c_str());
        if (s.status() == KVH_E_ISOLATION) {
          eng.error("detected: " + s.to_string());  // the block stays quarantined, not freed
        } else {
          std::fprintf(stderr, "paged_engine: FAIL: isolation violation was not detected\n");
          rc = 1;
        }
      }
    }

    // Every block must be back on the free list and all zero in every layer's K and V.
    uint64_t dirty = 0;
    for (uint32_t b : bm.free_blocks()) {
      for (unsigned char *arr : eng.arrays) {
        const unsigned char *p = arr + uint64_t(b) * eng.block_bytes;
        for (uint64_t i = 0; i < eng.block_bytes; ++i) dirty += p[i] != 0;
      }
    }
    if (bm.free_count() != opt.blocks) {
      std::fprintf(stderr, "paged_engine: FAIL: %zu of %u blocks free at the end\n", bm.free_count(), opt.blocks);
      rc = 1;
    }
    if (dirty != 0) {
      std::fprintf(stderr, "paged_engine: FAIL: %" PRIu64 " non-zero bytes in free blocks\n", dirty);
      rc = 1;
    }
    if (opt.metrics) {
      kvh::Result<std::string> metrics = tr->try_metrics_json();
      std::printf("metrics: %s\n", metrics ? metrics->c_str() : metrics.to_string().c_str());
    }
    if (kvh::Status s = pool->try_unregister(false); !s) {
      std::fprintf(stderr, "paged_engine: FAIL: unregister: %s\n", s.to_string().c_str());
      rc = 1;
    }
    if (kvh::Status s = tr->try_close(); !s) {
      std::fprintf(stderr, "paged_engine: FAIL: close: %s\n", s.to_string().c_str());
      rc = 1;
    }
  }
  if (eng.stats.errors.load() != 0) {
    std::fprintf(stderr, "paged_engine: FAIL: %" PRIu64 " failed operations; first: %s\n", eng.stats.errors.load(),
                 eng.first_error.c_str());
    rc = 1;
  }
  if (handler_failures.load() != 0) rc = 1;
  if (opt.verify_log) {
    kvh::Result<kvh::LogVerification> v = kvh::try_log_verify(opt.log);
    if (!v || !v->ok) {
      std::fprintf(stderr, "paged_engine: FAIL: log verification: %s\n",
                   v ? v->report.c_str() : v.to_string().c_str());
      rc = 1;
    } else {
      std::printf("forensic log: %" PRIu64 " records verified\n", v->records);
    }
  }

  const uint64_t released = eng.stats.blocks_released.load();
  const uint64_t zeroized = released * eng.block_bytes * 2 * opt.layers;
  std::printf("requests: %" PRIu64 " (%.0f/s)  blocks released: %" PRIu64 " (%.0f/s)  bytes zeroized: %" PRIu64
              " (%.2f GB/s)\n",
              eng.stats.requests.load(), double(eng.stats.requests.load()) / elapsed, released,
              double(released) / elapsed, zeroized, double(zeroized) / elapsed / 1e9);
  double release_s = 0;
  for (double us : lat_all) release_s += us / 1e6;
  const double assign_s = double(eng.stats.assign_ns.load()) / 1e9, write_s = double(eng.stats.write_ns.load()) / 1e9;
  std::printf("pool calls: %" PRIu64 " assign (%.1f us mean), %" PRIu64 " release; release latency p50 %.1f us, "
              "p99 %.1f us, %.1f blocks/call mean\n",
              eng.stats.assign_calls.load(), assign_s * 1e6 / double(std::max<uint64_t>(1, eng.stats.assign_calls.load())),
              eng.stats.release_calls.load(), percentile(lat_all, 0.5), percentile(lat_all, 0.99),
              double(released) / double(std::max<uint64_t>(1, eng.stats.release_calls.load())));
  std::printf("thread time: release %.2f s (zeroize+verify %.2f GB/s inside release), assign %.2f s, "
              "writing tenant data %.2f s; elapsed %.2f s x %u threads\n",
              release_s, release_s > 0 ? double(zeroized) / release_s / 1e9 : 0.0, assign_s, write_s, elapsed,
              opt.threads);
  std::printf("hygiene: %s\n", rc == 0 ? "OK (every free block is zero, no failures)" : "FAILED");

  for (unsigned char *p : eng.arrays) std::free(p);
  if (!tmpdir.empty()) {
    std::string cmd = "rm -rf '" + tmpdir + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "paged_engine: could not remove %s\n", tmpdir.c_str());
  }
  return rc;
}
