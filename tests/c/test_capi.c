/* test_capi.c — walks the public C ABI exactly as a user would: through
 * include/kvhygiene.h and the real build/libkvhygiene.so. Covers the buffer
 * lifecycle, every error status reachable without a GPU, NULL for every
 * pointer parameter, struct_size, overflow, bad identifiers, pools, metrics,
 * exports, log verification (after all the bad input), thread-local errors,
 * the fork guard and panic poisoning (in child processes).
 * Output ends with "C tests: N passed, M failed"; exit status 1 on failure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "kvhygiene.h"

extern char **environ;

static char tmpdir[256];

/* EXPECT_MSG: as EXPECT and the message contains needle (e.g. the parameter). */
#define EXPECT_MSG(call, want, needle)                                          \
  do {                                                                          \
    kvh_status s_ = (call);                                                     \
    CHECK(s_ == (want), "%s -> %s, want %s", #call, kvh_status_str(s_),         \
          kvh_status_str(want));                                                \
    CHECK(strstr(kvh_last_error(), (needle)) != NULL,                           \
          "%s: last error does not mention \"%s\"", #call, (needle));           \
  } while (0)

static void path_in(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", tmpdir, name);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  fclose(f);
  buf[got] = 0;
  if (len) *len = got;
  return buf;
}

static int all_bytes(const void *p, size_t n, unsigned char v) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != v) return 0;
  return 1;
}

static kvh_alloc_desc desc_for(uint64_t ptr, uint64_t nbytes, const char *tenant) {
  kvh_alloc_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.ptr = ptr;
  d.nbytes = nbytes;
  d.device = KVH_DEVICE_CPU;
  d.tenant_id = tenant;
  d.request_id = "req-1";
  d.model_id = "llama-3-8b";
  d.flags = KVH_ALLOC_HAS_MAX_REUSE;
  d.max_reuse = -1;
  return d;
}

static kvh_sanitize_opts full_opts(void) {
  kvh_sanitize_opts o;
  kvh_sanitize_opts_init(&o, sizeof o);
  o.verify = KVH_VERIFY_FULL;
  return o;
}

static kvh_tracer *open_tracer(const char *logname, const char *key) {
  kvh_config cfg;
  char path[512];
  if (kvh_config_init(&cfg, sizeof cfg) != KVH_OK) return NULL;
  path_in(path, sizeof path, logname);
  cfg.log_path = path;
  cfg.fsync_policy = KVH_FSYNC_NONE;
  if (key) {
    cfg.hmac_key = (const uint8_t *)key;
    cfg.hmac_key_len = strlen(key);
  }
  kvh_tracer *t = NULL;
  kvh_status st = kvh_tracer_open(&cfg, &t);
  if (st != KVH_OK) {
    fprintf(stderr, "open_tracer(%s): %s: %s\n", logname, kvh_status_str(st), kvh_last_error());
    return NULL;
  }
  return t;
}

/* ------------------------------------------------------------------------ */

static void test_version_and_status(void) {
  CHECK(strcmp(kvh_version(), "1.0.0") == 0, "kvh_version() = %s", kvh_version());
  CHECK(kvh_version_number() == 10000 && kvh_version_number() == KVH_VERSION_NUMBER,
        "kvh_version_number() = %u", kvh_version_number());
  CHECK(kvh_last_error() != NULL, "kvh_last_error() is NULL");
  CHECK(strcmp(kvh_status_str(KVH_OK), "KVH_OK") == 0, "status_str(OK)");
  CHECK(strcmp(kvh_status_str(KVH_E_FORKED), "KVH_E_FORKED") == 0, "status_str(FORKED)");
  CHECK(strcmp(kvh_status_str(KVH_E_BUSY), "KVH_E_BUSY") == 0, "status_str(BUSY)");
  CHECK(strcmp(kvh_status_str(999), "KVH_E_UNKNOWN") == 0, "status_str(999)");
  CHECK(strcmp(kvh_status_str(-1), "KVH_E_UNKNOWN") == 0, "status_str(-1)");
  for (kvh_status s = 0; s <= KVH_E_BUSY; s++)
    CHECK(kvh_status_str(s) != NULL && strncmp(kvh_status_str(s), "KVH_", 4) == 0 &&
              strcmp(kvh_status_str(s), "KVH_E_UNKNOWN") != 0,
          "status_str(%d) = %s", s, kvh_status_str(s));
}

static void test_config(void) {
  kvh_config cfg;
  EXPECT_MSG(kvh_config_init(NULL, sizeof(kvh_config)), KVH_E_NULL_ARG, "config");
  unsetenv("KV_COVERAGE_THRESHOLD");
  unsetenv("FORENSIC_HMAC_SECRET");
  EXPECT(kvh_config_init(&cfg, sizeof cfg), KVH_OK);
  CHECK(cfg.struct_size == sizeof cfg, "config struct_size %u", cfg.struct_size);
  CHECK(fabs(cfg.coverage_threshold - 99.9) < 1e-9, "default threshold %f", cfg.coverage_threshold);
  CHECK(cfg.log_path && strcmp(cfg.log_path, "forensics/kv_cache.log") == 0, "default log_path");
  CHECK(cfg.hmac_key == NULL && cfg.hmac_key_len == 0, "no key by default");
  CHECK(cfg.verify_default == KVH_VERIFY_FULL, "verify_default %d", cfg.verify_default);
  CHECK(cfg.verify_samples_default == 8, "verify_samples_default %d", cfg.verify_samples_default);
  CHECK(cfg.max_log_bytes == 5000000, "max_log_bytes");

  /* environment set by the host after the library was loaded is seen */
  setenv("KV_COVERAGE_THRESHOLD", "95.5", 1);
  setenv("FORENSIC_HMAC_SECRET", "s3cret", 1);
  EXPECT(kvh_config_init(&cfg, sizeof cfg), KVH_OK);
  CHECK(fabs(cfg.coverage_threshold - 95.5) < 1e-9, "env threshold %f", cfg.coverage_threshold);
  CHECK(cfg.hmac_key_len == 6 && memcmp(cfg.hmac_key, "s3cret", 6) == 0, "env hmac key");
  setenv("KV_COVERAGE_THRESHOLD", "abc", 1);
  EXPECT_MSG(kvh_config_init(&cfg, sizeof cfg), KVH_E_CONFIG, "KV_COVERAGE_THRESHOLD");
  setenv("KV_COVERAGE_THRESHOLD", "150", 1);
  EXPECT_MSG(kvh_config_init(&cfg, sizeof cfg), KVH_E_CONFIG, "KV_COVERAGE_THRESHOLD");
  kvh_tracer *t = (kvh_tracer *)1;
  EXPECT_MSG(kvh_tracer_open(NULL, &t), KVH_E_CONFIG, "KV_COVERAGE_THRESHOLD");
  CHECK(t == (kvh_tracer *)1, "out written on failure");
  unsetenv("KV_COVERAGE_THRESHOLD");
  unsetenv("FORENSIC_HMAC_SECRET");
  EXPECT(kvh_config_init(&cfg, sizeof cfg), KVH_OK);
  CHECK(fabs(cfg.coverage_threshold - 99.9) < 1e-9, "unset env threshold %f", cfg.coverage_threshold);

  kvh_sanitize_opts o;
  EXPECT_MSG(kvh_sanitize_opts_init(NULL, sizeof(kvh_sanitize_opts)), KVH_E_NULL_ARG, "opts");
  memset(&o, 0xff, sizeof o);
  EXPECT(kvh_sanitize_opts_init(&o, sizeof o), KVH_OK);
  CHECK(o.struct_size == sizeof o && o.flags == 0 && o.verify == KVH_VERIFY_DEFAULT &&
            o.samples == 0 && o.stream == 0,
        "sanitize_opts_init defaults");

  /* A caller compiled against another header passes its own size: refused, nothing written
   * (an older, smaller struct must never be overrun). */
  {
    unsigned char buf[sizeof(kvh_config) + 64];
    memset(buf, 0xa5, sizeof buf);
    const size_t older = offsetof(kvh_config, archive_dir); /* a shorter, earlier layout */
    EXPECT_MSG(kvh_config_init((kvh_config *)buf, older), KVH_E_STRUCT_SIZE, "struct_size");
    EXPECT_MSG(kvh_config_init((kvh_config *)buf, sizeof(kvh_config) + 8), KVH_E_STRUCT_SIZE,
               "sizeof(kvh_config)");
    EXPECT_MSG(kvh_config_init((kvh_config *)buf, 0), KVH_E_STRUCT_SIZE, "struct_size is 0");
    CHECK(all_bytes(buf, sizeof buf, 0xa5), "config_init with a wrong size wrote into the struct");
    EXPECT_MSG(kvh_sanitize_opts_init((kvh_sanitize_opts *)buf, sizeof(kvh_sanitize_opts) - 8),
               KVH_E_STRUCT_SIZE, "sizeof(kvh_sanitize_opts)");
    CHECK(all_bytes(buf, sizeof buf, 0xa5), "sanitize_opts_init with a wrong size wrote into the struct");
  }
}

static void test_open_close(void) {
  kvh_config cfg;
  kvh_tracer *t = NULL, *t2 = NULL;
  char path[512];
  kvh_config_init(&cfg, sizeof cfg);
  path_in(path, sizeof path, "oc.log");
  cfg.log_path = path;

  EXPECT_MSG(kvh_tracer_open(&cfg, NULL), KVH_E_NULL_ARG, "out");
  cfg.struct_size = sizeof cfg - 8;
  EXPECT_MSG(kvh_tracer_open(&cfg, &t), KVH_E_STRUCT_SIZE, "struct_size");
  cfg.struct_size = 0;
  EXPECT(kvh_tracer_open(&cfg, &t), KVH_E_STRUCT_SIZE);
  cfg.struct_size = sizeof cfg;
  cfg.coverage_threshold = 150;
  EXPECT_MSG(kvh_tracer_open(&cfg, &t), KVH_E_CONFIG, "coverage_threshold");
  cfg.coverage_threshold = 99.9;
  cfg.double_pass_default = 7;
  EXPECT_MSG(kvh_tracer_open(&cfg, &t), KVH_E_CONFIG, "double_pass_default");
  cfg.double_pass_default = 0;
  cfg.hmac_key = (const uint8_t *)"k";
  cfg.hmac_key_len = 0;
  EXPECT_MSG(kvh_tracer_open(&cfg, &t), KVH_E_INVALID_ARG, "hmac_key");
  cfg.hmac_key = NULL;

  EXPECT(kvh_tracer_open(&cfg, &t), KVH_OK);
  CHECK(t != NULL, "tracer is NULL");
  /* a second writer on the same log is refused */
  EXPECT(kvh_tracer_open(&cfg, &t2), KVH_E_LOG);

  EXPECT_MSG(kvh_tracer_close(NULL), KVH_E_NULL_ARG, "tracer");
  EXPECT(kvh_tracer_close(t), KVH_OK);
  EXPECT(kvh_tracer_close(t), KVH_E_CLOSED);
  /* use after close is reported, not a crash */
  kvh_alloc_desc d = desc_for(0, 64, "tenantA");
  uint64_t h = 0;
  EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_CLOSED, "closed");
  EXPECT(kvh_log_flush(t), KVH_E_CLOSED);
  EXPECT(kvh_metrics_stop(t), KVH_E_CLOSED);
  /* the log is free again after close */
  EXPECT(kvh_tracer_open(&cfg, &t2), KVH_OK);
  /* pointers that are not tracers */
  int local = 0;
  EXPECT(kvh_log_flush((kvh_tracer *)&local), KVH_E_INVALID_ARG);
  EXPECT(kvh_log_flush((kvh_tracer *)(uintptr_t)0x1234), KVH_E_INVALID_ARG);
  EXPECT(kvh_tracer_close((kvh_tracer *)&local), KVH_E_INVALID_ARG);
  EXPECT(kvh_tracer_close(t2), KVH_OK);

  /* config NULL: the defaults, i.e. forensics/kv_cache.log under the cwd */
  char cwd[1024], deflog[600];
  CHECK(getcwd(cwd, sizeof cwd) != NULL && chdir(tmpdir) == 0, "chdir");
  EXPECT(kvh_tracer_open(NULL, &t2), KVH_OK);
  EXPECT(kvh_log_flush(t2), KVH_OK);
  EXPECT(kvh_tracer_close(t2), KVH_OK);
  CHECK(chdir(cwd) == 0, "chdir back");
  path_in(deflog, sizeof deflog, "forensics/kv_cache.log");
  struct stat stt;
  CHECK(stat(deflog, &stt) == 0, "default log %s not created", deflog);
}

static void test_lifecycle_caller_memory(kvh_tracer *t) {
  const size_t n = 4096;
  unsigned char *mem = aligned_alloc(64, n);
  memset(mem, 0xAB, n);
  kvh_alloc_desc d = desc_for((uint64_t)(uintptr_t)mem, n, "tenantA");
  int64_t shape[2] = {16, 256};
  d.shape = shape;
  d.shape_len = 2;
  d.dtype = "float16";
  d.framework = "torch";
  uint64_t h = 0;
  double cov = -1;
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  CHECK(h != 0, "handle 0");
  EXPECT(kvh_bind(t, h, "tenantA", "stream-0"), KVH_OK);
  EXPECT(kvh_mark_in_use(t, h, "tenantA"), KVH_OK);
  EXPECT(kvh_mark_reuse(t, h, "tenantA"), KVH_OK);
  EXPECT(kvh_mark_reuse(t, h, NULL), KVH_OK);

  kvh_buffer_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(kvh_buffer_info_get(t, h, &info), KVH_OK);
  CHECK(info.state == KVH_STATE_IN_USE, "state %d", info.state);
  CHECK(info.ptr == (uint64_t)(uintptr_t)mem && info.nbytes == n, "info ptr/nbytes");
  CHECK(info.reuse_count == 2 && info.max_reuse == -1, "reuse %lld/%lld",
        (long long)info.reuse_count, (long long)info.max_reuse);
  CHECK(strcmp(info.tenant_id, "tenantA") == 0 && strcmp(info.request_id, "req-1") == 0 &&
            strcmp(info.model_id, "llama-3-8b") == 0,
        "info ids");
  CHECK(info.library_owned == 0, "caller memory reported library-owned");
  CHECK(info.struct_size == sizeof info, "info struct_size changed");

  EXPECT(kvh_attest_coverage(t, h, &cov), KVH_OK);
  CHECK(cov == 0, "coverage before sanitize %f", cov);
  /* free before sanitize fails and quarantines */
  kvh_status st = kvh_free(t, h);
  CHECK(st == KVH_E_COVERAGE || st == KVH_E_STATE, "free before sanitize -> %s", kvh_status_str(st));

  kvh_sanitize_opts o = full_opts();
  EXPECT(kvh_sanitize(t, h, &o, &cov), KVH_OK);
  CHECK(cov == 100.0, "full coverage %f", cov);
  CHECK(all_bytes(mem, n, 0), "caller memory not zeroed");
  /* quarantined by the failed free: sticky until released */
  EXPECT(kvh_free(t, h), KVH_E_QUARANTINED);
  EXPECT(kvh_release_quarantine(t, h, "operator checked"), KVH_OK);
  EXPECT(kvh_attest_coverage(t, h, &cov), KVH_OK);
  CHECK(cov == 100.0, "attested %f", cov);
  EXPECT(kvh_free(t, h), KVH_OK);
  EXPECT_MSG(kvh_free(t, h), KVH_E_FREED, "free");
  EXPECT(kvh_bind(t, h, NULL, NULL), KVH_E_FREED);
  EXPECT(kvh_mark_in_use(t, h, NULL), KVH_E_FREED);
  EXPECT(kvh_sanitize(t, h, NULL, NULL), KVH_E_FREED);
  EXPECT(kvh_attest_coverage(t, h, &cov), KVH_E_FREED);
  EXPECT(kvh_quarantine(t, h, "x"), KVH_E_FREED);
  EXPECT(kvh_buffer_info_get(t, h, &info), KVH_E_FREED);

  /* the slot is reused by a new buffer: the stale handle still says FREED */
  uint64_t h2 = 0;
  d.shape = NULL;
  d.shape_len = 0;
  EXPECT(kvh_allocate(t, &d, &h2), KVH_OK);
  CHECK(h2 != h, "new handle equals stale handle");
  EXPECT(kvh_free(t, h), KVH_E_FREED);
  EXPECT(kvh_sanitize(t, h2, &o, NULL), KVH_OK);
  EXPECT(kvh_free(t, h2), KVH_OK);
  free(mem);
}

static void test_library_owned(kvh_tracer *t) {
  kvh_alloc_desc d = desc_for(0, 8192, "tenantA");
  uint64_t h = 0;
  double cov = 0;
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  kvh_buffer_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(kvh_buffer_info_get(t, h, &info), KVH_OK);
  CHECK(info.library_owned == 1 && info.ptr != 0 && info.nbytes == 8192, "library-owned info");
  unsigned char *p = (unsigned char *)(uintptr_t)info.ptr;
  if (p == NULL) return;
  CHECK(all_bytes(p, 8192, 0), "fresh library memory not zero");
  memset(p, 0xCD, 8192);
  EXPECT(kvh_mark_in_use(t, h, "tenantA"), KVH_OK);
  kvh_sanitize_opts o = full_opts();
  o.flags = KVH_SANITIZE_DOUBLE_PASS;
  EXPECT(kvh_sanitize(t, h, &o, &cov), KVH_OK);
  CHECK(cov == 100.0 && all_bytes(p, 8192, 0), "library memory sanitized (cov %f)", cov);
  EXPECT(kvh_free(t, h), KVH_OK);
}

static void test_sanitize_modes(kvh_tracer *t) {
  uint64_t h = 0;
  double cov = -1;
  kvh_alloc_desc d = desc_for(0, 4096, "tenantA");
  kvh_sanitize_opts o;
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);

  kvh_sanitize_opts_init(&o, sizeof o);
  o.verify = KVH_VERIFY_SAMPLED;
  o.samples = 64;
  EXPECT(kvh_sanitize(t, h, &o, &cov), KVH_OK);
  CHECK(cov >= 0 && cov <= 100, "sampled coverage %f", cov);

  kvh_sanitize_opts_init(&o, sizeof o);
  o.verify = KVH_VERIFY_NONE;
  EXPECT(kvh_sanitize(t, h, &o, &cov), KVH_OK);
  CHECK(cov == 0, "unverified coverage %f", cov);
  /* unverified: free refused and the buffer quarantined */
  EXPECT(kvh_free(t, h), KVH_E_COVERAGE);
  /* release requires a passing verified sanitize first */
  EXPECT(kvh_release_quarantine(t, h, "too early"), KVH_E_STATE);
  EXPECT(kvh_sanitize(t, h, NULL, &cov), KVH_OK); /* default = full */
  CHECK(cov == 100.0, "default-mode coverage %f", cov);
  EXPECT(kvh_release_quarantine(t, h, "verified"), KVH_OK);

  /* async on the CPU completes through kvh_wait */
  kvh_sanitize_opts_init(&o, sizeof o);
  o.flags = KVH_SANITIZE_ASYNC;
  o.verify = KVH_VERIFY_FULL;
  EXPECT(kvh_sanitize(t, h, &o, &cov), KVH_OK);
  cov = -1;
  EXPECT(kvh_wait(t, h, &cov), KVH_OK);
  CHECK(cov == 100.0, "async coverage after wait %f", cov);
  EXPECT(kvh_wait(t, h, NULL), KVH_OK);

  /* bad options */
  kvh_sanitize_opts_init(&o, sizeof o);
  o.flags = KVH_SANITIZE_DOUBLE_PASS | KVH_SANITIZE_NO_DOUBLE_PASS;
  EXPECT_MSG(kvh_sanitize(t, h, &o, &cov), KVH_E_INVALID_ARG, "DOUBLE_PASS");
  o.flags = 0x100;
  EXPECT_MSG(kvh_sanitize(t, h, &o, &cov), KVH_E_INVALID_ARG, "flags");
  o.flags = 0;
  o.verify = 7;
  EXPECT_MSG(kvh_sanitize(t, h, &o, &cov), KVH_E_INVALID_ARG, "verify");
  kvh_sanitize_opts_init(&o, sizeof o);
  o.struct_size = 8;
  EXPECT_MSG(kvh_sanitize(t, h, &o, &cov), KVH_E_STRUCT_SIZE, "struct_size");
  o.struct_size = sizeof o + 4;
  EXPECT(kvh_sanitize(t, h, &o, &cov), KVH_E_STRUCT_SIZE);

  EXPECT(kvh_free(t, h), KVH_OK);
}

static void test_sanitize_many(kvh_tracer *t) {
  uint64_t hs[4];
  double covs[4] = {-1, -1, -1, -1};
  kvh_alloc_desc d = desc_for(0, 1024, "tenantA");
  for (int i = 0; i < 3; i++) EXPECT(kvh_allocate(t, &d, &hs[i]), KVH_OK);
  kvh_sanitize_opts o = full_opts();
  EXPECT(kvh_sanitize_many(t, hs, 3, &o, covs), KVH_OK);
  CHECK(covs[0] == 100 && covs[1] == 100 && covs[2] == 100, "many coverages %f %f %f", covs[0],
        covs[1], covs[2]);
  EXPECT(kvh_free(t, hs[2]), KVH_OK);
  /* a freed handle in the list: first failure returned, the rest still done */
  hs[3] = hs[1];
  EXPECT(kvh_sanitize_many(t, hs, 3, &o, NULL), KVH_E_FREED);
  EXPECT_MSG(kvh_sanitize_many(t, NULL, 2, &o, covs), KVH_E_NULL_ARG, "handles");
  EXPECT(kvh_sanitize_many(NULL, hs, 2, &o, covs), KVH_E_NULL_ARG);
  EXPECT(kvh_free(t, hs[0]), KVH_OK);
  EXPECT(kvh_free(t, hs[1]), KVH_OK);
}

static void test_quarantine_and_policy(kvh_tracer *t) {
  uint64_t h = 0;
  double cov;
  kvh_alloc_desc d = desc_for(0, 512, "tenantA");
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  EXPECT(kvh_quarantine(t, h, "suspicious"), KVH_OK);
  EXPECT(kvh_mark_in_use(t, h, "tenantA"), KVH_E_QUARANTINED);
  EXPECT(kvh_free(t, h), KVH_E_QUARANTINED);
  EXPECT(kvh_release_quarantine(t, h, "no sanitize yet"), KVH_E_STATE);
  kvh_sanitize_opts o = full_opts();
  EXPECT(kvh_sanitize(t, h, &o, &cov), KVH_OK);
  EXPECT(kvh_release_quarantine(t, h, "verified clean"), KVH_OK);
  EXPECT(kvh_free(t, h), KVH_OK);

  /* tenant isolation */
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  EXPECT_MSG(kvh_bind(t, h, "tenantB", NULL), KVH_E_ISOLATION, "tenant");
  EXPECT(kvh_mark_in_use(t, h, "tenantA"), KVH_E_QUARANTINED);
  EXPECT(kvh_sanitize(t, h, &o, &cov), KVH_OK);
  EXPECT(kvh_release_quarantine(t, h, "isolation reviewed"), KVH_OK);
  EXPECT(kvh_free(t, h), KVH_OK);

  /* TTL <= 0 violates on first use */
  d.flags = KVH_ALLOC_HAS_TTL;
  d.ttl_sec = 0;
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  EXPECT(kvh_mark_in_use(t, h, "tenantA"), KVH_E_POLICY);
  kvh_buffer_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(kvh_buffer_info_get(t, h, &info), KVH_OK);
  CHECK(info.state == KVH_STATE_QUARANTINED, "expired buffer state %d", info.state);
  d.flags = KVH_ALLOC_HAS_TTL;
  d.ttl_sec = NAN;
  EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG, "ttl_sec");

  /* max_reuse 0: the first reuse violates */
  d.flags = KVH_ALLOC_HAS_MAX_REUSE;
  d.max_reuse = 0;
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  EXPECT(kvh_mark_in_use(t, h, "tenantA"), KVH_OK);
  EXPECT(kvh_mark_reuse(t, h, "tenantA"), KVH_E_POLICY);

  EXPECT_MSG(kvh_quarantine(t, h, NULL), KVH_E_NULL_ARG, "reason");
  EXPECT_MSG(kvh_quarantine(t, h, "line\nbreak"), KVH_E_INVALID_ID, "reason");
  EXPECT_MSG(kvh_release_quarantine(t, h, NULL), KVH_E_NULL_ARG, "reason");
  EXPECT(kvh_release_quarantine(t, h, "say \"hi\""), KVH_E_INVALID_ID);
}

static void test_bad_handles(kvh_tracer *t, kvh_tracer *other) {
  double cov;
  kvh_buffer_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT_MSG(kvh_free(t, 0), KVH_E_UNKNOWN_HANDLE, "handle");
  EXPECT(kvh_bind(t, 0, NULL, NULL), KVH_E_UNKNOWN_HANDLE);
  EXPECT(kvh_sanitize(t, 0, NULL, NULL), KVH_E_UNKNOWN_HANDLE);
  EXPECT(kvh_attest_coverage(t, 0, &cov), KVH_E_UNKNOWN_HANDLE);
  EXPECT(kvh_buffer_info_get(t, 0, &info), KVH_E_UNKNOWN_HANDLE);
  EXPECT(kvh_free(t, 0x0123456789abcdefULL), KVH_E_UNKNOWN_HANDLE);
  EXPECT(kvh_wait(t, 0xfedcba9876543210ULL, &cov), KVH_E_UNKNOWN_HANDLE);
  /* UINT64_MAX is the (disarmed) test panic trigger: an ordinary unknown handle here */
  EXPECT(kvh_attest_coverage(t, UINT64_MAX, &cov), KVH_E_UNKNOWN_HANDLE);
  /* a handle of another tracer */
  kvh_alloc_desc d = desc_for(0, 64, "tenantA");
  uint64_t h = 0;
  EXPECT(kvh_allocate(other, &d, &h), KVH_OK);
  EXPECT(kvh_free(t, h), KVH_E_UNKNOWN_HANDLE);
  EXPECT(kvh_sanitize(other, h, NULL, NULL), KVH_OK);
  EXPECT(kvh_free(other, h), KVH_OK);
  /* pool handles */
  EXPECT_MSG(kvh_pool_sync(t, 0, NULL), KVH_E_UNKNOWN_HANDLE, "pool");
  EXPECT(kvh_pool_unregister(t, 0x77777777ULL, 1), KVH_E_UNKNOWN_HANDLE);
}

static void test_null_args(kvh_tracer *t) {
  kvh_alloc_desc d = desc_for(0, 64, "tenantA");
  uint64_t h = 0, p = 0;
  double cov;
  size_t len;
  int32_t ok;
  uint64_t recs;
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);

  EXPECT_MSG(kvh_allocate(NULL, &d, &p), KVH_E_NULL_ARG, "tracer");
  EXPECT_MSG(kvh_allocate(t, NULL, &p), KVH_E_NULL_ARG, "desc");
  EXPECT_MSG(kvh_allocate(t, &d, NULL), KVH_E_NULL_ARG, "out_handle");
  EXPECT(kvh_bind(NULL, h, NULL, NULL), KVH_E_NULL_ARG);
  EXPECT(kvh_mark_in_use(NULL, h, NULL), KVH_E_NULL_ARG);
  EXPECT(kvh_mark_reuse(NULL, h, NULL), KVH_E_NULL_ARG);
  EXPECT(kvh_sanitize(NULL, h, NULL, NULL), KVH_E_NULL_ARG);
  EXPECT(kvh_wait(NULL, h, &cov), KVH_E_NULL_ARG);
  EXPECT(kvh_attest_coverage(NULL, h, &cov), KVH_E_NULL_ARG);
  EXPECT_MSG(kvh_attest_coverage(t, h, NULL), KVH_E_NULL_ARG, "out_coverage");
  EXPECT(kvh_quarantine(NULL, h, "r"), KVH_E_NULL_ARG);
  EXPECT(kvh_release_quarantine(NULL, h, "r"), KVH_E_NULL_ARG);
  EXPECT(kvh_free(NULL, h), KVH_E_NULL_ARG);
  EXPECT(kvh_buffer_info_get(NULL, h, NULL), KVH_E_NULL_ARG);
  EXPECT_MSG(kvh_buffer_info_get(t, h, NULL), KVH_E_NULL_ARG, "out");

  d.tenant_id = NULL;
  EXPECT_MSG(kvh_allocate(t, &d, &p), KVH_E_NULL_ARG, "tenant_id");
  d.tenant_id = "tenantA";
  d.request_id = NULL;
  EXPECT_MSG(kvh_allocate(t, &d, &p), KVH_E_NULL_ARG, "request_id");
  d.request_id = "r";
  d.model_id = NULL;
  EXPECT_MSG(kvh_allocate(t, &d, &p), KVH_E_NULL_ARG, "model_id");
  d.model_id = "m";
  d.shape = NULL;
  d.shape_len = 3;
  EXPECT_MSG(kvh_allocate(t, &d, &p), KVH_E_NULL_ARG, "shape");
  d.shape_len = 0;

  kvh_pool_desc pd;
  memset(&pd, 0, sizeof pd);
  pd.struct_size = sizeof pd;
  uint32_t blocks[1] = {0};
  EXPECT(kvh_pool_register(NULL, &pd, &p), KVH_E_NULL_ARG);
  EXPECT_MSG(kvh_pool_register(t, NULL, &p), KVH_E_NULL_ARG, "desc");
  EXPECT_MSG(kvh_pool_register(t, &pd, NULL), KVH_E_NULL_ARG, "out_pool");
  pd.num_blocks = 4;
  pd.num_regions = 2;
  pd.model_id = "m";
  EXPECT_MSG(kvh_pool_register(t, &pd, &p), KVH_E_NULL_ARG, "regions");
  EXPECT(kvh_pool_assign(NULL, 1, blocks, 1, "a", "b"), KVH_E_NULL_ARG);
  EXPECT(kvh_pool_release(NULL, 1, blocks, 1, 0, &cov), KVH_E_NULL_ARG);
  EXPECT(kvh_pool_sync(NULL, 1, &cov), KVH_E_NULL_ARG);
  EXPECT(kvh_pool_unregister(NULL, 1, 0), KVH_E_NULL_ARG);

  EXPECT(kvh_metrics_json(NULL, NULL, 0, &len), KVH_E_NULL_ARG);
  EXPECT_MSG(kvh_metrics_json(t, NULL, 16, &len), KVH_E_NULL_ARG, "buf");
  EXPECT(kvh_export_metrics(NULL, "x"), KVH_E_NULL_ARG);
  EXPECT_MSG(kvh_export_metrics(t, NULL), KVH_E_NULL_ARG, "path");
  EXPECT(kvh_export_prometheus(NULL, "x"), KVH_E_NULL_ARG);
  EXPECT_MSG(kvh_export_prometheus(t, NULL), KVH_E_NULL_ARG, "path");
  EXPECT(kvh_metrics_serve(NULL, NULL, NULL, 0), KVH_E_NULL_ARG);
  EXPECT_MSG(kvh_metrics_serve(t, NULL, NULL, 32), KVH_E_NULL_ARG, "bound_addr");
  EXPECT(kvh_metrics_stop(NULL), KVH_E_NULL_ARG);
  EXPECT(kvh_checkpoint(NULL), KVH_E_NULL_ARG);
  EXPECT(kvh_log_flush(NULL), KVH_E_NULL_ARG);

  char logp[512];
  path_in(logp, sizeof logp, "main.log");
  EXPECT_MSG(kvh_log_verify(NULL, NULL, &ok, &recs, NULL, 0, NULL), KVH_E_NULL_ARG, "path");
  EXPECT_MSG(kvh_log_verify(logp, NULL, NULL, &recs, NULL, 0, NULL), KVH_E_NULL_ARG, "out_ok");
  EXPECT_MSG(kvh_log_verify(logp, NULL, &ok, NULL, NULL, 0, NULL), KVH_E_NULL_ARG, "out_records");
  EXPECT_MSG(kvh_log_verify(logp, NULL, &ok, &recs, NULL, 10, NULL), KVH_E_NULL_ARG, "report");

  EXPECT(kvh_sanitize(t, h, NULL, NULL), KVH_OK);
  EXPECT(kvh_free(t, h), KVH_OK);
}

static void test_struct_size_and_ranges(kvh_tracer *t) {
  kvh_alloc_desc d = desc_for(0, 64, "tenantA");
  uint64_t h = 0;
  uint32_t sizes[] = {0, 4, (uint32_t)sizeof d - 8, (uint32_t)sizeof d + 8, 0xffffffffu};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    d.struct_size = sizes[i];
    EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_STRUCT_SIZE, "struct_size");
  }
  d.struct_size = sizeof d;

  kvh_buffer_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = 12;
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  EXPECT_MSG(kvh_buffer_info_get(t, h, &info), KVH_E_STRUCT_SIZE, "struct_size");
  EXPECT(kvh_sanitize(t, h, NULL, NULL), KVH_OK);
  EXPECT(kvh_free(t, h), KVH_OK);

  kvh_pool_desc pd;
  memset(&pd, 0, sizeof pd);
  pd.struct_size = sizeof pd + 1;
  uint64_t p;
  EXPECT(kvh_pool_register(t, &pd, &p), KVH_E_STRUCT_SIZE);

  kvh_verify_opts vo;
  memset(&vo, 0, sizeof vo);
  vo.struct_size = 3;
  int32_t ok;
  uint64_t recs;
  char logp[512];
  path_in(logp, sizeof logp, "main.log");
  EXPECT(kvh_log_verify(logp, &vo, &ok, &recs, NULL, 0, NULL), KVH_E_STRUCT_SIZE);

  /* ptr + nbytes overflows */
  d = desc_for(UINT64_MAX - 10, 100, "tenantA");
  EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG, "overflow");
  d = desc_for(1, UINT64_MAX, "tenantA");
  EXPECT(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG);
  /* unknown device, bad ordinal, unknown flags */
  d = desc_for(0, 64, "tenantA");
  d.device = 7;
  EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG, "device");
  d.device = -1;
  EXPECT(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG);
  d.device = KVH_DEVICE_CPU;
  d.device_ordinal = 3;
  EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG, "device_ordinal");
  d.device_ordinal = 0;
  d.flags = 0x80;
  EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG, "flags");
  d.flags = 0;
  d.shape_len = 1000;
  int64_t shape[1] = {64};
  d.shape = shape;
  EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG, "shape_len");
  /* CUDA on a machine without a driver, or an address that is not device memory */
  static unsigned char host[256];
  d = desc_for((uint64_t)(uintptr_t)host, sizeof host, "tenantA");
  d.device = KVH_DEVICE_CUDA;
  kvh_status st = kvh_allocate(t, &d, &h);
  CHECK(st == KVH_E_UNSUPPORTED || st == KVH_E_DEVICE || st == KVH_E_INVALID_ARG,
        "CUDA allocate of host memory -> %s", kvh_status_str(st));
  d.ptr = 0;
  EXPECT_MSG(kvh_allocate(t, &d, &h), KVH_E_INVALID_ARG, "ptr");
}

static void test_bad_ids(kvh_tracer *t) {
  kvh_alloc_desc d = desc_for(0, 64, "tenantA");
  uint64_t h = 0, h2;
  char long_id[300];
  memset(long_id, 'a', sizeof long_id);
  long_id[257] = 0; /* 257 bytes */
  const char *bad[] = {"\xff\xfe", "a\nb", "a\"b", "tab\there", "", "nul\x01", long_id,
                       "\xc3\x28", "\xed\xa0\x80" /* surrogate */};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    d.tenant_id = bad[i];
    EXPECT_MSG(kvh_allocate(t, &d, &h2), KVH_E_INVALID_ID, "tenant_id");
  }
  d.tenant_id = "tenantA";
  d.request_id = "line\n";
  EXPECT_MSG(kvh_allocate(t, &d, &h2), KVH_E_INVALID_ID, "request_id");
  d.request_id = "r";
  d.model_id = long_id;
  EXPECT_MSG(kvh_allocate(t, &d, &h2), KVH_E_INVALID_ID, "model_id");
  /* exactly 256 bytes and multi-byte UTF-8 are fine */
  long_id[256] = 0;
  d.model_id = long_id;
  d.tenant_id = "t\xc3\xa9nant-\xe6\x97\xa5\xe6\x9c\xac";
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  kvh_buffer_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(kvh_buffer_info_get(t, h, &info), KVH_OK);
  CHECK(strlen(info.model_id) == 256 && strcmp(info.tenant_id, d.tenant_id) == 0,
        "ids round-trip through buffer_info");
  /* a huge string without NUL in its first 257 bytes is refused without reading it all */
  size_t big = 1 << 24;
  char *huge = malloc(big);
  memset(huge, 'x', big - 1);
  huge[big - 1] = 0;
  d.model_id = "m";
  d.request_id = huge;
  EXPECT_MSG(kvh_allocate(t, &d, &h2), KVH_E_INVALID_ID, "request_id");
  free(huge);
  EXPECT(kvh_bind(t, h, "bad\"tenant", NULL), KVH_E_INVALID_ID);
  EXPECT_MSG(kvh_bind(t, h, NULL, "s\n"), KVH_E_INVALID_ID, "stream_id");
  EXPECT(kvh_mark_in_use(t, h, "\xff"), KVH_E_INVALID_ID);
  EXPECT(kvh_mark_reuse(t, h, "\n"), KVH_E_INVALID_ID);
  EXPECT(kvh_quarantine(t, h, long_id), KVH_OK); /* 256 bytes: allowed */
  EXPECT(kvh_sanitize(t, h, NULL, NULL), KVH_OK);
  EXPECT(kvh_release_quarantine(t, h, "ok"), KVH_OK);
  EXPECT(kvh_free(t, h), KVH_OK);
}

static void test_pools(kvh_tracer *t) {
  enum { NB = 8, BB = 256 };
  unsigned char *k = aligned_alloc(64, NB * BB), *v = aligned_alloc(64, NB * BB);
  memset(k, 0xEE, NB * BB);
  memset(v, 0xEE, NB * BB);
  kvh_pool_region regs[2] = {{(uint64_t)(uintptr_t)k, BB, BB}, {(uint64_t)(uintptr_t)v, BB, BB}};
  kvh_pool_desc pd;
  memset(&pd, 0, sizeof pd);
  pd.struct_size = sizeof pd;
  pd.device = KVH_DEVICE_CPU;
  pd.num_blocks = NB;
  pd.regions = regs;
  pd.num_regions = 2;
  pd.model_id = "llama";
  pd.name = "kv-pool-0";
  pd.verify = KVH_VERIFY_FULL;
  uint64_t pool = 0, p2;
  double cov = -1;

  /* invalid layouts */
  pd.num_blocks = 0;
  EXPECT_MSG(kvh_pool_register(t, &pd, &p2), KVH_E_INVALID_ARG, "num_blocks");
  pd.num_blocks = NB;
  pd.device = 9;
  EXPECT_MSG(kvh_pool_register(t, &pd, &p2), KVH_E_INVALID_ARG, "device");
  pd.device = KVH_DEVICE_CPU;
  kvh_pool_region ov[2] = {{(uint64_t)(uintptr_t)k, BB, BB}, {(uint64_t)(uintptr_t)k + 128, BB, BB}};
  pd.regions = ov;
  EXPECT(kvh_pool_register(t, &pd, &p2), KVH_E_INVALID_ARG);
  kvh_pool_region of[1] = {{UINT64_MAX - 1000, BB, BB}};
  pd.regions = of;
  pd.num_regions = 1;
  EXPECT_MSG(kvh_pool_register(t, &pd, &p2), KVH_E_INVALID_ARG, "overflow");
  /* memory the process does not own: refused now, not faulted on at release */
  kvh_pool_region um[1] = {{UINT64_MAX - (1ull << 20), BB, BB}};
  pd.regions = um;
  EXPECT_MSG(kvh_pool_register(t, &pd, &p2), KVH_E_INVALID_ARG, "not mapped");
  pd.regions = regs;
  pd.num_regions = 2;
  pd.model_id = "bad\nmodel";
  EXPECT_MSG(kvh_pool_register(t, &pd, &p2), KVH_E_INVALID_ID, "model_id");
  pd.model_id = "llama";

  EXPECT(kvh_pool_register(t, &pd, &pool), KVH_OK);
  CHECK(pool != 0, "pool handle 0");
  uint32_t ab[2] = {0, 1};
  EXPECT(kvh_pool_assign(t, pool, ab, 2, "tenantA", "req-1"), KVH_OK);
  EXPECT_MSG(kvh_pool_assign(t, pool, ab, 2, NULL, "r"), KVH_E_NULL_ARG, "tenant_id");
  EXPECT_MSG(kvh_pool_assign(t, pool, ab, 2, "tenantA", NULL), KVH_E_NULL_ARG, "request_id");
  EXPECT_MSG(kvh_pool_assign(t, pool, NULL, 2, "tenantA", "r"), KVH_E_NULL_ARG, "blocks");
  EXPECT(kvh_pool_assign(t, pool, ab, 2, "bad\"tenant", "r"), KVH_E_INVALID_ID);
  uint32_t oob[1] = {NB};
  EXPECT(kvh_pool_assign(t, pool, oob, 1, "tenantA", "r"), KVH_E_INVALID_ARG);
  /* block 0 is tenantA's and not sanitized: tenantB is refused, block quarantined */
  uint32_t b0[1] = {0};
  EXPECT_MSG(kvh_pool_assign(t, pool, b0, 1, "tenantB", "req-2"), KVH_E_ISOLATION, "tenant");

  /* release zeroes both regions of the released blocks only */
  uint32_t b1[1] = {1};
  EXPECT_MSG(kvh_pool_release(t, pool, b1, 1, 0x10, &cov), KVH_E_INVALID_ARG, "flags");
  EXPECT_MSG(kvh_pool_release(t, pool, NULL, 1, 0, &cov), KVH_E_NULL_ARG, "blocks");
  EXPECT(kvh_pool_release(t, pool, b1, 1, 0, &cov), KVH_OK);
  CHECK(cov == 100.0, "pool release coverage %f", cov);
  EXPECT(kvh_pool_sync(t, pool, NULL), KVH_OK);
  CHECK(all_bytes(k + BB, BB, 0) && all_bytes(v + BB, BB, 0), "released block not zero");
  CHECK(all_bytes(k, BB, 0xEE) && all_bytes(k + 2 * BB, (NB - 2) * BB, 0xEE) &&
            all_bytes(v + 2 * BB, (NB - 2) * BB, 0xEE),
        "unreleased blocks were touched");
  CHECK(all_bytes(v, BB, 0xEE), "block 0 of V touched");
  /* a free block cannot be released again; out_coverage may be NULL */
  EXPECT_MSG(kvh_pool_release(t, pool, b1, 1, 0, NULL), KVH_E_STATE, "not assigned");
  uint32_t b3[1] = {3};
  EXPECT(kvh_pool_assign(t, pool, b3, 1, "tenantA", "req-3"), KVH_OK);
  EXPECT(kvh_pool_release(t, pool, b3, 1, 0, NULL), KVH_OK);
  CHECK(all_bytes(k + 3 * BB, BB, 0) && all_bytes(v + 3 * BB, BB, 0), "block 3 not zero");
  /* sanitized block 1 may go to tenantB now */
  EXPECT(kvh_pool_assign(t, pool, b1, 1, "tenantB", "req-2"), KVH_OK);
  /* quarantined block 0 (the isolation violation above) returns to service only through a
   * verified scrub with a reason */
  EXPECT_MSG(kvh_pool_assign(t, pool, b0, 1, "tenantB", "req-2"), KVH_E_QUARANTINED, "quarantined");
  EXPECT_MSG(kvh_pool_release_quarantine(t, pool, b1, 1, "ok", &cov), KVH_E_STATE, "not quarantined");
  EXPECT_MSG(kvh_pool_release_quarantine(t, pool, b0, 1, NULL, &cov), KVH_E_NULL_ARG, "reason");
  EXPECT_MSG(kvh_pool_release_quarantine(t, pool, b0, 1, "bad\nreason", &cov), KVH_E_INVALID_ID,
             "reason");
  EXPECT_MSG(kvh_pool_release_quarantine(t, pool, NULL, 1, "ok", &cov), KVH_E_NULL_ARG, "blocks");
  EXPECT(kvh_pool_release_quarantine(t, pool + 1, b0, 1, "ok", &cov), KVH_E_UNKNOWN_HANDLE);
  CHECK(all_bytes(k, BB, 0xEE), "refused calls scrubbed block 0");
  cov = -1;
  EXPECT(kvh_pool_release_quarantine(t, pool, b0, 1, "reviewed", &cov), KVH_OK);
  CHECK(cov == 100.0 && all_bytes(k, BB, 0) && all_bytes(v, BB, 0),
        "release_quarantine scrubbed block 0 (coverage %f)", cov);
  EXPECT(kvh_pool_assign(t, pool, b0, 1, "tenantB", "req-4"), KVH_OK);
  EXPECT(kvh_pool_release(t, pool, b0, 1, 0, NULL), KVH_OK);
  EXPECT(kvh_pool_sync(t, pool, &cov), KVH_OK);
  CHECK(cov == 100.0, "pool sync min coverage %f", cov);
  EXPECT(kvh_pool_unregister(t, pool, 0), KVH_E_STATE);
  memset(k + BB, 0x55, BB);
  EXPECT(kvh_pool_unregister(t, pool, 1), KVH_OK);
  CHECK(all_bytes(k + BB, BB, 0), "force unregister did not zero an assigned block");
  kvh_status st = kvh_pool_sync(t, pool, &cov);
  CHECK(st == KVH_E_FREED || st == KVH_E_UNKNOWN_HANDLE, "sync of unregistered pool -> %s",
        kvh_status_str(st));
  free(k);
  free(v);
}

static void test_metrics(kvh_tracer *t) {
  size_t len = 0, len2 = 0;
  char small[8];
  EXPECT(kvh_metrics_json(t, NULL, 0, &len), KVH_E_BUFFER_TOO_SMALL);
  CHECK(len > 10, "metrics size query %zu", len);
  EXPECT_MSG(kvh_metrics_json(t, small, sizeof small, &len2), KVH_E_BUFFER_TOO_SMALL, "buf");
  CHECK(len2 == len, "size needed %zu vs %zu", len2, len);
  char *buf = malloc(len + 64);
  EXPECT(kvh_metrics_json(t, buf, len, &len2), KVH_E_BUFFER_TOO_SMALL); /* no room for NUL */
  EXPECT(kvh_metrics_json(t, buf, len + 64, &len2), KVH_OK);
  CHECK(strlen(buf) == len2 && buf[0] == '{' && strstr(buf, "\"total_buffers\"") != NULL,
        "metrics json: %.80s", buf);
  EXPECT(kvh_metrics_json(t, buf, len + 64, NULL), KVH_OK);
  free(buf);

  char path[512];
  size_t n;
  path_in(path, sizeof path, "metrics.json");
  EXPECT(kvh_export_metrics(t, path), KVH_OK);
  char *s = read_file(path, &n);
  CHECK(s && strstr(s, "\"total_buffers\""), "exported metrics json");
  free(s);
  path_in(path, sizeof path, "metrics.prom");
  EXPECT(kvh_export_prometheus(t, path), KVH_OK);
  s = read_file(path, &n);
  CHECK(s && strstr(s, "kv_hygiene_"), "exported prometheus text");
  free(s);
  path_in(path, sizeof path, "metrics.json/not-a-dir.json"); /* parent is a file */
  EXPECT(kvh_export_metrics(t, path), KVH_E_IO);
  EXPECT(kvh_export_metrics(t, ""), KVH_E_INVALID_ARG);

  /* HTTP server on loopback */
  char bound[64];
  EXPECT(kvh_metrics_serve(t, "127.0.0.1:0", bound, 4), KVH_E_BUFFER_TOO_SMALL);
  EXPECT(kvh_metrics_serve(t, "not an address", bound, sizeof bound), KVH_E_INVALID_ARG);
  EXPECT(kvh_metrics_serve(t, ":0", bound, sizeof bound), KVH_OK);
  CHECK(strncmp(bound, "127.0.0.1:", 10) == 0, "bound %s", bound);
  EXPECT(kvh_metrics_serve(t, NULL, NULL, 0), KVH_E_BUSY);
  int port = atoi(bound + 10);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int got_metrics = 0;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
    const char *req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
      static char resp[1 << 20];
      size_t have = 0;
      ssize_t r;
      while (have < sizeof resp - 1 && (r = read(fd, resp + have, sizeof resp - 1 - have)) > 0)
        have += (size_t)r;
      resp[have] = 0;
      got_metrics = strstr(resp, "200") != NULL && strstr(resp, "kv_hygiene_") != NULL;
    }
  }
  close(fd);
  CHECK(got_metrics, "GET http://%s/metrics did not return kv_hygiene_ metrics", bound);
  EXPECT(kvh_metrics_stop(t), KVH_OK);
}

struct thread_arg {
  kvh_tracer *t;
  int errors;
  char msg[256];
};

static void *worker(void *p) {
  struct thread_arg *a = p;
  kvh_alloc_desc d = desc_for(0, 4096, "tenantT");
  kvh_sanitize_opts o = full_opts();
  for (int i = 0; i < 50; i++) {
    uint64_t h;
    double cov;
    if (kvh_allocate(a->t, &d, &h) != KVH_OK || kvh_mark_in_use(a->t, h, "tenantT") != KVH_OK ||
        kvh_sanitize(a->t, h, &o, &cov) != KVH_OK || cov != 100.0 || kvh_free(a->t, h) != KVH_OK) {
      a->errors++;
      snprintf(a->msg, sizeof a->msg, "%s", kvh_last_error());
    }
  }
  return NULL;
}

static void *error_thread(void *p) {
  struct thread_arg *a = p;
  a->errors = kvh_free(a->t, 0) != KVH_E_UNKNOWN_HANDLE;
  snprintf(a->msg, sizeof a->msg, "%s", kvh_last_error());
  return NULL;
}

static void test_threads(kvh_tracer *t) {
  /* the last error is per thread */
  EXPECT(kvh_quarantine(t, 0, "main-thread-error"), KVH_E_UNKNOWN_HANDLE);
  char mine[256];
  snprintf(mine, sizeof mine, "%s", kvh_last_error());
  struct thread_arg ea = {t, 0, ""};
  pthread_t th;
  pthread_create(&th, NULL, error_thread, &ea);
  pthread_join(th, NULL);
  CHECK(ea.errors == 0 && strstr(ea.msg, "kvh_free") != NULL, "thread error: %s", ea.msg);
  CHECK(strcmp(mine, kvh_last_error()) == 0 && strstr(mine, "kvh_quarantine"),
        "main thread's last error changed: %s", kvh_last_error());

  struct thread_arg args[4];
  pthread_t ths[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (struct thread_arg){t, 0, ""};
    pthread_create(&ths[i], NULL, worker, &args[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(ths[i], NULL);
    CHECK(args[i].errors == 0, "worker %d: %d errors (%s)", i, args[i].errors, args[i].msg);
  }
}

struct race_arg {
  kvh_tracer *t;
  int unexpected;
  kvh_status last;
};

static void *racer(void *p) {
  struct race_arg *a = p;
  kvh_alloc_desc d = desc_for(0, 256, "tenantR");
  for (int i = 0; i < 2000; i++) {
    uint64_t h;
    kvh_status s = kvh_allocate(a->t, &d, &h);
    if (s == KVH_OK) {
      s = kvh_sanitize(a->t, h, NULL, NULL);
      if (s == KVH_OK) s = kvh_free(a->t, h);
    }
    if (s != KVH_OK && s != KVH_E_CLOSED) {
      a->unexpected++;
      a->last = s;
    }
    if (s == KVH_E_CLOSED) break;
  }
  return NULL;
}

/* closing a tracer while other threads use it: they get KVH_E_CLOSED, never a crash */
static void test_close_race(void) {
  kvh_tracer *t = open_tracer("race.log", NULL);
  CHECK(t != NULL, "open race tracer");
  if (!t) return;
  struct race_arg args[3];
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    args[i] = (struct race_arg){t, 0, KVH_OK};
    pthread_create(&th[i], NULL, racer, &args[i]);
  }
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  EXPECT(kvh_tracer_close(t), KVH_OK);
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    CHECK(args[i].unexpected == 0, "racer %d: %d unexpected statuses (last %s)", i,
          args[i].unexpected, kvh_status_str(args[i].last));
  }
  EXPECT(kvh_log_flush(t), KVH_E_CLOSED);
}

static void test_log_verify(kvh_tracer *t, const char *logname, const char *key,
                            uint64_t min_records) {
  char logp[512], tampered[512], report[4096];
  int32_t ok = -1;
  uint64_t recs = 0;
  size_t rlen = 0;
  path_in(logp, sizeof logp, logname);
  EXPECT(kvh_log_flush(t), KVH_OK);

  kvh_verify_opts vo;
  memset(&vo, 0, sizeof vo);
  vo.struct_size = sizeof vo;
  if (key) {
    vo.hmac_key = (const uint8_t *)key;
    vo.hmac_key_len = strlen(key);
  }
  EXPECT(kvh_log_verify(logp, &vo, &ok, &recs, report, sizeof report, &rlen), KVH_OK);
  CHECK(ok == 1 && recs >= min_records, "%s verifies: ok=%d records=%llu report=%.200s", logname, ok,
        (unsigned long long)recs, report);
  CHECK(rlen == strlen(report) && strstr(report, "\"ok\":true"), "report %.200s", report);
  vo.flags = KVH_LOGVERIFY_ALL;
  EXPECT(kvh_log_verify(logp, &vo, &ok, &recs, NULL, 0, NULL), KVH_OK);
  CHECK(ok == 1, "%s verify_all", logname);
  vo.flags = 0x40;
  EXPECT_MSG(kvh_log_verify(logp, &vo, &ok, &recs, NULL, 0, NULL), KVH_E_INVALID_ARG, "flags");
  vo.flags = 0;

  /* report buffer too small: status says so, size and verdict still given */
  ok = -1;
  recs = 0;
  rlen = 0;
  EXPECT(kvh_log_verify(logp, &vo, &ok, &recs, report, 2, &rlen), KVH_E_BUFFER_TOO_SMALL);
  CHECK(ok == 1 && recs > 0 && rlen > 2, "too-small report: ok=%d recs=%llu len=%zu", ok,
        (unsigned long long)recs, rlen);

  if (key) {
    /* a wrong key does not verify */
    vo.hmac_key = (const uint8_t *)"wrong-key";
    vo.hmac_key_len = 9;
    EXPECT(kvh_log_verify(logp, &vo, &ok, &recs, NULL, 0, NULL), KVH_OK);
    CHECK(ok == 0, "wrong HMAC key verified");
    vo.hmac_key = (const uint8_t *)key;
    vo.hmac_key_len = strlen(key);
  }

  /* a tampered copy fails with a report naming the line */
  size_t n;
  char *s = read_file(logp, &n);
  CHECK(s != NULL && n > 200, "log read");
  if (s) {
    /* change one byte in the middle of the file (never a newline) */
    size_t at = n / 2;
    if (s[at] == '\n') at++;
    s[at] = s[at] == 'a' ? 'b' : 'a';
    snprintf(tampered, sizeof tampered, "%s/tampered.log", tmpdir);
    FILE *f = fopen(tampered, "wb");
    fwrite(s, 1, n, f);
    fclose(f);
    free(s);
    EXPECT(kvh_log_verify(tampered, &vo, &ok, &recs, report, sizeof report, &rlen), KVH_OK);
    CHECK(ok == 0 && strstr(report, "\"failures\"") && strstr(report, "\"line\""),
          "tampered log: ok=%d report=%.200s", ok, report);
  }
  char missing[512];
  path_in(missing, sizeof missing, "missing.log");
  EXPECT_MSG(kvh_log_verify(missing, NULL, &ok, &recs, NULL, 0, NULL), KVH_E_IO, "missing.log");
}

/* Forward-secure MAC through the ABI: a state file from `kvgate fs-keygen`, a tracer that
 * seals epochs, and kvh_log_verify with the verification key (and a verifier's clock). */
static int run_kvgate(const char *args) {
  const char *kvgate = getenv("KVH_KVGATE");
  if (!kvgate || !*kvgate) return -1;
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", kvgate, args);
  return system(cmd);
}

static int read_key_text(const char *path, char *out, size_t cap) {
  size_t n = 0;
  char *s = read_file(path, &n);
  if (!s) return 0;
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
  snprintf(out, cap, "%s", s);
  free(s);
  return n > 0 && n < cap;
}

static void test_forward_secure(void) {
  char state[512], vkp[512], state2[512], vkp2[512], logp[512], args[2048];
  char vk[512], vk2[512];
  path_in(state, sizeof state, "fs.state");
  path_in(vkp, sizeof vkp, "fs.vk");
  path_in(state2, sizeof state2, "fs2.state");
  path_in(vkp2, sizeof vkp2, "fs2.vk");
  path_in(logp, sizeof logp, "fs.log");
  snprintf(args, sizeof args, "fs-keygen --state '%s' --epoch 1s --verify-key-out '%s'", state, vkp);
  int rc = run_kvgate(args);
  CHECK(rc == 0, "kvgate fs-keygen (KVH_KVGATE=%s) -> %d", getenv("KVH_KVGATE"), rc);
  snprintf(args, sizeof args, "fs-keygen --state '%s' --epoch 1s --verify-key-out '%s'", state2, vkp2);
  CHECK(run_kvgate(args) == 0, "kvgate fs-keygen (second key)");
  if (!read_key_text(vkp, vk, sizeof vk) || !read_key_text(vkp2, vk2, sizeof vk2)) {
    CHECK(0, "verification keys not written");
    return;
  }

  kvh_config cfg;
  EXPECT(kvh_config_init(&cfg, sizeof cfg), KVH_OK);
  cfg.log_path = logp;
  cfg.fsync_policy = KVH_FSYNC_NONE;
  cfg.fs_state_path = state;
  cfg.hmac_key = (const uint8_t *)"k";
  cfg.hmac_key_len = 1;
  kvh_tracer *t = NULL;
  EXPECT_MSG(kvh_tracer_open(&cfg, &t), KVH_E_CONFIG, "exclusive");
  cfg.hmac_key = NULL;
  cfg.hmac_key_len = 0;
  char missing[512];
  path_in(missing, sizeof missing, "no-such.state");
  cfg.fs_state_path = missing;
  kvh_status st = kvh_tracer_open(&cfg, &t);
  CHECK(st != KVH_OK && strstr(kvh_last_error(), "no-such.state"), "missing state file -> %s: %s",
        kvh_status_str(st), kvh_last_error());
  cfg.fs_state_path = state;
  EXPECT(kvh_tracer_open(&cfg, &t), KVH_OK);
  if (!t) return;
  static unsigned char mem[4096];
  for (int i = 0; i < 3; i++) {
    memset(mem, 0x42, sizeof mem);
    kvh_alloc_desc d = desc_for((uint64_t)(uintptr_t)mem, sizeof mem, "tenantA");
    uint64_t h = 0;
    EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
    EXPECT(kvh_sanitize(t, h, NULL, NULL), KVH_OK);
    EXPECT(kvh_free(t, h), KVH_OK);
    if (i == 0) { /* cross an epoch boundary: the writer seals epoch 0 and evolves the key */
      struct timespec ts = {1, 300 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  EXPECT(kvh_tracer_close(t), KVH_OK);
  size_t n = 0;
  char *log = read_file(logp, &n);
  CHECK(log && strstr(log, "\"event_type\":\"seal\""), "the log holds a seal record");
  free(log);

  kvh_verify_opts vo;
  memset(&vo, 0, sizeof vo);
  vo.struct_size = sizeof vo;
  int32_t ok = -1;
  uint64_t recs = 0;
  char report[4096];
  vo.fs_verify_key = vk;
  vo.fs_now_unix = (int64_t)time(NULL);
  EXPECT(kvh_log_verify(logp, &vo, &ok, &recs, report, sizeof report, NULL), KVH_OK);
  CHECK(ok == 1 && recs >= 10, "FS log verifies with its key: ok=%d records=%llu %.300s", ok,
        (unsigned long long)recs, report);
  /* another key: every MAC fails */
  vo.fs_verify_key = vk2;
  EXPECT(kvh_log_verify(logp, &vo, &ok, &recs, report, sizeof report, NULL), KVH_OK);
  CHECK(ok == 0 && strstr(report, "fs_"), "another key does not verify: %.300s", report);
  /* a verifier an hour later: the epochs since the last record were never sealed (a log cut
   * back, or a writer that stopped) */
  vo.fs_verify_key = vk;
  vo.fs_now_unix = (int64_t)time(NULL) + 3600;
  EXPECT(kvh_log_verify(logp, &vo, &ok, &recs, report, sizeof report, NULL), KVH_OK);
  CHECK(ok == 0 && strstr(report, "fs_stale"), "unsealed epochs before now: %.300s", report);
  /* bad options */
  vo.fs_now_unix = -5;
  EXPECT_MSG(kvh_log_verify(logp, &vo, &ok, &recs, NULL, 0, NULL), KVH_E_INVALID_ARG, "fs_now_unix");
  vo.fs_now_unix = 0;
  vo.hmac_key = (const uint8_t *)"k";
  vo.hmac_key_len = 1;
  EXPECT_MSG(kvh_log_verify(logp, &vo, &ok, &recs, NULL, 0, NULL), KVH_E_INVALID_ARG, "exclusive");
  vo.hmac_key = NULL;
  vo.hmac_key_len = 0;
  vo.fs_verify_key = "kvh-fs1:nothex:0:1";
  st = kvh_log_verify(logp, &vo, &ok, &recs, NULL, 0, NULL);
  CHECK(st != KVH_OK && kvh_last_error()[0] != 0, "malformed verification key -> %s",
        kvh_status_str(st));
  vo.fs_verify_key = NULL;
  vo.fs_now_unix = 100;
  EXPECT_MSG(kvh_log_verify(logp, &vo, &ok, &recs, NULL, 0, NULL), KVH_E_INVALID_ARG, "fs_verify_key");
}

static void test_checkpoint(kvh_tracer *t) {
  /* no checkpoint_dir configured: refused with a message, not a crash */
  kvh_status st = kvh_checkpoint(t);
  CHECK(st != KVH_OK && kvh_last_error()[0] != 0, "checkpoint without checkpoint_dir -> %s",
        kvh_status_str(st));
}

/* ------------------------------------------------------------------------ */
/* processes                                                                 */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int wait_child(pid_t pid, double timeout_s, int *status) {
  double deadline = now_s() + timeout_s;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return 1;
    if (r < 0 && errno != EINTR) return 0;
    if (now_s() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, status, 0);
      return 0;
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

static void child_say(const char *what, kvh_status got) {
  char line[512];
  int n = snprintf(line, sizeof line, "fork child: %s -> %s (%s)\n", what, kvh_status_str(got),
                   kvh_last_error());
  if (n > 0) (void)!write(2, line, (size_t)n);
}

static void test_fork(kvh_tracer *t) {
  /* the parent's tracer is live, with Go runtime threads running */
  kvh_alloc_desc d = desc_for(0, 64, "tenantA");
  uint64_t h = 0;
  EXPECT(kvh_allocate(t, &d, &h), KVH_OK);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(5); /* a hang kills the child; the parent then reports it */
    double t0 = now_s();
    int bad = 0;
    kvh_config cfg;
    kvh_tracer *t2;
    double cov;
    kvh_status s;
#define CHILD(call)                                                  \
  s = (call);                                                        \
  if (s != KVH_E_FORKED || !strstr(kvh_last_error(), "fork")) {     \
    child_say(#call, s);                                             \
    bad++;                                                           \
  }
    CHILD(kvh_allocate(t, &d, &h));
    CHILD(kvh_sanitize(t, h, NULL, &cov));
    CHILD(kvh_free(t, h));
    CHILD(kvh_config_init(&cfg, sizeof cfg));
    CHILD(kvh_tracer_open(NULL, &t2));
    CHILD(kvh_metrics_json(t, NULL, 0, NULL));
    CHILD(kvh_log_flush(t));
    CHILD(kvh_tracer_close(t));
    CHILD(kvh_sanitize_opts_init(NULL, sizeof(kvh_sanitize_opts)));
    if (strcmp(kvh_status_str(KVH_E_FORKED), "KVH_E_FORKED") != 0 ||
        strcmp(kvh_version(), "1.0.0") != 0)
      bad++;
    if (now_s() - t0 > 1.0) {
      child_say("took longer than 1 s", KVH_OK);
      bad++;
    }
    _exit(bad ? 1 : 0);
  }
  CHECK(pid > 0, "fork failed");
  int status = 0;
  int done = wait_child(pid, 10.0, &status);
  CHECK(done, "fork child hung (killed after 10 s)");
  CHECK(done && WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "fork child failed (status %#x): kvh_* in a child must return KVH_E_FORKED at once", status);
  /* the parent is unaffected */
  EXPECT(kvh_sanitize(t, h, NULL, NULL), KVH_OK);
  EXPECT(kvh_free(t, h), KVH_OK);
}

/* runs in a separate process started with KVH_TEST_PANIC armed */
static int panic_child(void) {
  int bad = 0;
  double cov;
  kvh_config cfg;
  kvh_status s = kvh_attest_coverage(NULL, UINT64_MAX, &cov);
  if (s != KVH_E_INTERNAL || !strstr(kvh_last_error(), "panic")) {
    fprintf(stderr, "panic child: trigger -> %s (%s)\n", kvh_status_str(s), kvh_last_error());
    bad++;
  }
  s = kvh_attest_coverage(NULL, 1, &cov);
  if (s != KVH_E_POISONED || !strstr(kvh_last_error(), "poisoned")) {
    fprintf(stderr, "panic child: after panic -> %s (%s)\n", kvh_status_str(s), kvh_last_error());
    bad++;
  }
  if (kvh_config_init(&cfg, sizeof cfg) != KVH_E_POISONED) bad++;
  kvh_tracer *t;
  if (kvh_tracer_open(NULL, &t) != KVH_E_POISONED) bad++;
  if (strcmp(kvh_version(), "1.0.0") != 0) bad++;
  printf("panic child: alive after panic, %s\n", bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}

/* runs in a separate process: a bad caller pointer read by the library is a
 * recovered fault (KVH_E_INTERNAL, then KVH_E_POISONED), not a dead host */
static int fault_child(const char *dir) {
  snprintf(tmpdir, sizeof tmpdir, "%s", dir);
  kvh_tracer *t = open_tracer("fault.log", NULL);
  if (!t) return 1;
  void *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return 1;
  kvh_alloc_desc d = desc_for(0, 64, "tenantA");
  d.shape = (const int64_t *)page;
  d.shape_len = 2;
  uint64_t h;
  int bad = 0;
  kvh_status s;
  /* caller memory made inaccessible after kvh_allocate (small, and large enough to be split
   * across worker threads): an error for that buffer, which is quarantined; the library goes on */
  size_t sizes[2] = {4096, (size_t)32 << 20};
  for (int i = 0; i < 2; i++) {
    void *m = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 1;
    kvh_alloc_desc md = desc_for((uint64_t)(uintptr_t)m, sizes[i], "tenantA");
    uint64_t mh;
    if ((s = kvh_allocate(t, &md, &mh)) != KVH_OK) return 1;
    mprotect(m, sizes[i], PROT_NONE);
    s = kvh_sanitize(t, mh, NULL, NULL);
    if (s != KVH_E_INVALID_ARG || !strstr(kvh_last_error(), "not accessible")) {
      fprintf(stderr, "fault child: sanitize of protected memory (%zu) -> %s (%s)\n", sizes[i],
              kvh_status_str(s), kvh_last_error());
      bad++;
    }
    kvh_buffer_info bi;
    memset(&bi, 0, sizeof bi);
    bi.struct_size = sizeof bi;
    if ((s = kvh_buffer_info_get(t, mh, &bi)) != KVH_OK || bi.state != KVH_STATE_QUARANTINED) {
      fprintf(stderr, "fault child: after the fault -> %s, state %d\n", kvh_status_str(s), bi.state);
      bad++;
    }
    munmap(m, sizes[i]);
  }
  if ((s = kvh_log_flush(t)) != KVH_OK) {
    fprintf(stderr, "fault child: library unusable after a caller-memory fault -> %s\n", kvh_status_str(s));
    bad++;
  }
  /* a fault inside the ABI layer itself (a bad pointer in a descriptor) poisons the library */
  s = kvh_allocate(t, &d, &h);
  if (s != KVH_E_INTERNAL || !strstr(kvh_last_error(), "memory fault")) {
    fprintf(stderr, "fault child: bad shape pointer -> %s (%s)\n", kvh_status_str(s), kvh_last_error());
    bad++;
  }
  s = kvh_log_flush(t);
  if (s != KVH_E_POISONED) {
    fprintf(stderr, "fault child: after fault -> %s\n", kvh_status_str(s));
    bad++;
  }
  printf("fault child: alive after a fault, %s\n", bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}

static void spawn_and_check(char **argv, char **envp, const char *what) {
  pid_t pid;
  int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp);
  CHECK(rc == 0, "posix_spawn: %s", strerror(rc));
  if (rc != 0) return;
  int status = 0;
  int done = wait_child(pid, 60.0, &status);
  CHECK(done && WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "%s: status %#x (want a clean exit: caller-memory faults are errors, then KVH_E_INTERNAL and KVH_E_POISONED)", what,
        status);
}

static void test_panic(void) {
  char *fargv[] = {"test_capi", "--fault-child", tmpdir, NULL};
  spawn_and_check(fargv, environ, "fault child");
  char *argv[] = {"test_capi", "--panic-child", NULL};
  int envc = 0;
  while (environ[envc]) envc++;
  char **envp = calloc((size_t)envc + 2, sizeof *envp);
  for (int i = 0; i < envc; i++) envp[i] = environ[i];
  envp[envc] = "KVH_TEST_PANIC=poison-the-library-i-am-a-test";
  spawn_and_check(argv, envp, "panic child");
  free(envp);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--panic-child") == 0) return panic_child();
  if (argc > 2 && strcmp(argv[1], "--fault-child") == 0) return fault_child(argv[2]);
  setvbuf(stdout, NULL, _IOLBF, 0);

  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/kvh-ctest-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }

  test_version_and_status();
  test_config();
  test_open_close();

  kvh_tracer *t = open_tracer("main.log", NULL);
  kvh_tracer *other = open_tracer("other.log", "secret");
  CHECK(t && other, "open tracers");
  if (!t || !other) goto out;

  test_lifecycle_caller_memory(t);
  test_library_owned(t);
  test_sanitize_modes(t);
  test_sanitize_many(t);
  test_quarantine_and_policy(t);
  test_bad_handles(t, other);
  test_null_args(t);
  test_struct_size_and_ranges(t);
  test_bad_ids(t);
  test_pools(t);
  test_metrics(t);
  test_threads(t);
  test_checkpoint(t);
  test_close_race();
  test_forward_secure();
  test_fork(t);
  /* after all of the bad input above, both logs still verify */
  test_log_verify(t, "main.log", NULL, 200);
  test_log_verify(other, "other.log", "secret", 4);
  EXPECT(kvh_tracer_close(t), KVH_OK);
  EXPECT(kvh_tracer_close(other), KVH_OK);
  test_panic();

out:
  if (failed == 0) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  } else {
    fprintf(stderr, "test files kept in %s\n", tmpdir);
  }
  printf("C tests: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
