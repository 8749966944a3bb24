package fakectl

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <stdint.h>

typedef struct {
  void (*reset)(void);
  void (*inject)(const char *, int, int, int);
  unsigned long (*calls)(const char *);
  void (*hide)(const char *);
  void (*procaddr_mode)(int);
  int (*alloc)(int, size_t, unsigned long long *);
  int (*free_)(unsigned long long);
  int (*host_alloc)(int, size_t, void **);
  int (*host_free)(void *);
  void *(*stream_create)(int);
  int (*stream_hold)(int, void *, int);
  int (*stream_pending)(int, void *);
  int (*set_capturing)(int, void *, int);
  int (*enqueue_fill)(int, void *, unsigned long long, size_t, int);
  void (*plant)(unsigned long long, int);
  int (*push_primary)(int);
  int (*pop)(void);
  int (*ctx_depth)(void);
  int (*sticky)(int);
  void (*set_unified)(int);
} fk;

static const char *fk_names[] = {"fakecuda_reset", "fakecuda_inject", "fakecuda_calls",
  "fakecuda_hide", "fakecuda_procaddr_mode", "fakecuda_alloc", "fakecuda_free",
  "fakecuda_host_alloc", "fakecuda_host_free", "fakecuda_stream_create",
  "fakecuda_stream_hold", "fakecuda_stream_pending", "fakecuda_set_capturing",
  "fakecuda_enqueue_fill", "fakecuda_plant_before_verify", "fakecuda_push_primary",
  "fakecuda_pop", "fakecuda_ctx_depth", "fakecuda_sticky", "fakecuda_set_unified"};

static const char *fk_open(const char *path, fk *f) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) return dlerror();
  void **slots = (void **)f;
  for (size_t i = 0; i < sizeof(fk_names) / sizeof(fk_names[0]); i++) {
    slots[i] = dlsym(h, fk_names[i]);
    if (slots[i] == NULL) return fk_names[i];
  }
  return NULL;
}

static void fk_reset(fk *f) { f->reset(); }
static void fk_inject(fk *f, const char *n, int code, int skip, int count) { f->inject(n, code, skip, count); }
static unsigned long fk_calls(fk *f, const char *n) { return f->calls(n); }
static void fk_hide(fk *f, const char *n) { f->hide(n); }
static void fk_procaddr_mode(fk *f, int m) { f->procaddr_mode(m); }
static int fk_alloc(fk *f, int dev, size_t n, unsigned long long *p) { return f->alloc(dev, n, p); }
static int fk_free(fk *f, unsigned long long p) { return f->free_(p); }
static int fk_host_alloc(fk *f, int dev, size_t n, uintptr_t *p) { void *q = NULL; int r = f->host_alloc(dev, n, &q); *p = (uintptr_t)q; return r; }
static int fk_host_free(fk *f, uintptr_t p) { return f->host_free((void *)p); }
static uintptr_t fk_stream_create(fk *f, int dev) { return (uintptr_t)f->stream_create(dev); }
static int fk_stream_hold(fk *f, int dev, uintptr_t s, int on) { return f->stream_hold(dev, (void *)s, on); }
static int fk_stream_pending(fk *f, int dev, uintptr_t s) { return f->stream_pending(dev, (void *)s); }
static int fk_set_capturing(fk *f, int dev, uintptr_t s, int st) { return f->set_capturing(dev, (void *)s, st); }
static int fk_enqueue_fill(fk *f, int dev, uintptr_t s, unsigned long long p, size_t n, int v) { return f->enqueue_fill(dev, (void *)s, p, n, v); }
static void fk_plant(fk *f, unsigned long long a, int v) { f->plant(a, v); }
static void fk_set_unified(fk *f, int on) { f->set_unified(on); }
static int fk_push_primary(fk *f, int dev) { return f->push_primary(dev); }
static int fk_pop(fk *f) { return f->pop(); }
static int fk_ctx_depth(fk *f) { return f->ctx_depth(); }
static int fk_sticky(fk *f, int dev) { return f->sticky(dev); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Fake is an opened CUDA test double.
type Fake struct{ f *C.fk }

// Open opens the fake library at path.
func Open(path string) (*Fake, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	f := (*C.fk)(C.calloc(1, C.size_t(unsafe.Sizeof(C.fk{}))))
	if msg := C.fk_open(cpath, f); msg != nil {
		C.free(unsafe.Pointer(f))
		return nil, fmt.Errorf("fakectl: open %s: %s", path, C.GoString(msg))
	}
	return &Fake{f: f}, nil
}

func cstr(s string) (*C.char, func()) {
	c := C.CString(s)
	return c, func() { C.free(unsafe.Pointer(c)) }
}

func errOf(op string, r C.int) error {
	if r != 0 {
		return fmt.Errorf("fakectl: %s: CUresult %d", op, int(r))
	}
	return nil
}

// Reset drains all streams and clears injections, counters, holds, captures,
// hidden symbols, sticky errors and planted bytes.
func (k *Fake) Reset() { C.fk_reset(k.f) }

// Inject makes the next count calls of name (after skip) fail with code; count < 0: all.
func (k *Fake) Inject(name string, code, skip, count int) {
	c, done := cstr(name)
	defer done()
	C.fk_inject(k.f, c, C.int(code), C.int(skip), C.int(count))
}

// Calls is how often name was called since the last Reset.
func (k *Fake) Calls(name string) int {
	c, done := cstr(name)
	defer done()
	return int(C.fk_calls(k.f, c))
}

// Hide makes cuGetProcAddress report name as not found.
func (k *Fake) Hide(name string) {
	c, done := cstr(name)
	defer done()
	C.fk_hide(k.f, c)
}

// ProcAddrMode 0: normal; 1: cuGetProcAddress_v2 refuses; 2: both versions refuse.
func (k *Fake) ProcAddrMode(m int) { C.fk_procaddr_mode(k.f, C.int(m)) }

// Alloc allocates n bytes of "device" memory on device dev (host-addressable).
func (k *Fake) Alloc(dev int, n uint64) (uint64, error) {
	var p C.ulonglong
	if err := errOf("alloc", C.fk_alloc(k.f, C.int(dev), C.size_t(n), &p)); err != nil {
		return 0, err
	}
	return uint64(p), nil
}

// Free frees an Alloc.
func (k *Fake) Free(p uint64) error { return errOf("free", C.fk_free(k.f, C.ulonglong(p))) }

// HostAlloc allocates pinned host memory (CU_MEMORYTYPE_HOST).
func (k *Fake) HostAlloc(dev int, n uint64) (uint64, error) {
	var p C.uintptr_t
	if err := errOf("host alloc", C.fk_host_alloc(k.f, C.int(dev), C.size_t(n), &p)); err != nil {
		return 0, err
	}
	return uint64(p), nil
}

// HostFree frees a HostAlloc.
func (k *Fake) HostFree(p uint64) error {
	return errOf("host free", C.fk_host_free(k.f, C.uintptr_t(p)))
}

// StreamCreate creates a stream in device dev's primary context.
func (k *Fake) StreamCreate(dev int) uint64 { return uint64(C.fk_stream_create(k.f, C.int(dev))) }

// Hold stops (true) or resumes (false) execution on a stream (0: dev's legacy default stream).
func (k *Fake) Hold(dev int, stream uint64, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return errOf("hold", C.fk_stream_hold(k.f, C.int(dev), C.uintptr_t(stream), C.int(v)))
}

// Pending is the number of operations queued or running on a stream.
func (k *Fake) Pending(dev int, stream uint64) int {
	return int(C.fk_stream_pending(k.f, C.int(dev), C.uintptr_t(stream)))
}

// SetCapturing sets the CUstreamCaptureStatus the stream reports.
func (k *Fake) SetCapturing(dev int, stream uint64, status int) error {
	return errOf("set capturing", C.fk_set_capturing(k.f, C.int(dev), C.uintptr_t(stream), C.int(status)))
}

// EnqueueFill enqueues user work that fills [p, p+n) with val on a stream.
func (k *Fake) EnqueueFill(dev int, stream, p, n uint64, val byte) error {
	return errOf("enqueue fill", C.fk_enqueue_fill(k.f, C.int(dev), C.uintptr_t(stream), C.ulonglong(p), C.size_t(n), C.int(val)))
}

// PlantBeforeVerify stores val at addr right before the next verification kernel runs.
func (k *Fake) PlantBeforeVerify(addr uint64, val byte) {
	C.fk_plant(k.f, C.ulonglong(addr), C.int(val))
}

// SetUnified turns the fake's unified addressing on (the default) or off:
// off, kernels cannot reach pinned host memory and the device attributes
// CAN_MAP_HOST_MEMORY and UNIFIED_ADDRESSING read 0. Reset turns it on.
func (k *Fake) SetUnified(on bool) {
	v := 0
	if on {
		v = 1
	}
	C.fk_set_unified(k.f, C.int(v))
}

// PushPrimary makes dev's primary context current on the calling OS thread.
func (k *Fake) PushPrimary(dev int) error { return errOf("push", C.fk_push_primary(k.f, C.int(dev))) }

// Pop pops the calling thread's current context.
func (k *Fake) Pop() error { return errOf("pop", C.fk_pop(k.f)) }

// CtxDepth is the calling thread's context stack depth.
func (k *Fake) CtxDepth() int { return int(C.fk_ctx_depth(k.f)) }

// Sticky is the sticky error of dev's primary context (0: none).
func (k *Fake) Sticky(dev int) int { return int(C.fk_sticky(k.f, C.int(dev))) }
