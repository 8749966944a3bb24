package cudazero

/*
#include "shim.h"

static kvh_CUresult kvhcu_m_alloc(const kvh_cu *c, kvh_CUdeviceptr *p, size_t n) { return c->MemAlloc(p, n); }
static kvh_CUresult kvhcu_m_free(const kvh_cu *c, kvh_CUdeviceptr p) { return c->MemFree(p); }
static kvh_CUresult kvhcu_m_halloc(const kvh_cu *c, void **p, size_t n) { return c->MemAllocHost(p, n); }
static kvh_CUresult kvhcu_m_hfree(const kvh_cu *c, void *p) { return c->MemFreeHost(p); }
static kvh_CUresult kvhcu_m_fill(const kvh_cu *c, kvh_CUdeviceptr p, unsigned char v, size_t n, uintptr_t s) { return c->MemsetD8Async(p, v, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_m_fill_many(const kvh_cu *c, const unsigned long long *p, const unsigned long long *n, size_t k, uintptr_t s) {
  for (size_t i = 0; i < k; i++) {
    kvh_CUresult r = c->MemsetD8Async((kvh_CUdeviceptr)p[i], 0, (size_t)n[i], (kvh_CUstream)s);
    if (r != 0) return r;
  }
  return 0;
}
static kvh_CUresult kvhcu_m_h2d(const kvh_cu *c, kvh_CUdeviceptr d, const void *h, size_t n, uintptr_t s) { return c->MemcpyHtoDAsync(d, h, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_m_d2h(const kvh_cu *c, void *h, kvh_CUdeviceptr d, size_t n, uintptr_t s) { return c->MemcpyDtoHAsync(h, d, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_m_sync(const kvh_cu *c, uintptr_t s) {
  kvh_CUevent e;
  kvh_CUresult r = c->EventCreate(&e, 0x2);
  if (r != 0) return r;
  r = c->EventRecord(e, (kvh_CUstream)s);
  if (r == 0) r = c->EventSynchronize(e);
  c->EventDestroy(e);
  return r;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Device-memory helpers for the real-GPU tests and benchmarks (cudazero never
// allocates caller memory itself). All run in the device's context.

func (d *Driver) memAlloc(ordinal int, n uint64) (p uint64, err error) {
	err = d.withContext(ordinal, func(C.kvh_CUcontext) error {
		var dp C.kvh_CUdeviceptr
		if err := d.check(fmt.Sprintf("cuMemAlloc(%d)", n), C.kvhcu_m_alloc(d.cu, &dp, C.size_t(n))); err != nil {
			return err
		}
		p = uint64(dp)
		return nil
	})
	return p, err
}

func (d *Driver) memFree(ordinal int, p uint64) error {
	return d.withContext(ordinal, func(C.kvh_CUcontext) error {
		return d.check("cuMemFree", C.kvhcu_m_free(d.cu, C.kvh_CUdeviceptr(p)))
	})
}

// fillAsync is cuMemsetD8Async with a value (the engine's own work in tests).
func (d *Driver) fillAsync(ordinal int, stream, p, n uint64, v byte) error {
	return d.withContext(ordinal, func(C.kvh_CUcontext) error {
		return d.check("cuMemsetD8Async", C.kvhcu_m_fill(d.cu, C.kvh_CUdeviceptr(p), C.uchar(v), C.size_t(n), C.uintptr_t(stream)))
	})
}

// fillMany enqueues one cuMemsetD8Async(0) per range from a C loop: the
// baseline "one memset per block" an engine would issue.
func (d *Driver) fillMany(ordinal int, stream uint64, rs []Range) error {
	if len(rs) == 0 {
		return nil
	}
	ps := make([]C.ulonglong, len(rs))
	ns := make([]C.ulonglong, len(rs))
	for i, r := range rs {
		ps[i], ns[i] = C.ulonglong(r.Ptr), C.ulonglong(r.Len)
	}
	return d.withContext(ordinal, func(C.kvh_CUcontext) error {
		return d.check("cuMemsetD8Async", C.kvhcu_m_fill_many(d.cu, &ps[0], &ns[0], C.size_t(len(rs)), C.uintptr_t(stream)))
	})
}

// syncStream records an event on stream and waits for it.
func (d *Driver) syncStream(ordinal int, stream uint64) error {
	return d.withContext(ordinal, func(C.kvh_CUcontext) error {
		return d.check("sync stream", C.kvhcu_m_sync(d.cu, C.uintptr_t(stream)))
	})
}

// copyIn / copyOut move bytes between a Go slice and device memory through a
// pinned staging buffer, synchronously (legacy default stream).
func (d *Driver) copyIn(ordinal int, p uint64, b []byte) error {
	return d.stage(ordinal, uint64(len(b)), func(h []byte) error {
		copy(h, b)
		return d.check("cuMemcpyHtoDAsync", C.kvhcu_m_h2d(d.cu, C.kvh_CUdeviceptr(p), unsafe.Pointer(&h[0]), C.size_t(len(b)), 0))
	})
}

func (d *Driver) copyOut(ordinal int, p uint64, b []byte) error {
	return d.stage(ordinal, uint64(len(b)), func(h []byte) error {
		if err := d.check("cuMemcpyDtoHAsync", C.kvhcu_m_d2h(d.cu, unsafe.Pointer(&h[0]), C.kvh_CUdeviceptr(p), C.size_t(len(b)), 0)); err != nil {
			return err
		}
		if err := d.check("sync", C.kvhcu_m_sync(d.cu, 0)); err != nil {
			return err
		}
		copy(b, h)
		return nil
	})
}

func (d *Driver) stage(ordinal int, n uint64, f func(h []byte) error) error {
	if n == 0 {
		return nil
	}
	return d.withContext(ordinal, func(C.kvh_CUcontext) error {
		var hp unsafe.Pointer
		if err := d.check("cuMemAllocHost", C.kvhcu_m_halloc(d.cu, &hp, C.size_t(n))); err != nil {
			return err
		}
		defer C.kvhcu_m_hfree(d.cu, hp)
		if err := f(unsafe.Slice((*byte)(hp), n)); err != nil {
			return err
		}
		return d.check("sync", C.kvhcu_m_sync(d.cu, 0))
	})
}
