/* wrappers.c — the public kvh_* entry points that need the Go core. Each one
 * checks the fork and poison flags first, in C, so a forked child never enters
 * the Go runtime, then calls the Go implementation kvhgo_* (export_*.go).
 * The definitions are compiled against include/kvhygiene.h, so the compiler
 * checks that every signature matches the public header exactly.
 * kvh_tracer* values are opaque tokens, never addresses: they travel to Go
 * as integers (registry.go). */
#include "kvh_internal.h"
#include "_cgo_export.h"

#define KVHC_ENTER(fn)                                                                 \
  do {                                                                                 \
    if (__builtin_expect(__atomic_load_n(&kvhc_forked, __ATOMIC_RELAXED) |             \
                             __atomic_load_n(&kvhc_poisoned, __ATOMIC_RELAXED),        \
                         0))                                                           \
      return kvhc_refuse(fn);                                                          \
  } while (0)

#define KVHC_TOKEN(t) ((uint64_t)(uintptr_t)(t))

kvh_status kvh_sanitize_opts_init(kvh_sanitize_opts *opts, size_t struct_size) {
  KVHC_ENTER("kvh_sanitize_opts_init");
  if (opts == NULL) {
    kvhc_set_errorf("kvh_sanitize_opts_init: opts is NULL");
    return KVH_E_NULL_ARG;
  }
  if (struct_size != sizeof *opts) {
    kvhc_set_errorf("kvh_sanitize_opts_init: struct_size is %zu; this library knows %zu "
                    "(sizeof(kvh_sanitize_opts)); nothing written",
                    struct_size, sizeof *opts);
    return KVH_E_STRUCT_SIZE;
  }
  opts->struct_size = (uint32_t)sizeof *opts;
  opts->flags = 0;
  opts->verify = KVH_VERIFY_DEFAULT;
  opts->samples = 0;
  opts->stream = 0;
  return KVH_OK;
}

kvh_status kvh_config_init(kvh_config *config, size_t struct_size) {
  KVHC_ENTER("kvh_config_init");
  if (config != NULL && struct_size != sizeof *config) {
    kvhc_set_errorf("kvh_config_init: struct_size is %zu; this library knows %zu "
                    "(sizeof(kvh_config)); nothing written",
                    struct_size, sizeof *config);
    return KVH_E_STRUCT_SIZE;
  }
  return kvhgo_config_init(config);
}

kvh_status kvh_tracer_open(const kvh_config *config, kvh_tracer **out) {
  KVHC_ENTER("kvh_tracer_open");
  if (out == NULL) {
    kvhc_set_errorf("kvh_tracer_open: out is NULL");
    return KVH_E_NULL_ARG;
  }
  uint64_t token = 0;
  kvh_status st = kvhgo_tracer_open((kvh_config *)config, &token);
  if (st == KVH_OK) *out = (kvh_tracer *)(uintptr_t)token;
  return st;
}

kvh_status kvh_tracer_close(kvh_tracer *tracer) {
  KVHC_ENTER("kvh_tracer_close");
  return kvhgo_tracer_close(KVHC_TOKEN(tracer));
}

kvh_status kvh_allocate(kvh_tracer *tracer, const kvh_alloc_desc *desc, uint64_t *out_handle) {
  KVHC_ENTER("kvh_allocate");
  return kvhgo_allocate(KVHC_TOKEN(tracer), (kvh_alloc_desc *)desc, out_handle);
}

kvh_status kvh_bind(kvh_tracer *tracer, uint64_t handle, const char *tenant_id,
                    const char *stream_id) {
  KVHC_ENTER("kvh_bind");
  return kvhgo_bind(KVHC_TOKEN(tracer), handle, (char *)tenant_id, (char *)stream_id);
}

kvh_status kvh_mark_in_use(kvh_tracer *tracer, uint64_t handle, const char *tenant_id) {
  KVHC_ENTER("kvh_mark_in_use");
  return kvhgo_mark_in_use(KVHC_TOKEN(tracer), handle, (char *)tenant_id);
}

kvh_status kvh_mark_reuse(kvh_tracer *tracer, uint64_t handle, const char *tenant_id) {
  KVHC_ENTER("kvh_mark_reuse");
  return kvhgo_mark_reuse(KVHC_TOKEN(tracer), handle, (char *)tenant_id);
}

kvh_status kvh_sanitize(kvh_tracer *tracer, uint64_t handle, const kvh_sanitize_opts *opts,
                        double *out_coverage) {
  KVHC_ENTER("kvh_sanitize");
  return kvhgo_sanitize(KVHC_TOKEN(tracer), handle, (kvh_sanitize_opts *)opts, out_coverage);
}

kvh_status kvh_sanitize_many(kvh_tracer *tracer, const uint64_t *handles, size_t n,
                             const kvh_sanitize_opts *opts, double *out_coverages) {
  KVHC_ENTER("kvh_sanitize_many");
  return kvhgo_sanitize_many(KVHC_TOKEN(tracer), (uint64_t *)handles, n,
                             (kvh_sanitize_opts *)opts, out_coverages);
}

kvh_status kvh_wait(kvh_tracer *tracer, uint64_t handle, double *out_coverage) {
  KVHC_ENTER("kvh_wait");
  return kvhgo_wait(KVHC_TOKEN(tracer), handle, out_coverage);
}

kvh_status kvh_attest_coverage(kvh_tracer *tracer, uint64_t handle, double *out_coverage) {
  KVHC_ENTER("kvh_attest_coverage");
  return kvhgo_attest_coverage(KVHC_TOKEN(tracer), handle, out_coverage);
}

kvh_status kvh_quarantine(kvh_tracer *tracer, uint64_t handle, const char *reason) {
  KVHC_ENTER("kvh_quarantine");
  return kvhgo_quarantine(KVHC_TOKEN(tracer), handle, (char *)reason);
}

kvh_status kvh_release_quarantine(kvh_tracer *tracer, uint64_t handle, const char *reason) {
  KVHC_ENTER("kvh_release_quarantine");
  return kvhgo_release_quarantine(KVHC_TOKEN(tracer), handle, (char *)reason);
}

kvh_status kvh_free(kvh_tracer *tracer, uint64_t handle) {
  KVHC_ENTER("kvh_free");
  return kvhgo_free(KVHC_TOKEN(tracer), handle);
}

kvh_status kvh_buffer_info_get(kvh_tracer *tracer, uint64_t handle, kvh_buffer_info *out) {
  KVHC_ENTER("kvh_buffer_info_get");
  return kvhgo_buffer_info_get(KVHC_TOKEN(tracer), handle, out);
}

kvh_status kvh_pool_register(kvh_tracer *tracer, const kvh_pool_desc *desc, uint64_t *out_pool) {
  KVHC_ENTER("kvh_pool_register");
  return kvhgo_pool_register(KVHC_TOKEN(tracer), (kvh_pool_desc *)desc, out_pool);
}

kvh_status kvh_pool_assign(kvh_tracer *tracer, uint64_t pool, const uint32_t *blocks, size_t n,
                           const char *tenant_id, const char *request_id) {
  KVHC_ENTER("kvh_pool_assign");
  return kvhgo_pool_assign(KVHC_TOKEN(tracer), pool, (uint32_t *)blocks, n, (char *)tenant_id,
                           (char *)request_id);
}

kvh_status kvh_pool_release(kvh_tracer *tracer, uint64_t pool, const uint32_t *blocks, size_t n,
                            uint32_t flags, double *out_coverage) {
  KVHC_ENTER("kvh_pool_release");
  return kvhgo_pool_release(KVHC_TOKEN(tracer), pool, (uint32_t *)blocks, n, flags,
                            out_coverage);
}

kvh_status kvh_pool_release_quarantine(kvh_tracer *tracer, uint64_t pool, const uint32_t *blocks,
                                       size_t n, const char *reason, double *out_coverage) {
  KVHC_ENTER("kvh_pool_release_quarantine");
  return kvhgo_pool_release_quarantine(KVHC_TOKEN(tracer), pool, (uint32_t *)blocks, n,
                                       (char *)reason, out_coverage);
}

kvh_status kvh_pool_sync(kvh_tracer *tracer, uint64_t pool, double *out_min_coverage) {
  KVHC_ENTER("kvh_pool_sync");
  return kvhgo_pool_sync(KVHC_TOKEN(tracer), pool, out_min_coverage);
}

kvh_status kvh_pool_unregister(kvh_tracer *tracer, uint64_t pool, int32_t force) {
  KVHC_ENTER("kvh_pool_unregister");
  return kvhgo_pool_unregister(KVHC_TOKEN(tracer), pool, force);
}

kvh_status kvh_metrics_json(kvh_tracer *tracer, char *buf, size_t cap, size_t *out_len) {
  KVHC_ENTER("kvh_metrics_json");
  return kvhgo_metrics_json(KVHC_TOKEN(tracer), buf, cap, out_len);
}

kvh_status kvh_export_metrics(kvh_tracer *tracer, const char *path) {
  KVHC_ENTER("kvh_export_metrics");
  return kvhgo_export_metrics(KVHC_TOKEN(tracer), (char *)path);
}

kvh_status kvh_export_prometheus(kvh_tracer *tracer, const char *path) {
  KVHC_ENTER("kvh_export_prometheus");
  return kvhgo_export_prometheus(KVHC_TOKEN(tracer), (char *)path);
}

kvh_status kvh_metrics_serve(kvh_tracer *tracer, const char *addr, char *bound_addr, size_t cap) {
  KVHC_ENTER("kvh_metrics_serve");
  return kvhgo_metrics_serve(KVHC_TOKEN(tracer), (char *)addr, bound_addr, cap);
}

kvh_status kvh_metrics_stop(kvh_tracer *tracer) {
  KVHC_ENTER("kvh_metrics_stop");
  return kvhgo_metrics_stop(KVHC_TOKEN(tracer));
}

kvh_status kvh_log_verify(const char *path, const kvh_verify_opts *opts, int32_t *out_ok,
                          uint64_t *out_records, char *report, size_t cap,
                          size_t *out_report_len) {
  KVHC_ENTER("kvh_log_verify");
  return kvhgo_log_verify((char *)path, (kvh_verify_opts *)opts, out_ok, out_records, report,
                          cap, out_report_len);
}

kvh_status kvh_checkpoint(kvh_tracer *tracer) {
  KVHC_ENTER("kvh_checkpoint");
  return kvhgo_checkpoint(KVHC_TOKEN(tracer));
}

kvh_status kvh_log_flush(kvh_tracer *tracer) {
  KVHC_ENTER("kvh_log_flush");
  return kvhgo_log_flush(KVHC_TOKEN(tracer));
}
