// kvh::Pool / kvh::Buffer over CUDA device memory through the C++ wrapper.
// Needs an NVIDIA driver (libcuda.so.1, opened with dlopen: no CUDA toolkit is
// needed to build this). Without a driver or a device it exits 77, which ctest
// reports as "Skipped" (SKIP_RETURN_CODE), never as a pass.
#include <kvhygiene.hpp>

#include <dlfcn.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using CUresult = int;
using CUdevice = int;
using CUcontext = void *;
using CUdeviceptr = unsigned long long;

struct Cuda {
  CUresult (*Init)(unsigned);
  CUresult (*DeviceGet)(CUdevice *, int);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*CtxSetCurrent)(CUcontext);
  CUresult (*MemAlloc)(CUdeviceptr *, size_t);
  CUresult (*MemFree)(CUdeviceptr);
  CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*CtxSynchronize)();
};

template <class F>
bool sym(void *lib, const char *name, F *out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

int failures = 0;
#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
      ++failures;                                                                       \
    }                                                                                   \
  } while (0)

bool all_equal(const std::vector<unsigned char> &v, size_t off, size_t n, unsigned char x) {
  for (size_t i = off; i < off + n; ++i)
    if (v[i] != x) return false;
  return true;
}

}  // namespace

int main() {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::printf("cuda_smoke: SKIPPED: no NVIDIA driver (libcuda.so.1 not found)\n");
    return 77;
  }
  Cuda cu{};
  if (!sym(lib, "cuInit", &cu.Init) || !sym(lib, "cuDeviceGet", &cu.DeviceGet) ||
      !sym(lib, "cuDevicePrimaryCtxRetain", &cu.DevicePrimaryCtxRetain) ||
      !sym(lib, "cuCtxSetCurrent", &cu.CtxSetCurrent) || !sym(lib, "cuMemAlloc_v2", &cu.MemAlloc) ||
      !sym(lib, "cuMemFree_v2", &cu.MemFree) || !sym(lib, "cuMemsetD8_v2", &cu.MemsetD8) ||
      !sym(lib, "cuMemcpyDtoH_v2", &cu.MemcpyDtoH) || !sym(lib, "cuCtxSynchronize", &cu.CtxSynchronize)) {
    std::fprintf(stderr, "cuda_smoke: libcuda.so.1 lacks a driver API symbol\n");
    return 1;
  }
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  if (cu.Init(0) != 0 || cu.DeviceGet(&dev, 0) != 0) {
    std::printf("cuda_smoke: SKIPPED: driver present but no usable CUDA device\n");
    return 77;
  }
  if (cu.DevicePrimaryCtxRetain(&ctx, dev) != 0 || cu.CtxSetCurrent(ctx) != 0) {
    std::fprintf(stderr, "cuda_smoke: cannot make the primary context current\n");
    return 1;
  }

  // vLLM layout on the device: layers x (K, V) arrays of kBlocks blocks.
  constexpr uint32_t kBlocks = 64, kLayers = 4;
  constexpr size_t kBlockBytes = 16 * 8 * 128 * 2;  // 16 tokens x 8 heads x 128 dim fp16
  constexpr size_t kArray = kBlocks * kBlockBytes;
  CUdeviceptr kv = 0, single = 0;
  if (cu.MemAlloc(&kv, 2 * kLayers * kArray) != 0 || cu.MemAlloc(&single, 1 << 20) != 0) {
    std::fprintf(stderr, "cuda_smoke: cuMemAlloc failed\n");
    return 1;
  }
  CHECK(cu.MemsetD8(kv, 0xab, 2 * kLayers * kArray) == 0);
  CHECK(cu.MemsetD8(single, 0xcd, 1 << 20) == 0);
  CHECK(cu.CtxSynchronize() == 0);

  char dir[] = "/tmp/kvh-cuda-smoke-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 2;
  {
    kvh::Result<kvh::Tracer> tr = kvh::Tracer::try_open(kvh::Config()
                                                            .log_path(std::string(dir) + "/kv.log")
                                                            .hmac_key("gpu")
                                                            .coverage_threshold(99.9)
                                                            .default_max_reuse(-1)
                                                            .no_default_ttl());
    if (!tr) {
      std::fprintf(stderr, "cuda_smoke: open: %s\n", tr.to_string().c_str());
      return 1;
    }
    // One buffer over a device range: the destructor sanitizes (full verify) and frees.
    {
      kvh::Result<kvh::Buffer> b = tr->try_allocate(kvh::Alloc::cuda(single, 1 << 20, 0, 0).ids("t", "r", "m"));
      CHECK(b.ok());
      if (!b) std::fprintf(stderr, "allocate: %s\n", b.to_string().c_str());
      if (b) {
        CHECK(b->try_mark_in_use("t").ok());
        kvh::Result<double> cov = b->try_sanitize(kvh::SanitizeOptions::full());
        CHECK(cov.ok() && *cov == 100.0);
        if (!cov) std::fprintf(stderr, "sanitize: %s\n", cov.to_string().c_str());
        kvh::BufferInfo i = b->try_info().value_or(kvh::BufferInfo{});
        CHECK(i.device == kvh::Device::cuda);
      }
    }
    std::vector<unsigned char> host(1 << 20, 1);
    CHECK(cu.MemcpyDtoH(host.data(), single, host.size()) == 0);
    CHECK(all_equal(host, 0, host.size(), 0));

    kvh::PoolDesc d = kvh::PoolDesc::cuda(kBlocks, 0, 0).model("m").name("gpu-kv").verify(kvh::VerifyMode::full);
    for (uint32_t a = 0; a < 2 * kLayers; ++a) d.region(kv + a * kArray, kBlockBytes, kBlockBytes);
    kvh::Result<kvh::Pool> pool = tr->try_register_pool(d);
    CHECK(pool.ok());
    if (!pool) std::fprintf(stderr, "register: %s\n", pool.to_string().c_str());
    if (pool) {
      const std::vector<uint32_t> blocks{0, 7, 8, 63};
      CHECK(pool->try_assign(blocks, "tenant-a", "req-1").ok());
      kvh::Result<double> cov = pool->try_release(blocks);
      CHECK(cov.ok() && *cov == 100.0);
      if (!cov) std::fprintf(stderr, "release: %s\n", cov.to_string().c_str());
      // Async release, completed by sync.
      const std::vector<uint32_t> more{20, 21};
      CHECK(pool->try_assign(more, "tenant-b", "req-2").ok());
      CHECK(pool->try_release(more, KVH_RELEASE_ASYNC).ok());
      kvh::Result<double> sync = pool->try_sync();
      CHECK(sync.ok() && *sync == 100.0);
      std::vector<unsigned char> h(2 * kLayers * kArray);
      CHECK(cu.MemcpyDtoH(h.data(), kv, h.size()) == 0);
      for (uint32_t a = 0; a < 2 * kLayers; ++a) {
        for (uint32_t b = 0; b < kBlocks; ++b) {
          const bool released = b == 0 || b == 7 || b == 8 || b == 63 || b == 20 || b == 21;
          const bool ok = all_equal(h, a * kArray + b * kBlockBytes, kBlockBytes, released ? 0 : 0xab);
          if (!ok) {
            std::fprintf(stderr, "region %u block %u: expected %s\n", a, b, released ? "zero" : "untouched");
            ++failures;
          }
        }
      }
      CHECK(pool->try_unregister(false).ok());
    }
    CHECK(tr->try_close().ok());
  }
  cu.MemFree(kv);
  cu.MemFree(single);
  std::string cmd = std::string("rm -rf '") + dir + "'";
  if (std::system(cmd.c_str()) != 0) ++failures;
  std::printf("cuda_smoke: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
