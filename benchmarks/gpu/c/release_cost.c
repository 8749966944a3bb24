/* Host cost of one async kvh_pool_release called from C (no Python), next to
 * one cuMemsetD8Async in its place, on a real GPU. The pool is the one of
 * benchmarks/gpu/bench.py: 1024 blocks x 64 regions x 32 KiB (2 GiB).
 * libcuda is opened with dlopen, as libkvhygiene does; the primary context of
 * device 0 is current, as under PyTorch. Prints a markdown table.
 * Built by make gpu-test-binary; run: build/gpu/release_cost [runs] [block_bytes].
 * make test-cuda runs it on tests/fakecuda with small blocks. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvhygiene.h"

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
static CUresult (*cuInit)(unsigned);
static CUresult (*cuDeviceGet)(int *, int);
static CUresult (*cuDevicePrimaryCtxRetain)(void **, int);
static CUresult (*cuCtxPushCurrent)(void *);
static CUresult (*cuStreamSynchronize)(void *);
static CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
static CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, void *);

#define CK(x)                                                             \
  do {                                                                    \
    int _r = (int)(x);                                                    \
    if (_r != 0) {                                                        \
      fprintf(stderr, "%s:%d: %s = %d: %s\n", __FILE__, __LINE__, #x, _r,  \
              kvh_last_error());                                          \
      exit(1);                                                            \
    }                                                                     \
  } while (0)

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *xs, int n) {
  qsort(xs, n, sizeof *xs, cmp);
  return xs[n / 2];
}

static void sleep_us(long us) {
  struct timespec ts = {0, us * 1000};
  nanosleep(&ts, NULL);
}

static void spin_us(double us) {
  double end = now_us() + us;
  while (now_us() < end) {
  }
}

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) {
    fprintf(stderr, "libcuda: no %s\n", name);
    exit(1);
  }
  return p;
}

enum { NB = 1024, NR = 64 };

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 101;
  size_t BS = argc > 2 ? strtoull(argv[2], NULL, 0) : 32 << 10;
  if (runs < 1 || BS < 4096 || BS % 4096) {
    fprintf(stderr, "usage: release_cost [runs >= 1] [block_bytes, a multiple of 4096]\n");
    return 2;
  }
  void *cu = dlopen(getenv("KVH_LIBCUDA") ? getenv("KVH_LIBCUDA") : "libcuda.so.1", RTLD_NOW);
  if (!cu) {
    printf("no CUDA driver: %s\n", dlerror());
    return 0;
  }
  cuInit = sym(cu, "cuInit");
  cuDeviceGet = sym(cu, "cuDeviceGet");
  cuDevicePrimaryCtxRetain = sym(cu, "cuDevicePrimaryCtxRetain");
  cuCtxPushCurrent = sym(cu, "cuCtxPushCurrent_v2");
  cuStreamSynchronize = sym(cu, "cuStreamSynchronize");
  cuMemAlloc = sym(cu, "cuMemAlloc_v2");
  cuMemsetD8Async = sym(cu, "cuMemsetD8Async");
  int dev;
  void *ctx;
  CK(cuInit(0));
  CK(cuDeviceGet(&dev, 0));
  CK(cuDevicePrimaryCtxRetain(&ctx, dev));
  CK(cuCtxPushCurrent(ctx));
  CUdeviceptr base, tiny;
  CK(cuMemAlloc(&base, NB * NR * BS));
  CK(cuMemAlloc(&tiny, 4096));

  char dir[] = "/tmp/kvh-release-cost-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char logp[256];
  snprintf(logp, sizeof logp, "%s/kv_cache.log", dir);
  kvh_config cfg;
  CK(kvh_config_init(&cfg, sizeof cfg));
  cfg.log_path = logp;
  cfg.fsync_policy = KVH_FSYNC_NONE;
  kvh_tracer *tr;
  CK(kvh_tracer_open(&cfg, &tr));
  kvh_pool_region regs[NR];
  for (int r = 0; r < NR; r++) { /* region r: its own 32 MiB slab */
    regs[r].base = base + (uint64_t)r * NB * BS;
    regs[r].block_stride = BS;
    regs[r].block_bytes = BS;
  }
  kvh_pool_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.device = KVH_DEVICE_CUDA;
  d.num_blocks = NB;
  d.regions = regs;
  d.num_regions = NR;
  d.model_id = "model-x";
  d.name = "kv";
  d.verify = KVH_VERIFY_FULL;
  uint64_t pool;
  CK(kvh_pool_register(tr, &d, &pool));
  uint32_t ids[NB];
  for (int i = 0; i < NB; i++) ids[i] = i;

  const char *names[] = {"right after cuStreamSynchronize", "synchronize, then 3 ms spinning (host hot, GPU idle)",
                         "synchronize, then 2 ms asleep (host and GPU idle)",
                         "synchronize, then a 64 MiB cuMemsetD8Async (GPU busy)",
                         "back to back: the previous release 0 us before (GPU busy)"};
  enum { NCOND = 5 };
  double *xs = calloc((size_t)runs * NCOND * 2, sizeof *xs);
  for (int run = -1; run < runs; run++) {
    for (int c = 0; c < NCOND; c++) {
      for (int what = 0; what < 2; what++) {
        CK(kvh_pool_assign(tr, pool, ids, NB, "tenant-a", "req-1"));
        if (c == 4) { /* a first release of half the blocks, then the timed one of the other half */
          CK(kvh_pool_release(tr, pool, ids, NB / 2, KVH_RELEASE_ASYNC, NULL));
        } else {
          CK(cuStreamSynchronize(NULL));
        }
        if (c == 1) spin_us(3000);
        if (c == 2) sleep_us(2000);
        if (c == 3) CK(cuMemsetD8Async(base, 0, NB * NR * BS / 32, NULL));
        const uint32_t *b = c == 4 ? ids + NB / 2 : ids;
        size_t n = c == 4 ? NB / 2 : NB;
        double t0 = now_us();
        if (what == 0)
          CK(kvh_pool_release(tr, pool, b, n, KVH_RELEASE_ASYNC, NULL));
        else
          CK(cuMemsetD8Async(tiny, 0, 4096, NULL));
        double el = now_us() - t0;
        if (what == 1) CK(kvh_pool_release(tr, pool, b, n, KVH_RELEASE_ASYNC, NULL));
        CK(kvh_pool_sync(tr, pool, NULL));
        if (run >= 0) xs[((size_t)c * 2 + what) * runs + run] = el;
      }
    }
  }
  /* floor: one call into Go that enqueues nothing */
  double *fl = calloc(runs, sizeof *fl);
  for (int run = 0; run < runs; run++) {
    double t0 = now_us();
    CK(kvh_pool_sync(tr, pool, NULL));
    fl[run] = now_us() - t0;
  }
  printf("async kvh_pool_release of 1024 blocks x 64 regions x %zu KiB called from C, medians of %d (the 'back to back' row releases 512 blocks)\n\n", BS >> 10, runs);
  printf("| before the timed call | kvh_pool_release (async) | cuMemsetD8Async 4 KiB in its place | ratio |\n|---|---|---|---|\n");
  for (int c = 0; c < NCOND; c++) {
    double k = median(xs + (size_t)c * 2 * runs, runs), m = median(xs + ((size_t)c * 2 + 1) * runs, runs);
    printf("| %s | %.1f us | %.1f us | %.1fx |\n", names[c], k, m, k / m);
  }
  printf("| floor: kvh_pool_sync with nothing pending | %.1f us | | |\n", median(fl, runs));
  CK(kvh_pool_unregister(tr, pool, 1));
  CK(kvh_tracer_close(tr));
  return 0;
}
