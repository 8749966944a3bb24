/* bench_capi.c — cost of the C ABI as a host sees it, through the real .so:
 *   call      kvh_attest_coverage on a live buffer (C wrapper -> cgo -> core)
 *   error     kvh_free(handle 0): the failure path incl. the thread-local message
 *   lifecycle allocate + mark_in_use + sanitize(full) + free of one 4 KiB
 *             caller buffer (the seed's lifecycle costs ~360 us per buffer)
 *   lib-owned the same with library-owned memory (mmap + guard pages + munmap)
 * Each figure is the median of RUNS runs. Usage: bench_capi [fsync-policy 0|1|2] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvhygiene.h"

#define RUNS 7

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

static void die(const char *what, kvh_status s) {
  fprintf(stderr, "%s: %s: %s\n", what, kvh_status_str(s), kvh_last_error());
  exit(1);
}

static kvh_alloc_desc desc(uint64_t ptr, uint64_t n) {
  kvh_alloc_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.ptr = ptr;
  d.nbytes = n;
  d.tenant_id = "tenantA";
  d.request_id = "req-1";
  d.model_id = "llama";
  return d;
}

static double lifecycle(kvh_tracer *t, int n, int owned, unsigned char *mem) {
  kvh_sanitize_opts o;
  kvh_sanitize_opts_init(&o);
  o.verify = KVH_VERIFY_FULL;
  double t0 = now_ns();
  for (int i = 0; i < n; i++) {
    kvh_alloc_desc d = desc(owned ? 0 : (uint64_t)(uintptr_t)mem, 4096);
    uint64_t h;
    double cov;
    kvh_status s;
    if ((s = kvh_allocate(t, &d, &h)) != KVH_OK) die("allocate", s);
    if ((s = kvh_mark_in_use(t, h, "tenantA")) != KVH_OK) die("mark_in_use", s);
    if ((s = kvh_sanitize(t, h, &o, &cov)) != KVH_OK) die("sanitize", s);
    if ((s = kvh_free(t, h)) != KVH_OK) die("free", s);
  }
  return (now_ns() - t0) / n;
}

int main(int argc, char **argv) {
  int fsync_policy = argc > 1 ? atoi(argv[1]) : KVH_FSYNC_NONE;
  char dir[] = "/tmp/kvh-bench-XXXXXX", path[256];
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/bench.log", dir);
  kvh_config cfg;
  kvh_config_init(&cfg);
  cfg.log_path = path;
  cfg.fsync_policy = fsync_policy;
  cfg.max_log_bytes = 1ull << 40;
  kvh_tracer *t;
  kvh_status s = kvh_tracer_open(&cfg, &t);
  if (s != KVH_OK) die("open", s);

  kvh_alloc_desc d = desc(0, 4096);
  uint64_t h;
  if ((s = kvh_allocate(t, &d, &h)) != KVH_OK) die("allocate", s);
  if ((s = kvh_sanitize(t, h, NULL, NULL)) != KVH_OK) die("sanitize", s);

  const int calls = 200000, cycles = 2000;
  double call[RUNS], err[RUNS], life[RUNS], owned[RUNS];
  unsigned char *mem = aligned_alloc(4096, 4096);
  memset(mem, 0xAB, 4096);
  for (int r = 0; r < RUNS; r++) {
    double cov, t0 = now_ns();
    for (int i = 0; i < calls; i++) kvh_attest_coverage(t, h, &cov);
    call[r] = (now_ns() - t0) / calls;
    t0 = now_ns();
    for (int i = 0; i < calls; i++) kvh_free(t, 0);
    err[r] = (now_ns() - t0) / calls;
    life[r] = lifecycle(t, cycles, 0, mem);
    owned[r] = lifecycle(t, cycles / 4, 1, NULL);
  }
  printf("fsync_policy=%d runs=%d (median)\n", fsync_policy, RUNS);
  printf("call      kvh_attest_coverage          %8.0f ns/call\n", median(call, RUNS));
  printf("error     kvh_free(handle 0)           %8.0f ns/call\n", median(err, RUNS));
  printf("lifecycle 4 KiB caller memory          %8.2f us/buffer\n", median(life, RUNS) / 1e3);
  printf("lifecycle 4 KiB library-owned memory   %8.2f us/buffer\n", median(owned, RUNS) / 1e3);
  kvh_tracer_close(t);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}
