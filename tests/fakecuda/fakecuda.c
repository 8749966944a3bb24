/*
 * fakecuda.c — a test double of libcuda.so.1 for the subset kvhygiene uses.
 *
 * "Device" memory is host memory (posix_memalign) registered in an allocation
 * table, so cuPointerGetAttributes can answer for it (and answer "not CUDA
 * memory" for anything else). Each stream has a worker thread executing its
 * queue in order, so asynchrony is real: work enqueued on a held stream stays
 * pending and events report CUDA_ERROR_NOT_READY until the stream is released.
 * Modules are recognized by the kernel entry names in the PTX text
 * (kvh_scatter_zero, kvh_verify_nonzero, kvh_pool_zero, kvh_pool_verify,
 * kvh_pool_zero_verify); launches run C equivalents with the
 * parameters read from kernelParams. Device work touching memory outside a
 * device allocation (or, for tables and published counts, outside pinned host
 * memory under unified addressing) sets a sticky CUDA_ERROR_ILLEGAL_ADDRESS on
 * the context, like a real fault.
 *
 * Control functions (fakecuda_*) let tests inject failures, hold streams,
 * simulate graph capture, hide symbols from cuGetProcAddress, plant non-zero
 * bytes before verification and count calls. Build variants:
 *   -DFAKECUDA_NO_PROCADDR   no cuGetProcAddress exports (dlsym fallback)
 *   -DFAKECUDA_OMIT_CAPTURE  no cuStreamIsCapturing export (missing symbol)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef int CUdevice;

enum {
  OK = 0,
  E_INVALID_VALUE = 1,
  E_OUT_OF_MEMORY = 2,
  E_NOT_INITIALIZED = 3,
  E_NO_DEVICE = 100,
  E_INVALID_DEVICE = 101,
  E_INVALID_IMAGE = 200,
  E_INVALID_CONTEXT = 201,
  E_INVALID_PTX = 218,
  E_UNSUPPORTED_PTX_VERSION = 222,
  E_INVALID_HANDLE = 400,
  E_NOT_FOUND = 500,
  E_NOT_READY = 600,
  E_ILLEGAL_ADDRESS = 700,
  E_LAUNCH_FAILED = 719,
  E_NOT_SUPPORTED = 801,
  E_STREAM_CAPTURE_UNSUPPORTED = 900,
  E_UNKNOWN = 999
};

#define MAXDEV 8
#define CTX_MAGIC 0x43545821
#define STREAM_MAGIC 0x5354524d
#define EVENT_MAGIC 0x45564e54
#define MOD_MAGIC 0x4d4f4455
#define FN_MAGIC 0x46554e43

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_inited;

/* ---------------------------------------------------------------- calls */

struct counter {
  char name[48];
  unsigned long n;
};
static struct counter g_calls[96];

struct inj {
  char name[48];
  int code, skip, count;
};
static struct inj g_inj[16];
static char g_hidden[16][48];
static int g_procaddr_mode; /* 0 normal, 1 v2 refuses, 2 v1 and v2 refuse */

static void count_call(const char *name) {
  for (size_t i = 0; i < sizeof g_calls / sizeof g_calls[0]; i++) {
    if (g_calls[i].name[0] == 0) {
      snprintf(g_calls[i].name, sizeof g_calls[i].name, "%s", name);
      g_calls[i].n = 1;
      return;
    }
    if (strcmp(g_calls[i].name, name) == 0) {
      g_calls[i].n++;
      return;
    }
  }
}

/* Counts the call; returns an injected error for it, or 0. */
static CUresult enter(const char *name) {
  CUresult r = OK;
  pthread_mutex_lock(&g_mu);
  count_call(name);
  for (size_t i = 0; i < sizeof g_inj / sizeof g_inj[0]; i++) {
    struct inj *j = &g_inj[i];
    if (j->name[0] == 0 || strcmp(j->name, name) != 0) continue;
    if (j->skip > 0) {
      j->skip--;
      break;
    }
    if (j->count != 0) {
      if (j->count > 0) j->count--;
      r = j->code;
    }
    break;
  }
  pthread_mutex_unlock(&g_mu);
  return r;
}
#define ENTER(name)                      \
  do {                                   \
    CUresult _r = enter(name);           \
    if (_r != OK) return _r;             \
  } while (0)

/* ------------------------------------------------------------ allocations */

struct alloc {
  uintptr_t p;
  size_t n;
  int type; /* 1 host (pinned), 2 device */
  int dev;
};
static struct alloc *g_allocs;
static size_t g_nallocs, g_capallocs;

static struct alloc *find_alloc_locked(uintptr_t p) {
  for (size_t i = 0; i < g_nallocs; i++)
    if (p >= g_allocs[i].p && p < g_allocs[i].p + g_allocs[i].n) return &g_allocs[i];
  return NULL;
}

/* 1 if [p, p+n) is inside one device allocation. */
static int device_range_ok(uintptr_t p, size_t n) {
  pthread_mutex_lock(&g_mu);
  struct alloc *a = find_alloc_locked(p);
  int ok = a != NULL && a->type == 2 && p + n >= p && p + n <= a->p + a->n;
  pthread_mutex_unlock(&g_mu);
  return ok;
}

/* Unified addressing (on by default, as on every 64-bit CUDA platform):
 * pinned host memory is also readable and writable by kernels at its host
 * address. fakecuda_set_unified(0) turns it off (the attributes say 0 too). */
static int g_unified = 1;

/* 1 if a kernel may access [p, p+n): a device allocation, or pinned host
 * memory under unified addressing (descriptor tables, the published count). */
static int kernel_range_ok(uintptr_t p, size_t n) {
  pthread_mutex_lock(&g_mu);
  struct alloc *a = find_alloc_locked(p);
  int ok = a != NULL && (a->type == 2 || (a->type == 1 && g_unified)) && p + n >= p && p + n <= a->p + a->n;
  pthread_mutex_unlock(&g_mu);
  return ok;
}

static int add_alloc(uintptr_t p, size_t n, int type, int dev) {
  pthread_mutex_lock(&g_mu);
  if (g_nallocs == g_capallocs) {
    size_t c = g_capallocs ? g_capallocs * 2 : 64;
    struct alloc *na = realloc(g_allocs, c * sizeof *na);
    if (na == NULL) {
      pthread_mutex_unlock(&g_mu);
      return -1;
    }
    g_allocs = na;
    g_capallocs = c;
  }
  g_allocs[g_nallocs++] = (struct alloc){p, n, type, dev};
  pthread_mutex_unlock(&g_mu);
  return 0;
}

static int remove_alloc(uintptr_t p, int type) {
  int found = 0;
  pthread_mutex_lock(&g_mu);
  for (size_t i = 0; i < g_nallocs; i++) {
    if (g_allocs[i].p == p && g_allocs[i].type == type) {
      g_allocs[i] = g_allocs[--g_nallocs];
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
  return found;
}

/* ---------------------------------------------------------------- contexts */

struct ctx {
  int magic;
  int dev;
  CUresult sticky;
};
static struct ctx g_prim[MAXDEV];
static __thread struct ctx *t_stack[32];
static __thread int t_depth;

static int ndev(void) {
  const char *e = getenv("FAKECUDA_DEVICES");
  int n = e ? atoi(e) : 2;
  if (n < 0) n = 0;
  if (n > MAXDEV) n = MAXDEV;
  return n;
}

static struct ctx *cur_ctx(void) { return t_depth > 0 ? t_stack[t_depth - 1] : NULL; }

static CUresult need_ctx(struct ctx **out) {
  if (!g_inited) return E_NOT_INITIALIZED;
  struct ctx *c = cur_ctx();
  if (c == NULL) return E_INVALID_CONTEXT;
  pthread_mutex_lock(&g_mu);
  CUresult s = c->sticky;
  pthread_mutex_unlock(&g_mu);
  if (s != OK) return s;
  *out = c;
  return OK;
}

/* ----------------------------------------------------------------- streams */

enum { OP_MEMSET8, OP_MEMSET32, OP_H2D, OP_D2H, OP_ZERO, OP_VERIFY, OP_EVENT, OP_FILL, OP_PZERO, OP_PVERIFY, OP_PZV };

struct event;

struct op {
  int kind;
  uintptr_t dst, src;
  size_t n;
  uint32_t val;
  uint64_t table;
  uint32_t ndesc;
  uint64_t counter;
  uint64_t result; /* verify kernels: where the last CTA publishes the count (0: none) */
  uint64_t ids; /* pool kernels: table = regions, ndesc = nregions */
  uint32_t nblocks, nchunk;
  struct event *ev;
  struct op *next;
};

struct stream {
  int magic;
  struct ctx *ctx;
  pthread_t th;
  struct op *head, *tail;
  int hold, busy, capture;
};
static struct stream *g_default[MAXDEV];
static struct stream *g_streams[64];
static int g_nstreams;

struct event {
  int magic;
  int complete;
  CUresult err;
};

static uintptr_t g_plant_addr;
static unsigned char g_plant_val;

static void fault(struct ctx *c) {
  pthread_mutex_lock(&g_mu);
  if (c->sticky == OK) c->sticky = E_ILLEGAL_ADDRESS;
  pthread_mutex_unlock(&g_mu);
}

/* The end of every verify kernel: add this launch's count to the device
 * counter {u64 count, u32 done}; with a result address, the last CTA then
 * moves the count there and resets the counter for the next launch. */
static void publish(struct ctx *c, struct op *o, uint64_t cnt) {
  if (!device_range_ok(o->counter, 16) || (o->result != 0 && !kernel_range_ok(o->result, 8))) return fault(c);
  uint64_t *ctr = (uint64_t *)(uintptr_t)o->counter;
  ctr[0] += cnt;
  if (o->result != 0) {
    *(volatile uint64_t *)(uintptr_t)o->result = ctr[0];
    ctr[0] = 0;
    *(uint32_t *)&ctr[1] = 0;
  }
}

static void run_zero(struct ctx *c, struct op *o) {
  if (!kernel_range_ok(o->table, (size_t)o->ndesc * 16)) {
    fault(c);
    return;
  }
  const uint64_t *t = (const uint64_t *)(uintptr_t)o->table;
  for (uint32_t i = 0; i < o->ndesc; i++) {
    if (!device_range_ok(t[2 * i], t[2 * i + 1])) {
      fault(c);
      return;
    }
    memset((void *)(uintptr_t)t[2 * i], 0, t[2 * i + 1]);
  }
}

/* Same counting rule as the PTX kernel: 4 per non-zero 16-byte-aligned
 * 4-byte word of the aligned body, 1 per non-zero head/tail byte. */
static void run_verify(struct ctx *c, struct op *o) {
  pthread_mutex_lock(&g_mu);
  uintptr_t pa = g_plant_addr;
  unsigned char pv = g_plant_val;
  g_plant_addr = 0;
  pthread_mutex_unlock(&g_mu);
  if (pa != 0) *(volatile unsigned char *)pa = pv;
  if (!kernel_range_ok(o->table, (size_t)o->ndesc * 16)) {
    fault(c);
    return;
  }
  const uint64_t *t = (const uint64_t *)(uintptr_t)o->table;
  uint64_t cnt = 0;
  for (uint32_t i = 0; i < o->ndesc; i++) {
    uintptr_t p = t[2 * i], len = t[2 * i + 1], end = p + len;
    if (!device_range_ok(p, len)) {
      fault(c);
      return;
    }
    uintptr_t bs = (p + 15) & ~(uintptr_t)15, be = end & ~(uintptr_t)15;
    if (bs > end) bs = end;
    if (be < bs) be = bs;
    for (uintptr_t q = p; q < bs; q++) cnt += *(unsigned char *)q != 0;
    for (uintptr_t q = bs; q < be; q += 4) cnt += *(uint32_t *)q != 0 ? 4 : 0;
    for (uintptr_t q = be; q < end; q++) cnt += *(unsigned char *)q != 0;
  }
  publish(c, o, cnt);
}

/* The pool kernels: work item (region r, block ids[i], chunk c) covers
 * [addr + c*64K, min(addr + block_bytes, addr + (c+1)*64K)) with
 * addr = base + ids[i]*stride; verify counts per chunk with run_verify's rule. */
#define POOL_CHUNK 65536u
static void run_pool(struct ctx *c, struct op *o, int zero, int verify) {
  if (zero && verify) { /* the fused kernel: zero everything, then read it back */
    run_pool(c, o, 1, 0);
    run_pool(c, o, 0, 1);
    return;
  }
  if (verify) {
    pthread_mutex_lock(&g_mu);
    uintptr_t pa = g_plant_addr;
    unsigned char pv = g_plant_val;
    g_plant_addr = 0;
    pthread_mutex_unlock(&g_mu);
    if (pa != 0) *(volatile unsigned char *)pa = pv;
  }
  if (!kernel_range_ok(o->table, (size_t)o->ndesc * 24) ||
      !kernel_range_ok(o->ids, (size_t)o->nblocks * 4))
    return fault(c);
  const uint64_t *reg = (const uint64_t *)(uintptr_t)o->table;
  const uint32_t *ids = (const uint32_t *)(uintptr_t)o->ids;
  uint64_t cnt = 0;
  for (uint32_t r = 0; r < o->ndesc; r++) {
    uint64_t base = reg[3 * r], stride = reg[3 * r + 1], bb = reg[3 * r + 2];
    for (uint32_t i = 0; i < o->nblocks; i++) {
      uintptr_t addr = base + (uint64_t)ids[i] * stride;
      for (uint32_t k = 0; k < o->nchunk; k++) {
        uint64_t off = (uint64_t)k * POOL_CHUNK;
        if (off >= bb) break;
        uint64_t len = bb - off < POOL_CHUNK ? bb - off : POOL_CHUNK;
        uintptr_t p = addr + off, end = p + len;
        if (!device_range_ok(p, len)) return fault(c);
        if (!verify) {
          memset((void *)p, 0, len);
          continue;
        }
        uintptr_t bs = (p + 15) & ~(uintptr_t)15, be = end & ~(uintptr_t)15;
        if (bs > end) bs = end;
        if (be < bs) be = bs;
        for (uintptr_t q = p; q < bs; q++) cnt += *(unsigned char *)q != 0;
        for (uintptr_t q = bs; q < be; q += 4) cnt += *(uint32_t *)q != 0 ? 4 : 0;
        for (uintptr_t q = be; q < end; q++) cnt += *(unsigned char *)q != 0;
      }
    }
  }
  if (verify) publish(c, o, cnt);
}

static void run_op(struct stream *s, struct op *o) {
  struct ctx *c = s->ctx;
  pthread_mutex_lock(&g_mu);
  CUresult sticky = c->sticky;
  pthread_mutex_unlock(&g_mu);
  if (o->kind == OP_EVENT) {
    pthread_mutex_lock(&g_mu);
    o->ev->err = sticky;
    o->ev->complete = 1;
    pthread_mutex_unlock(&g_mu);
    return;
  }
  if (sticky != OK) return; /* a faulted context runs nothing more */
  switch (o->kind) {
    case OP_MEMSET8:
    case OP_FILL:
      if (!device_range_ok(o->dst, o->n)) return fault(c);
      memset((void *)o->dst, (int)(o->val & 0xff), o->n);
      break;
    case OP_MEMSET32:
      if (!device_range_ok(o->dst, o->n * 4)) return fault(c);
      for (size_t i = 0; i < o->n; i++) ((uint32_t *)o->dst)[i] = o->val;
      break;
    case OP_H2D:
      if (!device_range_ok(o->dst, o->n)) return fault(c);
      memcpy((void *)o->dst, (const void *)o->src, o->n);
      break;
    case OP_D2H:
      if (!device_range_ok(o->src, o->n)) return fault(c);
      memcpy((void *)o->dst, (const void *)o->src, o->n);
      break;
    case OP_ZERO:
      run_zero(c, o);
      break;
    case OP_VERIFY:
      run_verify(c, o);
      break;
    case OP_PZERO:
      run_pool(c, o, 1, 0);
      break;
    case OP_PVERIFY:
      run_pool(c, o, 0, 1);
      break;
    case OP_PZV:
      run_pool(c, o, 1, 1);
      break;
  }
}

static void *worker(void *arg) {
  struct stream *s = arg;
  pthread_mutex_lock(&g_mu);
  for (;;) {
    while (s->head == NULL || s->hold) pthread_cond_wait(&g_cv, &g_mu);
    struct op *o = s->head;
    s->head = o->next;
    if (s->head == NULL) s->tail = NULL;
    s->busy = 1;
    pthread_mutex_unlock(&g_mu);
    run_op(s, o);
    free(o);
    pthread_mutex_lock(&g_mu);
    s->busy = 0;
    pthread_cond_broadcast(&g_cv);
  }
  return NULL;
}

static struct stream *new_stream(struct ctx *c) {
  struct stream *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->magic = STREAM_MAGIC;
  s->ctx = c;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&s->th, &at, worker, s) != 0) {
    free(s);
    return NULL;
  }
  pthread_mutex_lock(&g_mu);
  if (g_nstreams < 64) g_streams[g_nstreams++] = s;
  pthread_mutex_unlock(&g_mu);
  return s;
}

static struct stream *default_stream(int dev) {
  pthread_mutex_lock(&g_mu);
  struct stream *s = g_default[dev];
  pthread_mutex_unlock(&g_mu);
  if (s != NULL) return s;
  s = new_stream(&g_prim[dev]);
  pthread_mutex_lock(&g_mu);
  if (g_default[dev] == NULL) g_default[dev] = s;
  s = g_default[dev];
  pthread_mutex_unlock(&g_mu);
  return s;
}

/* Resolves a CUstream for the current context (NULL = legacy default stream). */
static CUresult get_stream(void *h, struct ctx *c, struct stream **out) {
  if (h == NULL) {
    *out = default_stream(c->dev);
    return *out ? OK : E_OUT_OF_MEMORY;
  }
  struct stream *s = h;
  if (s->magic != STREAM_MAGIC) return E_INVALID_HANDLE;
  if (s->ctx != c) return E_INVALID_HANDLE;
  *out = s;
  return OK;
}

static CUresult enqueue(struct stream *s, struct op *o) {
  struct op *n = malloc(sizeof *n);
  if (n == NULL) return E_OUT_OF_MEMORY;
  *n = *o;
  n->next = NULL;
  pthread_mutex_lock(&g_mu);
  if (s->capture != 0) {
    pthread_mutex_unlock(&g_mu);
    free(n);
    return E_STREAM_CAPTURE_UNSUPPORTED;
  }
  if (s->tail) s->tail->next = n; else s->head = n;
  s->tail = n;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  return OK;
}

#define STREAM_PROLOGUE(name, h)                 \
  ENTER(name);                                   \
  struct ctx *c;                                 \
  CUresult r = need_ctx(&c);                     \
  if (r != OK) return r;                         \
  struct stream *s;                              \
  r = get_stream((h), c, &s);                    \
  if (r != OK) return r

/* ------------------------------------------------------------- driver API */

CUresult cuInit(unsigned int flags) {
  ENTER("cuInit");
  if (flags != 0) return E_INVALID_VALUE;
  if (ndev() == 0) return E_NO_DEVICE;
  pthread_mutex_lock(&g_mu);
  if (!g_inited) {
    for (int i = 0; i < MAXDEV; i++) g_prim[i] = (struct ctx){CTX_MAGIC, i, OK};
    g_inited = 1;
  }
  pthread_mutex_unlock(&g_mu);
  return OK;
}

CUresult cuDriverGetVersion(int *v) {
  ENTER("cuDriverGetVersion");
  if (v == NULL) return E_INVALID_VALUE;
  const char *e = getenv("FAKECUDA_VERSION");
  *v = e ? atoi(e) : 12040;
  return OK;
}

CUresult cuDeviceGetCount(int *n) {
  ENTER("cuDeviceGetCount");
  if (!g_inited) return E_NOT_INITIALIZED;
  *n = ndev();
  return OK;
}

CUresult cuDeviceGet(CUdevice *d, int ordinal) {
  ENTER("cuDeviceGet");
  if (!g_inited) return E_NOT_INITIALIZED;
  if (ordinal < 0 || ordinal >= ndev()) return E_INVALID_DEVICE;
  *d = ordinal;
  return OK;
}

CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d) {
  ENTER("cuDeviceGetAttribute");
  if (!g_inited) return E_NOT_INITIALIZED;
  if (d < 0 || d >= ndev()) return E_INVALID_DEVICE;
  switch (attr) {
    case 16: *v = 4; break;          /* CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT */
    case 19:                         /* CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY */
    case 41: *v = g_unified; break;  /* CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING */
    default: *v = 0;
  }
  return OK;
}

CUresult cuDeviceGetUuid_v2(unsigned char *u, CUdevice d) {
  ENTER("cuDeviceGetUuid");
  if (!g_inited) return E_NOT_INITIALIZED;
  if (d < 0 || d >= ndev()) return E_INVALID_DEVICE;
  for (int i = 0; i < 16; i++) u[i] = (unsigned char)(0x10 * (d + 1) + i);
  return OK;
}
CUresult cuDeviceGetUuid(unsigned char *u, CUdevice d) { return cuDeviceGetUuid_v2(u, d); }

CUresult cuDevicePrimaryCtxRetain(void **out, CUdevice d) {
  ENTER("cuDevicePrimaryCtxRetain");
  if (!g_inited) return E_NOT_INITIALIZED;
  if (d < 0 || d >= ndev()) return E_INVALID_DEVICE;
  *out = &g_prim[d];
  return OK;
}

CUresult cuCtxGetCurrent(void **out) {
  ENTER("cuCtxGetCurrent");
  if (!g_inited) return E_NOT_INITIALIZED;
  *out = cur_ctx();
  return OK;
}

CUresult cuCtxGetDevice(CUdevice *d) {
  ENTER("cuCtxGetDevice");
  struct ctx *c = cur_ctx();
  if (c == NULL) return E_INVALID_CONTEXT;
  *d = c->dev;
  return OK;
}

CUresult cuCtxPushCurrent_v2(void *h) {
  ENTER("cuCtxPushCurrent");
  struct ctx *c = h;
  if (c == NULL || c->magic != CTX_MAGIC) return E_INVALID_CONTEXT;
  if (t_depth >= 32) return E_UNKNOWN;
  t_stack[t_depth++] = c;
  return OK;
}

CUresult cuCtxPopCurrent_v2(void **out) {
  ENTER("cuCtxPopCurrent");
  if (t_depth == 0) return E_INVALID_CONTEXT;
  struct ctx *c = t_stack[--t_depth];
  if (out) *out = c;
  return OK;
}

CUresult cuPointerGetAttributes(unsigned int n, int *attrs, void **data, CUdeviceptr p) {
  ENTER("cuPointerGetAttributes");
  if (!g_inited) return E_NOT_INITIALIZED;
  if (attrs == NULL || data == NULL) return E_INVALID_VALUE;
  pthread_mutex_lock(&g_mu);
  struct alloc *a = find_alloc_locked((uintptr_t)p);
  struct alloc copy = a ? *a : (struct alloc){0, 0, 0, -2};
  pthread_mutex_unlock(&g_mu);
  for (unsigned int i = 0; i < n; i++) {
    switch (attrs[i]) {
      case 1: *(void **)data[i] = a ? &g_prim[copy.dev] : NULL; break;
      case 2: *(unsigned int *)data[i] = (unsigned int)copy.type; break;
      case 9: *(int *)data[i] = copy.dev; break;
      case 11: *(CUdeviceptr *)data[i] = copy.p; break;
      case 12: *(size_t *)data[i] = copy.n; break;
      default: return E_INVALID_VALUE;
    }
  }
  return OK;
}

CUresult cuMemAlloc_v2(CUdeviceptr *out, size_t n) {
  ENTER("cuMemAlloc");
  struct ctx *c;
  CUresult r = need_ctx(&c);
  if (r != OK) return r;
  if (out == NULL || n == 0) return E_INVALID_VALUE;
  void *p = NULL;
  if (posix_memalign(&p, 256, n) != 0) return E_OUT_OF_MEMORY;
  if (add_alloc((uintptr_t)p, n, 2, c->dev) != 0) {
    free(p);
    return E_OUT_OF_MEMORY;
  }
  *out = (uintptr_t)p;
  return OK;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
  ENTER("cuMemFree");
  struct ctx *c;
  CUresult r = need_ctx(&c);
  if (r != OK) return r;
  if (!remove_alloc((uintptr_t)p, 2)) return E_INVALID_VALUE;
  free((void *)(uintptr_t)p);
  return OK;
}

CUresult cuMemAllocHost_v2(void **out, size_t n) {
  ENTER("cuMemAllocHost");
  struct ctx *c;
  CUresult r = need_ctx(&c);
  if (r != OK) return r;
  if (out == NULL || n == 0) return E_INVALID_VALUE;
  void *p = NULL;
  if (posix_memalign(&p, 4096, n) != 0) return E_OUT_OF_MEMORY;
  memset(p, 0xA5, n); /* pinned memory is not zeroed: catch readers of stale data */
  if (add_alloc((uintptr_t)p, n, 1, c->dev) != 0) {
    free(p);
    return E_OUT_OF_MEMORY;
  }
  *out = p;
  return OK;
}

CUresult cuMemFreeHost(void *p) {
  ENTER("cuMemFreeHost");
  if (!remove_alloc((uintptr_t)p, 1)) return E_INVALID_VALUE;
  free(p);
  return OK;
}

CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void *h) {
  STREAM_PROLOGUE("cuMemsetD8Async", h);
  return enqueue(s, &(struct op){.kind = OP_MEMSET8, .dst = p, .n = n, .val = v});
}

CUresult cuMemsetD32Async(CUdeviceptr p, unsigned int v, size_t n, void *h) {
  STREAM_PROLOGUE("cuMemsetD32Async", h);
  if (p % 4 != 0) return E_INVALID_VALUE;
  return enqueue(s, &(struct op){.kind = OP_MEMSET32, .dst = p, .n = n, .val = v});
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *src, size_t n, void *h) {
  STREAM_PROLOGUE("cuMemcpyHtoDAsync", h);
  return enqueue(s, &(struct op){.kind = OP_H2D, .dst = d, .src = (uintptr_t)src, .n = n});
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *h) {
  STREAM_PROLOGUE("cuMemcpyDtoHAsync", h);
  return enqueue(s, &(struct op){.kind = OP_D2H, .dst = (uintptr_t)dst, .src = src, .n = n});
}

/* Synchronous copies: enqueued on the legacy default stream, then drained. */
static CUresult sync_copy(const char *name, int kind, uintptr_t dst, uintptr_t src, size_t n) {
  ENTER(name);
  struct ctx *c;
  CUresult r = need_ctx(&c);
  if (r != OK) return r;
  struct stream *s = default_stream(c->dev);
  if (s == NULL) return E_OUT_OF_MEMORY;
  r = enqueue(s, &(struct op){.kind = kind, .dst = dst, .src = src, .n = n});
  if (r != OK) return r;
  pthread_mutex_lock(&g_mu);
  while (s->head != NULL || s->busy) pthread_cond_wait(&g_cv, &g_mu);
  r = c->sticky;
  pthread_mutex_unlock(&g_mu);
  return r;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *src, size_t n) {
  return sync_copy("cuMemcpyHtoD", OP_H2D, d, (uintptr_t)src, n);
}

CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
  return sync_copy("cuMemcpyDtoH", OP_D2H, (uintptr_t)dst, src, n);
}

struct module {
  int magic;
  struct ctx *ctx;
  int has_zero, has_verify, has_pzero, has_pverify, has_pzv;
};
struct function {
  int magic;
  struct module *mod;
  int kind; /* OP_ZERO, OP_VERIFY, OP_PZERO, OP_PVERIFY or OP_PZV */
};

CUresult cuModuleLoadData(void **out, const void *image) {
  ENTER("cuModuleLoadData");
  struct ctx *c;
  CUresult r = need_ctx(&c);
  if (r != OK) return r;
  const char *ptx = image;
  if (ptx == NULL) return E_INVALID_VALUE;
  const char *v = strstr(ptx, ".version ");
  if (v == NULL || strstr(ptx, ".target ") == NULL) return E_INVALID_PTX;
  int maj = 0, min = 0;
  if (sscanf(v, ".version %d.%d", &maj, &min) != 2) return E_INVALID_PTX;
  if (maj > 8 || (maj == 8 && min > 0)) return E_UNSUPPORTED_PTX_VERSION; /* CUDA 12.0 accepts <= 8.0 */
  if (strstr(ptx, ".address_size 64") == NULL) return E_INVALID_PTX;
  struct module *m = calloc(1, sizeof *m);
  if (m == NULL) return E_OUT_OF_MEMORY;
  m->magic = MOD_MAGIC;
  m->ctx = c;
  m->has_zero = strstr(ptx, ".entry kvh_scatter_zero(") != NULL;
  m->has_verify = strstr(ptx, ".entry kvh_verify_nonzero(") != NULL;
  m->has_pzero = strstr(ptx, ".entry kvh_pool_zero(") != NULL;
  m->has_pverify = strstr(ptx, ".entry kvh_pool_verify(") != NULL;
  m->has_pzv = strstr(ptx, ".entry kvh_pool_zero_verify(") != NULL;
  *out = m;
  return OK;
}

CUresult cuModuleGetFunction(void **out, void *hm, const char *name) {
  ENTER("cuModuleGetFunction");
  struct module *m = hm;
  if (m == NULL || m->magic != MOD_MAGIC) return E_INVALID_HANDLE;
  int kind;
  if (strcmp(name, "kvh_scatter_zero") == 0 && m->has_zero) kind = OP_ZERO;
  else if (strcmp(name, "kvh_verify_nonzero") == 0 && m->has_verify) kind = OP_VERIFY;
  else if (strcmp(name, "kvh_pool_zero") == 0 && m->has_pzero) kind = OP_PZERO;
  else if (strcmp(name, "kvh_pool_verify") == 0 && m->has_pverify) kind = OP_PVERIFY;
  else if (strcmp(name, "kvh_pool_zero_verify") == 0 && m->has_pzv) kind = OP_PZV;
  else return E_NOT_FOUND;
  struct function *f = calloc(1, sizeof *f);
  if (f == NULL) return E_OUT_OF_MEMORY;
  *f = (struct function){FN_MAGIC, m, kind};
  *out = f;
  return OK;
}

CUresult cuLaunchKernel(void *hf, unsigned int gx, unsigned int gy, unsigned int gz,
                        unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
                        void *h, void **params, void **extra) {
  STREAM_PROLOGUE("cuLaunchKernel", h);
  struct function *f = hf;
  if (f == NULL || f->magic != FN_MAGIC) return E_INVALID_HANDLE;
  if (f->mod->ctx != c) return E_INVALID_HANDLE; /* function of another context */
  if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || bx * by * bz > 1024 ||
      shmem > 48 * 1024 || params == NULL || extra != NULL)
    return E_INVALID_VALUE;
  struct op o = {.kind = f->kind};
  o.table = *(uint64_t *)params[0];
  o.ndesc = *(uint32_t *)params[1];
  if (f->kind == OP_VERIFY) { /* (table, n, counter, result) */
    o.counter = *(uint64_t *)params[2];
    o.result = *(uint64_t *)params[3];
  }
  if (f->kind == OP_PZERO || f->kind == OP_PVERIFY || f->kind == OP_PZV) {
    /* (regions, nregions, ids, nblocks, nchunk, counter[, result]) */
    o.ids = *(uint64_t *)params[2];
    o.nblocks = *(uint32_t *)params[3];
    o.nchunk = *(uint32_t *)params[4];
    o.counter = *(uint64_t *)params[5];
    if (f->kind != OP_PZERO) o.result = *(uint64_t *)params[6];
  }
  return enqueue(s, &o);
}

CUresult cuEventCreate(void **out, unsigned int flags) {
  ENTER("cuEventCreate");
  struct ctx *c;
  CUresult r = need_ctx(&c);
  if (r != OK) return r;
  (void)flags;
  struct event *e = calloc(1, sizeof *e);
  if (e == NULL) return E_OUT_OF_MEMORY;
  e->magic = EVENT_MAGIC;
  e->complete = 1;
  *out = e;
  return OK;
}

CUresult cuEventRecord(void *he, void *h) {
  STREAM_PROLOGUE("cuEventRecord", h);
  struct event *e = he;
  if (e == NULL || e->magic != EVENT_MAGIC) return E_INVALID_HANDLE;
  pthread_mutex_lock(&g_mu);
  e->complete = 0;
  e->err = OK;
  pthread_mutex_unlock(&g_mu);
  return enqueue(s, &(struct op){.kind = OP_EVENT, .ev = e});
}

CUresult cuEventQuery(void *he) {
  ENTER("cuEventQuery");
  struct event *e = he;
  if (e == NULL || e->magic != EVENT_MAGIC) return E_INVALID_HANDLE;
  pthread_mutex_lock(&g_mu);
  CUresult r = e->complete ? e->err : E_NOT_READY;
  pthread_mutex_unlock(&g_mu);
  return r;
}

CUresult cuEventSynchronize(void *he) {
  ENTER("cuEventSynchronize");
  struct event *e = he;
  if (e == NULL || e->magic != EVENT_MAGIC) return E_INVALID_HANDLE;
  pthread_mutex_lock(&g_mu);
  while (!e->complete) pthread_cond_wait(&g_cv, &g_mu);
  CUresult r = e->err;
  pthread_mutex_unlock(&g_mu);
  return r;
}

CUresult cuEventDestroy_v2(void *he) {
  ENTER("cuEventDestroy");
  struct event *e = he;
  if (e == NULL || e->magic != EVENT_MAGIC) return E_INVALID_HANDLE;
  e->magic = 0;
  free(e);
  return OK;
}

CUresult cuStreamCreate(void **out, unsigned int flags) {
  ENTER("cuStreamCreate");
  struct ctx *c;
  CUresult r = need_ctx(&c);
  if (r != OK) return r;
  (void)flags;
  struct stream *s = new_stream(c);
  if (s == NULL) return E_OUT_OF_MEMORY;
  *out = s;
  return OK;
}

CUresult cuStreamSynchronize(void *h) {
  STREAM_PROLOGUE("cuStreamSynchronize", h);
  pthread_mutex_lock(&g_mu);
  while (s->head != NULL || s->busy) pthread_cond_wait(&g_cv, &g_mu);
  CUresult st = c->sticky;
  pthread_mutex_unlock(&g_mu);
  return st;
}

#ifndef FAKECUDA_OMIT_CAPTURE
CUresult cuStreamIsCapturing(void *h, int *status) {
  STREAM_PROLOGUE("cuStreamIsCapturing", h);
  pthread_mutex_lock(&g_mu);
  *status = s->capture;
  pthread_mutex_unlock(&g_mu);
  return OK;
}
#endif

static const struct {
  int code;
  const char *name;
} g_names[] = {
    {0, "CUDA_SUCCESS"},
    {1, "CUDA_ERROR_INVALID_VALUE"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY"},
    {3, "CUDA_ERROR_NOT_INITIALIZED"},
    {100, "CUDA_ERROR_NO_DEVICE"},
    {101, "CUDA_ERROR_INVALID_DEVICE"},
    {200, "CUDA_ERROR_INVALID_IMAGE"},
    {201, "CUDA_ERROR_INVALID_CONTEXT"},
    {218, "CUDA_ERROR_INVALID_PTX"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
    {400, "CUDA_ERROR_INVALID_HANDLE"},
    {500, "CUDA_ERROR_NOT_FOUND"},
    {600, "CUDA_ERROR_NOT_READY"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
    {719, "CUDA_ERROR_LAUNCH_FAILED"},
    {801, "CUDA_ERROR_NOT_SUPPORTED"},
    {900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"},
    {999, "CUDA_ERROR_UNKNOWN"},
};

CUresult cuGetErrorName(CUresult code, const char **out) {
  count_call("cuGetErrorName");
  for (size_t i = 0; i < sizeof g_names / sizeof g_names[0]; i++) {
    if (g_names[i].code == code) {
      *out = g_names[i].name;
      return OK;
    }
  }
  *out = NULL;
  return E_INVALID_VALUE;
}

#ifndef FAKECUDA_NO_PROCADDR
static const struct {
  const char *name;
  void *fn;
} g_procs[] = {
    {"cuInit", (void *)cuInit},
    {"cuDriverGetVersion", (void *)cuDriverGetVersion},
    {"cuDeviceGet", (void *)cuDeviceGet},
    {"cuDeviceGetCount", (void *)cuDeviceGetCount},
    {"cuDeviceGetAttribute", (void *)cuDeviceGetAttribute},
    {"cuDeviceGetUuid", (void *)cuDeviceGetUuid_v2},
    {"cuDevicePrimaryCtxRetain", (void *)cuDevicePrimaryCtxRetain},
    {"cuCtxGetCurrent", (void *)cuCtxGetCurrent},
    {"cuCtxGetDevice", (void *)cuCtxGetDevice},
    {"cuCtxPushCurrent", (void *)cuCtxPushCurrent_v2},
    {"cuCtxPopCurrent", (void *)cuCtxPopCurrent_v2},
    {"cuPointerGetAttributes", (void *)cuPointerGetAttributes},
    {"cuMemAlloc", (void *)cuMemAlloc_v2},
    {"cuMemFree", (void *)cuMemFree_v2},
    {"cuMemAllocHost", (void *)cuMemAllocHost_v2},
    {"cuMemFreeHost", (void *)cuMemFreeHost},
    {"cuMemsetD8Async", (void *)cuMemsetD8Async},
    {"cuMemsetD32Async", (void *)cuMemsetD32Async},
    {"cuMemcpyHtoDAsync", (void *)cuMemcpyHtoDAsync_v2},
    {"cuMemcpyDtoHAsync", (void *)cuMemcpyDtoHAsync_v2},
    {"cuMemcpyHtoD", (void *)cuMemcpyHtoD_v2},
    {"cuMemcpyDtoH", (void *)cuMemcpyDtoH_v2},
    {"cuModuleLoadData", (void *)cuModuleLoadData},
    {"cuModuleGetFunction", (void *)cuModuleGetFunction},
    {"cuLaunchKernel", (void *)cuLaunchKernel},
    {"cuEventCreate", (void *)cuEventCreate},
    {"cuEventRecord", (void *)cuEventRecord},
    {"cuEventQuery", (void *)cuEventQuery},
    {"cuEventSynchronize", (void *)cuEventSynchronize},
    {"cuEventDestroy", (void *)cuEventDestroy_v2},
    {"cuStreamCreate", (void *)cuStreamCreate},
    {"cuStreamSynchronize", (void *)cuStreamSynchronize},
#ifndef FAKECUDA_OMIT_CAPTURE
    {"cuStreamIsCapturing", (void *)cuStreamIsCapturing},
#endif
    {"cuGetErrorName", (void *)cuGetErrorName},
};

static CUresult lookup(const char *sym, void **pfn, int *status) {
  *pfn = NULL;
  pthread_mutex_lock(&g_mu);
  for (size_t i = 0; i < sizeof g_hidden / sizeof g_hidden[0]; i++) {
    if (g_hidden[i][0] && strcmp(g_hidden[i], sym) == 0) {
      pthread_mutex_unlock(&g_mu);
      if (status) *status = 1; /* CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND */
      return E_NOT_FOUND;
    }
  }
  pthread_mutex_unlock(&g_mu);
  for (size_t i = 0; i < sizeof g_procs / sizeof g_procs[0]; i++) {
    if (strcmp(g_procs[i].name, sym) == 0) {
      *pfn = g_procs[i].fn;
      if (status) *status = 0;
      return OK;
    }
  }
  if (status) *status = 1;
  return E_NOT_FOUND;
}

CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, unsigned long long flags,
                             int *status) {
  count_call("cuGetProcAddress_v2");
  if (g_procaddr_mode >= 1) return E_NOT_SUPPORTED;
  if (sym == NULL || pfn == NULL || ver < 12000 || flags > 2) return E_INVALID_VALUE;
  return lookup(sym, pfn, status);
}

CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, unsigned long long flags) {
  count_call("cuGetProcAddress");
  if (g_procaddr_mode >= 2) return E_NOT_SUPPORTED;
  if (sym == NULL || pfn == NULL || ver < 11030 || flags > 2) return E_INVALID_VALUE;
  return lookup(sym, pfn, NULL);
}
#endif

/* ---------------------------------------------------------------- control */

/* Drains every stream, then forgets injections, counters, hidden symbols,
 * capture flags, sticky errors, holds and planted bytes. Allocations,
 * contexts, modules and streams stay. */
void fakecuda_reset(void) {
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < g_nstreams; i++) {
    g_streams[i]->hold = 0;
    g_streams[i]->capture = 0;
  }
  pthread_cond_broadcast(&g_cv);
  for (int i = 0; i < g_nstreams; i++)
    while (g_streams[i]->head != NULL || g_streams[i]->busy) pthread_cond_wait(&g_cv, &g_mu);
  memset(g_inj, 0, sizeof g_inj);
  memset(g_calls, 0, sizeof g_calls);
  memset(g_hidden, 0, sizeof g_hidden);
  g_procaddr_mode = 0;
  g_plant_addr = 0;
  g_unified = 1;
  for (int i = 0; i < MAXDEV; i++) g_prim[i].sticky = OK;
  pthread_mutex_unlock(&g_mu);
}

/* The next `count` calls of `name` (after `skip` successful ones) fail with
 * `code`; count < 0 means every call. */
void fakecuda_inject(const char *name, int code, int skip, int count) {
  pthread_mutex_lock(&g_mu);
  for (size_t i = 0; i < sizeof g_inj / sizeof g_inj[0]; i++) {
    if (g_inj[i].name[0] == 0 || strcmp(g_inj[i].name, name) == 0) {
      snprintf(g_inj[i].name, sizeof g_inj[i].name, "%s", name);
      g_inj[i].code = code;
      g_inj[i].skip = skip;
      g_inj[i].count = count;
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
}

unsigned long fakecuda_calls(const char *name) {
  unsigned long n = 0;
  pthread_mutex_lock(&g_mu);
  for (size_t i = 0; i < sizeof g_calls / sizeof g_calls[0]; i++)
    if (strcmp(g_calls[i].name, name) == 0) n = g_calls[i].n;
  pthread_mutex_unlock(&g_mu);
  return n;
}

/* cuGetProcAddress reports `name` as not found. */
void fakecuda_hide(const char *name) {
  pthread_mutex_lock(&g_mu);
  for (size_t i = 0; i < sizeof g_hidden / sizeof g_hidden[0]; i++) {
    if (g_hidden[i][0] == 0) {
      snprintf(g_hidden[i], sizeof g_hidden[i], "%s", name);
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
}

/* 0: normal; 1: cuGetProcAddress_v2 refuses (CUDA 11 driver); 2: both refuse. */
void fakecuda_procaddr_mode(int m) {
  pthread_mutex_lock(&g_mu);
  g_procaddr_mode = m;
  pthread_mutex_unlock(&g_mu);
}

/* Device allocation on device dev without a current context. */
int fakecuda_alloc(int dev, size_t n, CUdeviceptr *out) {
  if (dev < 0 || dev >= ndev() || n == 0) return E_INVALID_VALUE;
  void *p = NULL;
  if (posix_memalign(&p, 256, n) != 0) return E_OUT_OF_MEMORY;
  if (add_alloc((uintptr_t)p, n, 2, dev) != 0) {
    free(p);
    return E_OUT_OF_MEMORY;
  }
  *out = (uintptr_t)p;
  return OK;
}

int fakecuda_free(CUdeviceptr p) {
  if (!remove_alloc((uintptr_t)p, 2)) return E_INVALID_VALUE;
  free((void *)(uintptr_t)p);
  return OK;
}

/* Pinned host allocation (CU_MEMORYTYPE_HOST) of device dev. */
int fakecuda_host_alloc(int dev, size_t n, void **out) {
  void *p = NULL;
  if (posix_memalign(&p, 4096, n) != 0) return E_OUT_OF_MEMORY;
  if (add_alloc((uintptr_t)p, n, 1, dev) != 0) {
    free(p);
    return E_OUT_OF_MEMORY;
  }
  *out = p;
  return OK;
}

int fakecuda_host_free(void *p) {
  if (!remove_alloc((uintptr_t)p, 1)) return E_INVALID_VALUE;
  free(p);
  return OK;
}

/* A new stream in device dev's primary context. */
void *fakecuda_stream_create(int dev) {
  if (dev < 0 || dev >= ndev()) return NULL;
  return new_stream(&g_prim[dev]);
}

static struct stream *resolve(int dev, void *h) {
  if (h != NULL) return ((struct stream *)h)->magic == STREAM_MAGIC ? h : NULL;
  if (dev < 0 || dev >= ndev()) return NULL;
  return default_stream(dev);
}

/* Hold (1) or release (0) a stream: held streams execute nothing. h NULL:
 * the legacy default stream of device dev. */
int fakecuda_stream_hold(int dev, void *h, int on) {
  struct stream *s = resolve(dev, h);
  if (s == NULL) return E_INVALID_HANDLE;
  pthread_mutex_lock(&g_mu);
  s->hold = on;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  return OK;
}

/* Pending operations on a stream (queued, not yet finished). */
int fakecuda_stream_pending(int dev, void *h) {
  struct stream *s = resolve(dev, h);
  if (s == NULL) return -1;
  int n = 0;
  pthread_mutex_lock(&g_mu);
  for (struct op *o = s->head; o; o = o->next) n++;
  n += s->busy;
  pthread_mutex_unlock(&g_mu);
  return n;
}

/* CUstreamCaptureStatus reported by cuStreamIsCapturing; while non-zero the
 * stream refuses new work (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED). */
int fakecuda_set_capturing(int dev, void *h, int status) {
  struct stream *s = resolve(dev, h);
  if (s == NULL) return E_INVALID_HANDLE;
  pthread_mutex_lock(&g_mu);
  s->capture = status;
  pthread_mutex_unlock(&g_mu);
  return OK;
}

/* Enqueue "user work" (a kernel filling [p, p+n) with val) on a stream. */
int fakecuda_enqueue_fill(int dev, void *h, CUdeviceptr p, size_t n, int val) {
  struct stream *s = resolve(dev, h);
  if (s == NULL) return E_INVALID_HANDLE;
  return enqueue(s, &(struct op){.kind = OP_FILL, .dst = p, .n = n, .val = (uint32_t)val});
}

/* Right before the next verification kernel runs, store val at addr (a
 * zeroization that silently failed). */
void fakecuda_set_unified(int on) { g_unified = on != 0; }

void fakecuda_plant_before_verify(CUdeviceptr addr, int val) {
  pthread_mutex_lock(&g_mu);
  g_plant_addr = (uintptr_t)addr;
  g_plant_val = (unsigned char)val;
  pthread_mutex_unlock(&g_mu);
}

/* Make device dev's primary context current on the calling thread / pop it. */
int fakecuda_push_primary(int dev) {
  if (dev < 0 || dev >= ndev()) return E_INVALID_DEVICE;
  return cuCtxPushCurrent_v2(&g_prim[dev]);
}
int fakecuda_pop(void) { return cuCtxPopCurrent_v2(NULL); }
int fakecuda_ctx_depth(void) { return t_depth; }

/* Sticky error of device dev's primary context (0 = none). */
int fakecuda_sticky(int dev) {
  if (dev < 0 || dev >= MAXDEV) return -1;
  pthread_mutex_lock(&g_mu);
  int r = g_prim[dev].sticky;
  pthread_mutex_unlock(&g_mu);
  return r;
}
