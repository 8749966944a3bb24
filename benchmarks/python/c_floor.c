/* The 4 KiB lifecycle through the C ABI directly (no Python): the floor the
 * Python bindings are compared with in bench_lifecycle.py.
 * usage: c_floor LOGDIR N   -> prints two lines "name median_us p10_us p90_us" */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "kvhygiene.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int run(kvh_tracer *t, int n, uint64_t ptr, const char *name) {
  double *ns = malloc(sizeof(double) * n);
  int64_t shape[1] = {1024};
  for (int i = -200; i < n; i++) {
    kvh_alloc_desc d = {0};
    d.struct_size = sizeof d;
    d.ptr = ptr;
    d.nbytes = 4096;
    d.tenant_id = "t";
    d.request_id = "r";
    d.model_id = "m";
    d.dtype = "float32";
    d.shape = shape;
    d.shape_len = 1;
    uint64_t h;
    double cov, t0 = now_ns();
    if (kvh_allocate(t, &d, &h) || kvh_mark_in_use(t, h, NULL) || kvh_sanitize(t, h, NULL, &cov) ||
        kvh_free(t, h)) {
      fprintf(stderr, "c_floor: %s\n", kvh_last_error());
      return 1;
    }
    if (i >= 0) ns[i] = now_ns() - t0;
  }
  qsort(ns, n, sizeof(double), cmp);
  printf("%s %.3f %.3f %.3f\n", name, ns[n / 2] / 1e3, ns[n / 10] / 1e3, ns[n * 9 / 10] / 1e3);
  free(ns);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  char path[4096];
  snprintf(path, sizeof path, "%s/c_floor.log", argv[1]);
  kvh_config c;
  if (kvh_config_init(&c, sizeof c)) return 1;
  c.log_path = path;
  kvh_tracer *t = NULL;
  if (kvh_tracer_open(&c, &t)) {
    fprintf(stderr, "c_floor: %s\n", kvh_last_error());
    return 1;
  }
  static _Alignas(4096) unsigned char mem[4096];
  int n = atoi(argv[2]);
  int rc = run(t, n, 0, "c_library_owned") || run(t, n, (uint64_t)(uintptr_t)mem, "c_caller_memory");
  kvh_tracer_close(t);
  return rc;
}
