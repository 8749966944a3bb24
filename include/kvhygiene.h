/*
 * kvhygiene.h — the public C ABI of libkvhygiene.
 *
 * kvhygiene tags KV-cache regions per tenant/request, zeroizes them on release
 * (AVX2/AVX-512 on host memory, stream-ordered CUDA work on device memory),
 * proves the zeroization, quarantines what is not proven, enforces TTL / reuse
 * / tenant-binding policy, and records every event in a tamper-evident
 * forensic chain.
 *
 * CONVENTIONS
 *   - Every function returns kvh_status (KVH_OK == 0). Results are returned
 *     through out-parameters, which are written only on KVH_OK unless stated.
 *   - kvh_last_error() gives a message for the last failing call *on the
 *     calling thread*. kvh_status_str() names a status. Neither returns NULL.
 *   - Handles (buffers, pools) are uint64_t. 0 is never valid. A handle
 *     carries a generation, so a stale handle is reported (KVH_E_FREED or
 *     KVH_E_UNKNOWN_HANDLE) and never reaches a newer buffer.
 *   - Public structs begin with `uint32_t struct_size`; set it to
 *     sizeof(the struct) (the *_init helpers do so). A size the library does
 *     not know is refused with KVH_E_STRUCT_SIZE.
 *   - Strings are NUL-terminated UTF-8. Identifier strings (tenant, request,
 *     model, reason, ...) must be valid UTF-8, at most KVH_MAX_ID_LEN bytes,
 *     and contain no control characters (NUL, newline, ...) or '"'.
 *     Violations are KVH_E_INVALID_ID.
 *   - Numeric values of statuses, enums and flags never change once released.
 *
 * OWNERSHIP
 *   Unless a function says otherwise, every pointer argument is borrowed for
 *   the duration of the call only: the library copies what it keeps and never
 *   retains a caller pointer after return. Memory regions passed by address
 *   (kvh_alloc_desc.ptr, pool bases) are the caller's; the library writes
 *   zeros into them on sanitize/release and never frees them. Library-owned
 *   memory (ptr == 0 on CPU) belongs to the library until kvh_free.
 *
 * THREADS AND PROCESSES
 *   - All functions are thread-safe and may be called concurrently from any
 *     number of host threads, on the same or different tracers.
 *   - The library contains a Go runtime. Only one copy may be loaded into a
 *     process; never dlclose() it (the runtime cannot be unloaded).
 *   - Do not use the library after fork(): in the child, every function
 *     returns KVH_E_FORKED immediately without touching the runtime (a
 *     pthread_atfork handler sets this). Use exec or a spawn start method.
 *   - If the library ever panics internally, the call returns KVH_E_INTERNAL
 *     and the library is poisoned: every later call returns KVH_E_POISONED.
 *     The host process keeps running.
 *   - The library loads with dlopen(RTLD_NOW) on machines with no NVIDIA
 *     driver; libcuda / libnvidia-ml are opened with dlopen only when a CUDA
 *     buffer or pool is first used.
 */
#ifndef KVHYGIENE_H
#define KVHYGIENE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVH_VERSION_MAJOR 1
#define KVH_VERSION_MINOR 0
#define KVH_VERSION_PATCH 0
#define KVH_VERSION_NUMBER \
  (KVH_VERSION_MAJOR * 10000 + KVH_VERSION_MINOR * 100 + KVH_VERSION_PATCH)

#if defined(__GNUC__) || defined(__clang__)
#define KVH_API __attribute__((visibility("default")))
#else
#define KVH_API
#endif

/* Maximum length in bytes of an identifier string (tenant, request, ...). */
#define KVH_MAX_ID_LEN 256

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

typedef int32_t kvh_status;

enum {
  KVH_OK = 0,
  KVH_E_INVALID_ARG = 1,     /* an argument is out of range or inconsistent */
  KVH_E_NULL_ARG = 2,        /* a required pointer argument is NULL */
  KVH_E_STRUCT_SIZE = 3,     /* struct_size is not one the library knows */
  KVH_E_INVALID_ID = 4,      /* identifier not UTF-8, too long, or has NUL/control/quote */
  KVH_E_UNKNOWN_HANDLE = 5,  /* handle 0, never issued, or from another tracer */
  KVH_E_FREED = 6,           /* handle was freed (or is stale); nothing is logged */
  KVH_E_STATE = 7,           /* operation not allowed in the buffer's current state */
  KVH_E_COVERAGE = 8,        /* free refused: attested coverage below threshold; quarantined */
  KVH_E_QUARANTINED = 9,     /* buffer/block is quarantined */
  KVH_E_ISOLATION = 10,      /* tenant mismatch; buffer/block quarantined, violation logged */
  KVH_E_POLICY = 11,         /* TTL expired or reuse limit exceeded; quarantined */
  KVH_E_VERIFY = 12,         /* verification found non-zero bytes after zeroization */
  KVH_E_PENDING = 13,        /* async sanitize not yet waited for */
  KVH_E_UNSUPPORTED = 14,    /* e.g. no CUDA driver, kernel not available on this CPU */
  KVH_E_DEVICE = 15,         /* device/driver call failed (CUDA error name in message) */
  KVH_E_NOMEM = 16,          /* out of host or device memory */
  KVH_E_IO = 17,             /* file system error (log, metrics export) */
  KVH_E_LOG = 18,            /* forensic log unusable (locked by another writer, fsync failed, ...) */
  KVH_E_BUFFER_TOO_SMALL = 19, /* caller buffer too small; required size is returned */
  KVH_E_CLOSED = 20,         /* tracer already closed */
  KVH_E_FORKED = 21,         /* called in a child process after fork() */
  KVH_E_POISONED = 22,       /* an earlier internal panic poisoned the library */
  KVH_E_INTERNAL = 23,       /* internal error (a panic was recovered) */
  KVH_E_CONFIG = 24,         /* malformed configuration or environment variable */
  KVH_E_BUSY = 25            /* resource in use (e.g. metrics server already running) */
};

/* Name of a status ("KVH_E_FREED"); unknown values give "KVH_E_UNKNOWN".
 * Returns a static string; never NULL. */
KVH_API const char *kvh_status_str(kvh_status status);

/* Message describing the last failing call on the calling thread ("" if none).
 * The string is owned by the library and valid until the next kvh_* call on
 * the same thread. Never NULL. */
KVH_API const char *kvh_last_error(void);

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

/* "MAJOR.MINOR.PATCH" of the loaded library. Static string. */
KVH_API const char *kvh_version(void);
/* MAJOR*10000 + MINOR*100 + PATCH of the loaded library. Compare the major
 * part with KVH_VERSION_MAJOR; bindings refuse a different major. */
KVH_API uint32_t kvh_version_number(void);

/* ------------------------------------------------------------------------ */
/* Enumerations and flags                                                    */
/* ------------------------------------------------------------------------ */

typedef enum kvh_device {
  KVH_DEVICE_CPU = 0,
  KVH_DEVICE_CUDA = 1
} kvh_device;

typedef enum kvh_state {
  KVH_STATE_ALLOCATED = 0,
  KVH_STATE_BOUND = 1,
  KVH_STATE_IN_USE = 2,
  KVH_STATE_SANITIZING = 3,
  KVH_STATE_SANITIZED = 4,
  KVH_STATE_FREED = 5,
  KVH_STATE_QUARANTINED = 6
} kvh_state;

typedef enum kvh_verify_mode {
  KVH_VERIFY_DEFAULT = 0, /* the tracer's default (config.verify_default) */
  KVH_VERIFY_NONE = 1,    /* no read-back; coverage is not attested (0 %) */
  KVH_VERIFY_SAMPLED = 2, /* unpredictable sampled positions (config.verify_samples_default) */
  KVH_VERIFY_FULL = 3     /* every byte is read back */
} kvh_verify_mode;

typedef enum kvh_ttl_mode {
  KVH_TTL_FROM_ALLOC = 0,    /* TTL measured from allocation (the seed's behaviour) */
  KVH_TTL_FROM_LAST_USE = 1  /* TTL measured from the last mark_in_use / mark_reuse */
} kvh_ttl_mode;

typedef enum kvh_fsync_policy {
  KVH_FSYNC_INTERVAL = 0, /* group commit, fsync every fsync_interval_ms (default 10) */
  KVH_FSYNC_NONE = 1,     /* leave flushing to the OS */
  KVH_FSYNC_ALWAYS = 2    /* fsync before an append is acknowledged */
} kvh_fsync_policy;

/* kvh_sanitize_opts.flags */
#define KVH_SANITIZE_ASYNC 0x1u       /* return at once; complete with kvh_wait */
#define KVH_SANITIZE_DOUBLE_PASS 0x2u /* zeroize twice */
#define KVH_SANITIZE_NO_DOUBLE_PASS 0x4u /* override a double-pass default */
#define KVH_SANITIZE_USE_STREAM 0x8u  /* use opts.stream instead of the buffer's stream */

/* kvh_pool_release flags */
#define KVH_RELEASE_ASYNC 0x1u /* device pools: do not wait; kvh_pool_sync completes */

/* kvh_verify_opts.flags */
#define KVH_LOGVERIFY_ALL 0x1u /* verify every rotated file and the links between them */

/* ------------------------------------------------------------------------ */
/* Tracer lifecycle                                                          */
/* ------------------------------------------------------------------------ */

typedef struct kvh_tracer kvh_tracer; /* opaque */

typedef struct kvh_config {
  uint32_t struct_size;           /* sizeof(kvh_config) */
  const char *log_path;           /* forensic log; default "forensics/kv_cache.log" */
  const uint8_t *hmac_key;        /* HMAC-SHA256 key; NULL = FORENSIC_HMAC_SECRET or none */
  size_t hmac_key_len;
  const char *hmac_key_id;        /* "kid" written in every record; default derived from key */
  double coverage_threshold;      /* percent; default 99.9 (KV_COVERAGE_THRESHOLD) */
  uint64_t max_log_bytes;         /* rotate above this size; default 5000000 */
  int32_t double_pass_default;    /* 0/1; default 0 (KV_DOUBLE_PASS_DEFAULT) */
  int32_t verify_samples_default; /* sampled verification positions; default 8 (KV_VERIFY_SAMPLES_DEFAULT) */
  int32_t verify_default;         /* kvh_verify_mode used for KVH_VERIFY_DEFAULT; default FULL */
  int64_t default_max_reuse;      /* <0 unlimited, 0 first reuse violates; default 0 (KV_DEFAULT_MAX_REUSE) */
  double default_ttl_sec;         /* used when has_default_ttl; (KV_DEFAULT_TTL_SEC) */
  int32_t has_default_ttl;        /* 0 = no TTL unless given per buffer */
  int32_t ttl_mode;               /* kvh_ttl_mode */
  uint32_t sweep_interval_ms;     /* TTL sweeper period; default 1000; 0 disables the sweeper */
  int32_t fsync_policy;           /* kvh_fsync_policy; default INTERVAL */
  uint32_t fsync_interval_ms;     /* default 10 */
  const char *checkpoint_dir;     /* signed checkpoints go here; NULL = none */
  const char *checkpoint_key_path;/* note signer key file (kvgate keygen); required with checkpoint_dir */
  uint32_t checkpoint_every_records; /* default 10000 */
  uint32_t checkpoint_every_ms;   /* default 60000 */
  int32_t metrics_tenant_labels;  /* 0/1: add tenant labels to metrics (cardinality risk); default 0 */
  /* Retention of rotated log files, done by the tracer itself: it holds the log's lock, so
   * `kvgate verify` cannot prune while it runs. Every pruning first writes a "prune" record
   * naming the removed files, their last hashes and seq ranges. */
  int32_t retention;              /* 0/1: prune rotated files (checked every second); default 0 */
  double retention_days;          /* with retention: remove rotated files older than this; 0 = no age limit */
  int32_t max_rotated;            /* with retention: keep at most this many rotated files; -1 = no limit, 0 = none */
  const char *archive_dir;        /* with retention: move pruned files here (never overwriting); NULL = delete */
  /* Forward-secure MAC (see `kvgate fs-keygen`): the sealing-key state file. When set, each
   * record's hmac uses the current epoch key, which evolves every epoch (the old one is
   * overwritten), and every epoch is sealed, even an empty one. Exclusive with hmac_key. */
  const char *fs_state_path;      /* NULL = off */
} kvh_config;

/* Fill *config with defaults, reading the seed's environment variables
 * (KV_COVERAGE_THRESHOLD, KV_DOUBLE_PASS_DEFAULT, KV_VERIFY_SAMPLES_DEFAULT,
 * KV_DEFAULT_MAX_REUSE, KV_DEFAULT_TTL_SEC, FORENSIC_HMAC_SECRET) as the
 * defaults. Fields set by the caller afterwards win. A malformed environment
 * value is KVH_E_CONFIG with a message naming the variable.
 * struct_size: pass sizeof(kvh_config) as the caller compiled it. A size this
 * library does not know is KVH_E_STRUCT_SIZE and nothing is written, so a
 * caller built against another header never has its struct overrun.
 * config: caller-owned, written. String fields point to static or
 * process-environment storage valid while the environment is unchanged. */
KVH_API kvh_status kvh_config_init(kvh_config *config, size_t struct_size);

/* Open a tracer. config may be NULL (defaults as kvh_config_init). The
 * forensic log is opened (and locked) here: a second writer on the same log
 * gets KVH_E_LOG. *out is owned by the caller until kvh_tracer_close. */
KVH_API kvh_status kvh_tracer_open(const kvh_config *config, kvh_tracer **out);

/* Close a tracer: stops the sweeper and metrics server, flushes and fsyncs
 * the log, writes a checkpoint when configured, and unmaps library-owned
 * memory (zeroizing it first). Live buffers are left as recorded. tracer is
 * invalid afterwards; closing NULL is KVH_E_NULL_ARG. */
KVH_API kvh_status kvh_tracer_close(kvh_tracer *tracer);

/* ------------------------------------------------------------------------ */
/* Buffers                                                                   */
/* ------------------------------------------------------------------------ */

/* kvh_alloc_desc.flags */
#define KVH_ALLOC_HAS_TTL 0x1u       /* ttl_sec is set (else the default applies) */
#define KVH_ALLOC_HAS_MAX_REUSE 0x2u /* max_reuse is set (else the default applies) */
#define KVH_ALLOC_PINNED 0x4u        /* recorded as "pinned": true */

typedef struct kvh_alloc_desc {
  uint32_t struct_size;   /* sizeof(kvh_alloc_desc) */
  uint32_t flags;         /* KVH_ALLOC_* */
  uint64_t ptr;           /* caller region; 0 on CPU = library-owned hygienic memory */
  uint64_t nbytes;        /* size of the region; ptr + nbytes must not overflow */
  int32_t device;         /* kvh_device */
  int32_t device_ordinal; /* CUDA device ordinal; 0 on CPU */
  uint64_t stream;        /* CUstream (as integer) for device work; 0 = legacy default stream */
  const char *tenant_id;  /* required */
  const char *request_id; /* required */
  const char *model_id;   /* required */
  const char *framework;  /* optional, e.g. "torch"; NULL = none */
  const char *dtype;      /* optional, recorded; NULL = "uint8" */
  const int64_t *shape;   /* optional, recorded; NULL = [nbytes] */
  size_t shape_len;
  double ttl_sec;         /* with KVH_ALLOC_HAS_TTL; <= 0 violates on first use */
  int64_t max_reuse;      /* with KVH_ALLOC_HAS_MAX_REUSE; <0 unlimited */
  const char *stream_id;  /* optional label recorded as the seed's "stream_id"; NULL = null */
} kvh_alloc_desc;

/* Tag a region (or allocate library-owned memory) and log "allocate".
 * Library-owned CPU memory is mmap'ed with guard pages, MADV_DONTDUMP and
 * mlock where RLIMIT_MEMLOCK allows (else logged with the reason); its
 * address is available through kvh_buffer_info_get. CUDA ranges are validated
 * with cuPointerGetAttributes before they are accepted.
 * desc: borrowed. *out_handle: written on success. */
KVH_API kvh_status kvh_allocate(kvh_tracer *tracer, const kvh_alloc_desc *desc,
                                uint64_t *out_handle);

/* allocated -> bound. tenant_id may be NULL; if given and not the owner,
 * KVH_E_ISOLATION (buffer quarantined, "isolation_violation" logged).
 * stream_id: optional label recorded as the seed's "stream_id" (NULL = null). */
KVH_API kvh_status kvh_bind(kvh_tracer *tracer, uint64_t handle, const char *tenant_id,
                            const char *stream_id);

/* -> in_use; logs "write". TTL is checked: an expired buffer is quarantined
 * and KVH_E_POLICY returned. tenant_id: as kvh_bind. */
KVH_API kvh_status kvh_mark_in_use(kvh_tracer *tracer, uint64_t handle, const char *tenant_id);

/* Count a reuse and log "reuse"; exceeding max_reuse quarantines and returns
 * KVH_E_POLICY. tenant_id: as kvh_bind. */
KVH_API kvh_status kvh_mark_reuse(kvh_tracer *tracer, uint64_t handle, const char *tenant_id);

typedef struct kvh_sanitize_opts {
  uint32_t struct_size; /* sizeof(kvh_sanitize_opts) */
  uint32_t flags;       /* KVH_SANITIZE_* */
  int32_t verify;       /* kvh_verify_mode */
  uint32_t samples;     /* sampled positions; 0 = config default */
  uint64_t stream;      /* with KVH_SANITIZE_USE_STREAM */
} kvh_sanitize_opts;

/* Fill *opts with defaults (synchronous, verify default). struct_size:
 * sizeof(kvh_sanitize_opts) as the caller compiled it; another size is
 * KVH_E_STRUCT_SIZE and nothing is written. */
KVH_API kvh_status kvh_sanitize_opts_init(kvh_sanitize_opts *opts, size_t struct_size);

/* Zeroize the region, verify it and attest coverage (percent) in
 * *out_coverage (may be NULL). Logs sanitize_start / sanitize_end. With
 * KVH_SANITIZE_ASYNC the work is enqueued on the stream, *out_coverage is 0
 * and kvh_wait completes it. Allowed from allocated, bound, in_use,
 * sanitized and quarantined (a passing sanitize of a quarantined buffer
 * makes it eligible for kvh_release_quarantine but it stays quarantined).
 * opts may be NULL (defaults). A verification failure returns KVH_E_VERIFY
 * and quarantines the buffer. Host memory that is no longer accessible
 * (unmapped or protected after kvh_allocate) is KVH_E_INVALID_ARG and the
 * buffer is quarantined; the memory fault does not poison the library. */
KVH_API kvh_status kvh_sanitize(kvh_tracer *tracer, uint64_t handle,
                                const kvh_sanitize_opts *opts, double *out_coverage);

/* Sanitize many buffers in one call and one pass over the work (one device
 * launch per device). out_coverages: NULL or an array of n doubles. Returns
 * the first failure; every buffer is still attempted and logged. */
KVH_API kvh_status kvh_sanitize_many(kvh_tracer *tracer, const uint64_t *handles, size_t n,
                                     const kvh_sanitize_opts *opts, double *out_coverages);

/* Complete an async sanitize: synchronize on its event, read the verify
 * result, attest coverage, log sanitize_end. On a buffer without pending
 * work, returns its attested coverage. */
KVH_API kvh_status kvh_wait(kvh_tracer *tracer, uint64_t handle, double *out_coverage);

/* Last attested coverage in percent (0 if never sanitized). */
KVH_API kvh_status kvh_attest_coverage(kvh_tracer *tracer, uint64_t handle,
                                       double *out_coverage);

/* Quarantine (sticky) and log "quarantine" with the reason (required). */
KVH_API kvh_status kvh_quarantine(kvh_tracer *tracer, uint64_t handle, const char *reason);

/* Leave quarantine. Requires a sanitize with passing verification after the
 * quarantine (else KVH_E_STATE). Logs "release_quarantine" with the reason. */
KVH_API kvh_status kvh_release_quarantine(kvh_tracer *tracer, uint64_t handle,
                                          const char *reason);

/* Free: only from sanitized with coverage >= threshold; otherwise the buffer
 * is quarantined and KVH_E_COVERAGE (or KVH_E_QUARANTINED / KVH_E_PENDING)
 * returned. Library-owned memory is zeroized, verified and unmapped. A
 * second free returns KVH_E_FREED and logs nothing. */
KVH_API kvh_status kvh_free(kvh_tracer *tracer, uint64_t handle);

typedef struct kvh_buffer_info {
  uint32_t struct_size; /* sizeof(kvh_buffer_info), set by the caller */
  int32_t state;        /* kvh_state */
  uint64_t ptr;         /* region address (library-owned memory: valid until kvh_free) */
  uint64_t nbytes;
  int32_t device;
  int32_t device_ordinal;
  uint64_t stream;
  double coverage_pct;
  int64_t reuse_count;
  int64_t max_reuse;
  int32_t library_owned; /* 1 if ptr was allocated by the library */
  int32_t locked;        /* 1 if library-owned memory is mlock'ed */
  char tenant_id[KVH_MAX_ID_LEN + 1];
  char request_id[KVH_MAX_ID_LEN + 1];
  char model_id[KVH_MAX_ID_LEN + 1];
} kvh_buffer_info;

/* Describe a buffer. out: caller-owned, struct_size set by the caller.
 * (DESIGN.md's table calls this kvh_buffer_info; in C a function cannot share
 * the name of the kvh_buffer_info type, hence the _get.) */
KVH_API kvh_status kvh_buffer_info_get(kvh_tracer *tracer, uint64_t handle,
                                       kvh_buffer_info *out);

/* ------------------------------------------------------------------------ */
/* Paged pools                                                               */
/* ------------------------------------------------------------------------ */

/* One region-per-block entry: block b is [base + b*block_stride, + block_bytes). */
typedef struct kvh_pool_region {
  uint64_t base;
  uint64_t block_stride;
  uint64_t block_bytes;
} kvh_pool_region;

typedef struct kvh_pool_desc {
  uint32_t struct_size;  /* sizeof(kvh_pool_desc) */
  int32_t device;        /* kvh_device */
  int32_t device_ordinal;
  uint32_t num_blocks;
  uint64_t stream;       /* CUstream for device pools; 0 = legacy default stream */
  const kvh_pool_region *regions; /* borrowed; copied */
  size_t num_regions;
  const char *model_id;  /* required */
  const char *name;      /* optional label recorded in the log */
  int32_t verify;        /* kvh_verify_mode for releases */
} kvh_pool_desc;

/* Register a paged KV layout. Regions must not overlap; for CUDA every block
 * must lie inside one allocation (checked with cuPointerGetAttributes).
 * Blocks start free and clean. *out_pool: pool handle. */
KVH_API kvh_status kvh_pool_register(kvh_tracer *tracer, const kvh_pool_desc *desc,
                                     uint64_t *out_pool);

/* Assign blocks to tenant/request; logs one "pool_assign". A block last
 * owned by another tenant and not sanitized since is refused:
 * KVH_E_ISOLATION, the block is quarantined, "isolation_violation" logged.
 * All-or-nothing: on error no block is assigned. blocks: borrowed, n ids. */
KVH_API kvh_status kvh_pool_assign(kvh_tracer *tracer, uint64_t pool, const uint32_t *blocks,
                                   size_t n, const char *tenant_id, const char *request_id);

/* Zeroize every region of every listed block in one pass (one kernel launch
 * on CUDA), verify, and log one "pool_release" record listing the block ids
 * and the coverage. *out_coverage (may be NULL): coverage in percent.
 * Blocks failing verification are quarantined (KVH_E_VERIFY). With
 * KVH_RELEASE_ASYNC on a device pool the call returns after enqueueing;
 * kvh_pool_sync (or the next assign of those blocks) completes it. A host
 * region that is no longer accessible is KVH_E_INVALID_ARG and every listed
 * block is quarantined. */
KVH_API kvh_status kvh_pool_release(kvh_tracer *tracer, uint64_t pool, const uint32_t *blocks,
                                    size_t n, uint32_t flags, double *out_coverage);

/* Complete all async releases of the pool; *out_min_coverage (may be NULL)
 * is the lowest coverage among them (100 if none). */
KVH_API kvh_status kvh_pool_sync(kvh_tracer *tracer, uint64_t pool, double *out_min_coverage);

/* Return quarantined blocks to service: zeroize every region of every
 * listed block and verify every byte (whatever the pool's verify mode); the
 * blocks that read back zero become free and one "release_quarantine" record
 * names them with the reason (required), after the scrub's "pool_release".
 * Blocks failing verification stay quarantined: KVH_E_VERIFY. A block that
 * is not quarantined is KVH_E_STATE and nothing is done. A device pool's
 * scrub is waited for. *out_coverage (may be NULL): coverage in percent, on
 * success. blocks: borrowed, n ids. */
KVH_API kvh_status kvh_pool_release_quarantine(kvh_tracer *tracer, uint64_t pool,
                                               const uint32_t *blocks, size_t n,
                                               const char *reason, double *out_coverage);

/* Unregister the pool. Blocks still assigned or quarantined (both may hold a
 * tenant's data) make it fail with KVH_E_STATE unless force is non-zero, in
 * which case they are zeroized and verified first (one "pool_release"). */
KVH_API kvh_status kvh_pool_unregister(kvh_tracer *tracer, uint64_t pool, int32_t force);

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */
/* ------------------------------------------------------------------------ */

/* Write the seed-compatible metrics JSON into buf (NUL-terminated).
 * *out_len (may be NULL) receives the length without the NUL; if cap is too
 * small, KVH_E_BUFFER_TOO_SMALL and *out_len is the size needed. buf may be
 * NULL with cap 0 to query the size. */
KVH_API kvh_status kvh_metrics_json(kvh_tracer *tracer, char *buf, size_t cap, size_t *out_len);

/* Write metrics JSON / Prometheus text format to path atomically (temp file
 * in the same directory, fsync, rename). */
KVH_API kvh_status kvh_export_metrics(kvh_tracer *tracer, const char *path);
KVH_API kvh_status kvh_export_prometheus(kvh_tracer *tracer, const char *path);

/* Serve /metrics (Prometheus) over HTTP from inside the process. addr
 * "host:port"; NULL or ":port" binds 127.0.0.1. The bound address (useful
 * with port 0) is written to bound_addr (cap bytes, may be NULL). One server
 * per tracer: a second call is KVH_E_BUSY. */
KVH_API kvh_status kvh_metrics_serve(kvh_tracer *tracer, const char *addr, char *bound_addr,
                                     size_t cap);
KVH_API kvh_status kvh_metrics_stop(kvh_tracer *tracer);

/* ------------------------------------------------------------------------ */
/* Forensic log                                                              */
/* ------------------------------------------------------------------------ */

typedef struct kvh_verify_opts {
  uint32_t struct_size;       /* sizeof(kvh_verify_opts) */
  uint32_t flags;             /* KVH_LOGVERIFY_* */
  const uint8_t *hmac_key;    /* NULL = no key: HMACs are not required */
  size_t hmac_key_len;
  const char *checkpoint_dir; /* NULL = no checkpoint verification */
  const char *public_key;     /* note verifier key (text) for checkpoints */
  const char *fs_verify_key;  /* forward-secure MAC verification key (text, `kvgate fs-keygen`);
                                 NULL = not an FS log. Exclusive with hmac_key. */
  int64_t fs_now_unix;        /* with fs_verify_key: the verifier's time (Unix seconds); every epoch
                                 that ended more than one epoch before it must be sealed, which
                                 detects a log cut back to an earlier epoch. 0 = no freshness check */
} kvh_verify_opts;

/* Verify a log file (or with KVH_LOGVERIFY_ALL, it and all its rotated
 * files). An invalid chain is not an error: the call returns KVH_OK with
 * *out_ok = 0. *out_records: records checked. report (may be NULL): a JSON
 * report {"ok":..,"records":..,"failures":[{"file","line","reason"}]},
 * NUL-terminated; KVH_E_BUFFER_TOO_SMALL with *out_report_len = size needed
 * if cap is too small (out_ok/out_records are still written). */
KVH_API kvh_status kvh_log_verify(const char *path, const kvh_verify_opts *opts, int32_t *out_ok,
                                  uint64_t *out_records, char *report, size_t cap,
                                  size_t *out_report_len);

/* Write a signed checkpoint now (requires config.checkpoint_dir). */
KVH_API kvh_status kvh_checkpoint(kvh_tracer *tracer);

/* Flush (and fsync) everything appended so far. */
KVH_API kvh_status kvh_log_flush(kvh_tracer *tracer);

#ifdef __cplusplus
}
#endif

#endif /* KVHYGIENE_H */
