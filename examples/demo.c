/* demo.c — one tenant's KV region through the whole lifecycle, a paged pool release, and an
 * isolation violation caught, all through the public C ABI. Writes a real forensic log and the
 * metrics; scripts/demo.sh then verifies the log with `kvgate verify` and gates on the metrics
 * with `kvgate check`. Usage: demo <log_dir> */
#include <kvhygiene.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                       \
  do {                                                                                    \
    kvh_status s_ = (call);                                                               \
    if (s_ != KVH_OK) {                                                                   \
      fprintf(stderr, "demo: %s failed: %s: %s\n", #call, kvh_status_str(s_), kvh_last_error()); \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <log_dir>\n", argv[0]);
    return 1;
  }
  char log_path[4096], path[4096];
  snprintf(log_path, sizeof log_path, "%s/kv_cache.log", argv[1]);

  printf("kvhygiene %s\n", kvh_version());
  kvh_config cfg;
  CHECK(kvh_config_init(&cfg, sizeof cfg));
  cfg.log_path = log_path;
  kvh_tracer *t = NULL;
  CHECK(kvh_tracer_open(&cfg, &t));

  /* 1. A library-owned 1 MiB host region for tenant-a: write into it, sanitize, free. */
  kvh_alloc_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.nbytes = 1 << 20;
  d.device = KVH_DEVICE_CPU;
  d.tenant_id = "tenant-a";
  d.request_id = "req-1";
  d.model_id = "llama-3-8b";
  d.dtype = "float16";
  uint64_t h = 0;
  CHECK(kvh_allocate(t, &d, &h));
  kvh_buffer_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK(kvh_buffer_info_get(t, h, &info));
  CHECK(kvh_bind(t, h, "tenant-a", "stream-0"));
  CHECK(kvh_mark_in_use(t, h, "tenant-a"));
  memset((void *)(uintptr_t)info.ptr, 0xA5, (size_t)info.nbytes); /* "prompt" data */
  double cov = 0;
  CHECK(kvh_sanitize(t, h, NULL, &cov));
  CHECK(kvh_free(t, h));
  printf("buffer: 1 MiB sanitized, coverage %.3f%%, freed\n", cov);

  /* 2. A paged KV pool (vLLM layout: 4 layers x K/V, 64 blocks of 16 KiB), two tenants. */
  enum { LAYERS = 4, BLOCKS = 64, BLOCK_BYTES = 16 << 10 };
  unsigned char *kv = calloc((size_t)LAYERS * 2 * BLOCKS, BLOCK_BYTES);
  if (!kv) return 1;
  kvh_pool_region regions[LAYERS * 2];
  for (int i = 0; i < LAYERS * 2; i++) {
    regions[i].base = (uint64_t)(uintptr_t)(kv + (size_t)i * BLOCKS * BLOCK_BYTES);
    regions[i].block_stride = BLOCK_BYTES;
    regions[i].block_bytes = BLOCK_BYTES;
  }
  kvh_pool_desc pd;
  memset(&pd, 0, sizeof pd);
  pd.struct_size = sizeof pd;
  pd.device = KVH_DEVICE_CPU;
  pd.num_blocks = BLOCKS;
  pd.regions = regions;
  pd.num_regions = LAYERS * 2;
  pd.model_id = "llama-3-8b";
  pd.name = "demo-pool";
  pd.verify = KVH_VERIFY_FULL;
  uint64_t pool = 0;
  CHECK(kvh_pool_register(t, &pd, &pool));
  uint32_t blocks[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  CHECK(kvh_pool_assign(t, pool, blocks, 8, "tenant-a", "req-2"));
  for (int i = 0; i < LAYERS * 2; i++)
    memset((void *)(uintptr_t)regions[i].base, 0x5A, 8 * BLOCK_BYTES);
  CHECK(kvh_pool_release(t, pool, blocks, 8, 0, &cov));
  printf("pool: 8 blocks x %d regions released, coverage %.3f%%\n", LAYERS * 2, cov);
  CHECK(kvh_pool_assign(t, pool, blocks, 8, "tenant-b", "req-3")); /* clean: allowed */
  for (int i = 0; i < LAYERS * 2; i++)
    memset((void *)(uintptr_t)regions[i].base, 0x3C, 8 * BLOCK_BYTES);
  /* tenant-b's request ends, but the engine "forgets" to release: handing the blocks to
   * tenant-c must be refused and recorded. */
  kvh_status s = kvh_pool_assign(t, pool, blocks, 8, "tenant-c", "req-4");
  printf("pool: dirty hand-over to another tenant -> %s (%s)\n", kvh_status_str(s), kvh_last_error());
  if (s != KVH_E_ISOLATION) return 1;
  /* Metrics while the 8 blocks sit in quarantine: the CI gate must fail on them. */
  snprintf(path, sizeof path, "%s/metrics-quarantined.json", argv[1]);
  CHECK(kvh_export_metrics(t, path));
  /* Unregistering refuses to drop blocks that may hold tenant data ... */
  s = kvh_pool_unregister(t, pool, 0);
  printf("pool: unregister without force -> %s\n", kvh_status_str(s));
  if (s != KVH_E_STATE) return 1;
  /* ... and with force zeroizes and verifies them first (one pool_release record). */
  CHECK(kvh_pool_unregister(t, pool, 1));
  free(kv);

  snprintf(path, sizeof path, "%s/metrics.json", argv[1]);
  CHECK(kvh_export_metrics(t, path));
  snprintf(path, sizeof path, "%s/metrics.prom", argv[1]);
  CHECK(kvh_export_prometheus(t, path));
  CHECK(kvh_tracer_close(t));
  printf("log: %s\n", log_path);
  return 0;
}
