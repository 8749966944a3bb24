/* bench_capi.c — cost of the C ABI as a host sees it, through the real .so:
 *   call      kvh_attest_coverage on a live buffer (C wrapper -> cgo -> core)
 *   error     kvh_free(handle 0): the failure path incl. the thread-local message
 *   lifecycle allocate + mark_in_use + sanitize(full) + free of one 4 KiB
 *             caller buffer (the seed's lifecycle costs ~360 us per buffer)
 *   lib-owned the same with library-owned memory (mmap + guard pages + munmap)
 * Call costs are the median of RUNS runs; lifecycles are timed one by one and
 * reported as median, p99 and mean over all of them (the target is the
 * median). Usage: bench_capi [fsync-policy 0|1|2] */
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

/* Per-lifecycle latency statistics over every timed lifecycle of every run. */
typedef struct {
  double median, p99, mean;
} stats;

/* lifecycle times n lifecycles one by one into out[0..n) (ns). */
static void lifecycle(kvh_tracer *t, int n, int owned, unsigned char *mem, double *out) {
  kvh_sanitize_opts o;
  kvh_sanitize_opts_init(&o, sizeof o);
  o.verify = KVH_VERIFY_FULL;
  for (int i = 0; i < n; i++) {
    kvh_alloc_desc d = desc(owned ? 0 : (uint64_t)(uintptr_t)mem, 4096);
    uint64_t h;
    double cov;
    kvh_status s;
    double t0 = now_ns();
    if ((s = kvh_allocate(t, &d, &h)) != KVH_OK) die("allocate", s);
    if ((s = kvh_mark_in_use(t, h, "tenantA")) != KVH_OK) die("mark_in_use", s);
    if ((s = kvh_sanitize(t, h, &o, &cov)) != KVH_OK) die("sanitize", s);
    if ((s = kvh_free(t, h)) != KVH_OK) die("free", s);
    out[i] = now_ns() - t0;
  }
}

static stats summarize(double *v, int n) {
  double sum = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  qsort(v, (size_t)n, sizeof *v, cmp);
  stats st = {v[n / 2], v[(int)((double)n * 0.99)], sum / n};
  return st;
}

int main(int argc, char **argv) {
  int fsync_policy = argc > 1 ? atoi(argv[1]) : KVH_FSYNC_NONE;
  char dir[] = "/tmp/kvh-bench-XXXXXX", path[256];
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/bench.log", dir);
  kvh_config cfg;
  kvh_config_init(&cfg, sizeof cfg);
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

  enum { calls = 200000, cycles = 2000, owned_cycles = cycles / 4 };
  double call[RUNS], err[RUNS];
  double *life = malloc(sizeof(double) * RUNS * cycles), *owned = malloc(sizeof(double) * RUNS * owned_cycles);
  if (!life || !owned) return 1;
  unsigned char *mem = aligned_alloc(4096, 4096);
  memset(mem, 0xAB, 4096);
  for (int r = 0; r < RUNS; r++) {
    double cov, t0 = now_ns();
    for (int i = 0; i < calls; i++) kvh_attest_coverage(t, h, &cov);
    call[r] = (now_ns() - t0) / calls;
    t0 = now_ns();
    for (int i = 0; i < calls; i++) kvh_free(t, 0);
    err[r] = (now_ns() - t0) / calls;
    lifecycle(t, cycles, 0, mem, life + r * cycles);
    lifecycle(t, owned_cycles, 1, NULL, owned + r * owned_cycles);
  }
  stats lc = summarize(life, RUNS * cycles), lo = summarize(owned, RUNS * owned_cycles);
  printf("fsync_policy=%d runs=%d (median)\n", fsync_policy, RUNS);
  printf("call      kvh_attest_coverage          %8.0f ns/call\n", median(call, RUNS));
  printf("error     kvh_free(handle 0)           %8.0f ns/call\n", median(err, RUNS));
  printf("lifecycle 4 KiB caller memory          median %6.2f  p99 %7.2f  mean %6.2f us/lifecycle (%d)\n",
         lc.median / 1e3, lc.p99 / 1e3, lc.mean / 1e3, RUNS * cycles);
  printf("lifecycle 4 KiB library-owned memory   median %6.2f  p99 %7.2f  mean %6.2f us/lifecycle (%d)\n",
         lo.median / 1e3, lo.p99 / 1e3, lo.mean / 1e3, RUNS * owned_cycles);
  free(life);
  free(owned);
  kvh_tracer_close(t);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}
