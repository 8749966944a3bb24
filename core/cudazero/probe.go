package cudazero

/*
#include "shim.h"
#include <stdlib.h>
#include <time.h>

static kvh_CUresult kvhcu_q_cur(const kvh_cu *c, kvh_CUcontext *x) { return c->CtxGetCurrent(x); }
static kvh_CUresult kvhcu_q_push(const kvh_cu *c, kvh_CUcontext x) { return c->CtxPushCurrent(x); }
static kvh_CUresult kvhcu_q_pop(const kvh_cu *c) { kvh_CUcontext x; return c->CtxPopCurrent(&x); }
static kvh_CUresult kvhcu_q_dev(const kvh_cu *c, kvh_CUdevice *d) { return c->CtxGetDevice(d); }
static kvh_CUresult kvhcu_q_h2d(const kvh_cu *c, kvh_CUdeviceptr d, const void *h, size_t n, uintptr_t s) { return c->MemcpyHtoDAsync(d, h, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_q_d2h(const kvh_cu *c, void *h, kvh_CUdeviceptr d, size_t n, uintptr_t s) { return c->MemcpyDtoHAsync(h, d, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_q_d32(const kvh_cu *c, kvh_CUdeviceptr p, size_t n, uintptr_t s) { return c->MemsetD32Async(p, 0, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_q_record(const kvh_cu *c, kvh_CUevent e, uintptr_t s) { return c->EventRecord(e, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_q_sync(const kvh_cu *c, kvh_CUevent e) { return c->EventSynchronize(e); }
static kvh_CUresult kvhcu_q_ecreate(const kvh_cu *c, kvh_CUevent *e) { return c->EventCreate(e, 0x2); }
static void kvhcu_q_edestroy(const kvh_cu *c, kvh_CUevent e) { c->EventDestroy(e); }
static kvh_CUresult kvhcu_q_load(const kvh_cu *c, kvh_CUmodule *m, const char *img) { return c->ModuleLoadData(m, img); }
static kvh_CUresult kvhcu_q_fn(const kvh_cu *c, kvh_CUfunction *f, kvh_CUmodule m, const char *name) { return c->ModuleGetFunction(f, m, name); }

static long long kvhcu_q_now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1000000000LL + ts.tv_nsec; }
// One small memset and an event record, each run sleep_ns after the previous
// run's work completed (0: back to back), timed around the two enqueue calls;
// then, as a control with no driver at all, 1024 cache-line writes timed the
// same way.
static kvh_CUresult kvhcu_q_idle(const kvh_cu *c, kvh_CUdeviceptr p, uintptr_t s, kvh_CUevent e, long long sleep_ns, int runs, double *enq_ns, double *cpu_ns) {
  static volatile unsigned char buf[1024 * 64];
  struct timespec ts = {0, sleep_ns};
  for (int i = 0; i < runs; i++) {
    if (sleep_ns > 0) nanosleep(&ts, NULL);
    long long t0 = kvhcu_q_now();
    kvh_CUresult r = c->MemsetD8Async(p, 0, 4096, (kvh_CUstream)s);
    if (r == 0) r = c->EventRecord(e, (kvh_CUstream)s);
    long long t1 = kvhcu_q_now();
    if (r == 0) r = c->EventSynchronize(e);
    if (r != 0) return r;
    enq_ns[i] = (double)(t1 - t0);
  }
  for (int i = 0; i < runs; i++) {
    if (sleep_ns > 0) nanosleep(&ts, NULL);
    long long t0 = kvhcu_q_now();
    for (int j = 0; j < (int)sizeof buf; j += 64) buf[j]++;
    cpu_ns[i] = (double)(kvhcu_q_now() - t0);
  }
  return 0;
}

static kvh_CUresult kvhcu_q_launch(const kvh_cu *c, kvh_CUfunction f, uintptr_t s, void *arg) {
  void *params[1] = {arg};
  return c->LaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, (kvh_CUstream)s, params, NULL);
}
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// Host-cost probe for the real-GPU benchmarks (gpu_real_test.go): it times
// each driver call of the pool-release enqueue sequence on its own. Not used
// by the library itself; it lives outside the _test files only because cgo
// cannot be used there.

// probePTX: two empty kernels, one with an 8-byte parameter and one with a
// 4000-byte parameter, to price parameter bytes in cuLaunchKernel.
const probePTX = `
.version 7.0
.target sm_50
.address_size 64
.visible .entry kvh_probe_small(.param .u64 a) { ret; }
.visible .entry kvh_probe_big(.param .align 8 .b8 a[4000]) { ret; }
`

// probeSteps times, per run, every step of a pool release with verification
// (in one context pushed once, so the push itself is not included). fused
// false is the earlier sequence: the table copied with cuMemcpyHtoDAsync,
// kvh_pool_zero then kvh_pool_verify, the count copied back with
// cuMemcpyDtoHAsync. fused true is ZeroPoolAsync's: the table read from
// pinned host memory, one kvh_pool_zero_verify that publishes the count
// itself. idle > 0 sleeps that long before each run. It returns the step
// names in order and the per-run nanoseconds of each.
func (d *Driver) probeSteps(ordinal int, stream uint64, regions []PoolRegion, blocks []uint32, fused bool, runs int, idle time.Duration) ([]string, [][]float64, error) {
	mapped := fused
	l, err := layoutFor(regions, blocks)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	var xs [][]float64
	err = d.withContext(ordinal, func(ctx C.kvh_CUcontext) error {
		cs, err := d.state(ctx, ordinal)
		if err != nil {
			return err
		}
		st := C.uintptr_t(stream)
		for run := 0; run < runs; run++ {
			if idle > 0 {
				time.Sleep(idle)
			}
			i := 0
			t := C.kvhcu_q_now()
			mark := func(name string) {
				now := C.kvhcu_q_now()
				if run == 0 {
					names = append(names, name)
					xs = append(xs, nil)
				}
				xs[i] = append(xs[i], float64(now-t))
				i++
				t = C.kvhcu_q_now()
			}
			var cur C.kvh_CUcontext
			C.kvhcu_q_cur(d.cu, &cur)
			mark("cuCtxGetCurrent")
			var dev C.kvh_CUdevice
			C.kvhcu_q_dev(d.cu, &dev)
			mark("cuCtxGetDevice")
			if err := d.checkStream(stream); err != nil {
				return err
			}
			mark("cuStreamIsCapturing")
			regOff, idsOff, need := poolStaging(len(regions), len(blocks))
			s, err := cs.get(d, need)
			if err != nil {
				return err
			}
			mark("slot get")
			if err := stagePool(s, l, blocks); err != nil {
				return err
			}
			mark("fill pinned table")
			base := s.dev
			if mapped {
				base = C.kvh_CUdeviceptr(uintptr(s.host))
			} else {
				if err := d.check("h2d", C.kvhcu_q_h2d(d.cu, s.dev, s.host, C.size_t(need), st)); err != nil {
					return err
				}
				mark("cuMemcpyHtoDAsync table")
			}
			regs, ids := base+C.kvh_CUdeviceptr(regOff), base+C.kvh_CUdeviceptr(idsOff)
			nr, nb := C.uint(len(regions)), C.uint(len(blocks))
			nchunk := C.uint((regions[0].BlockBytes + chunkBytes - 1) / chunkBytes)
			grid := C.uint(cs.grid)
			if fused {
				if !s.counterZero {
					if err := d.check("memset", C.kvhcu_q_d32(d.cu, s.dev, 4, st)); err != nil {
						return err
					}
					s.counterZero = true
				}
				if err := d.check("launch zero+verify", C.kvhcu_pool_launch(d.cu, cs.poolZeroVerifyFn, grid, blockDim, st, regs, nr, ids, nb, nchunk, s.dev, C.kvh_CUdeviceptr(uintptr(s.host)))); err != nil {
					return err
				}
				mark("cuLaunchKernel pool_zero_verify")
			} else {
				if err := d.check("launch zero", C.kvhcu_pool_launch(d.cu, cs.poolZeroFn, grid, blockDim, st, regs, nr, ids, nb, nchunk, 0, 0)); err != nil {
					return err
				}
				mark("cuLaunchKernel pool_zero")
				if err := d.check("launch verify", C.kvhcu_pool_launch(d.cu, cs.poolVerifyFn, grid, blockDim, st, regs, nr, ids, nb, nchunk, s.dev, 0)); err != nil {
					return err
				}
				mark("cuLaunchKernel pool_verify")
				if err := d.check("d2h", C.kvhcu_q_d2h(d.cu, s.host, s.dev, 8, st)); err != nil {
					return err
				}
				mark("cuMemcpyDtoHAsync count")
			}
			if err := d.check("record", C.kvhcu_q_record(d.cu, s.event, st)); err != nil {
				return err
			}
			mark("cuEventRecord")
			if err := d.check("sync", C.kvhcu_q_sync(d.cu, s.event)); err != nil {
				return err
			}
			mark("cuEventSynchronize (device work left)")
			if n := *(*uint64)(s.host); n != 0 {
				return fmt.Errorf("probe: %d non-zero bytes after the pool release", n)
			}
			if !fused {
				s.counterZero = false
			}
			cs.put(s)
		}
		return nil
	})
	return names, xs, err
}

// probeParams returns the per-launch host nanoseconds of an empty kernel with
// an 8-byte and with a 4000-byte parameter.
func (d *Driver) probeParams(ordinal int, stream uint64, runs int) (small, big []float64, err error) {
	err = d.withContext(ordinal, func(ctx C.kvh_CUcontext) error {
		img := C.CString(probePTX)
		defer C.free(unsafe.Pointer(img))
		var mod C.kvh_CUmodule
		if err := d.check("cuModuleLoadData(probe)", C.kvhcu_q_load(d.cu, &mod, img)); err != nil {
			return err
		}
		var fs, fb C.kvh_CUfunction
		for _, k := range []struct {
			n string
			f *C.kvh_CUfunction
		}{{"kvh_probe_small", &fs}, {"kvh_probe_big", &fb}} {
			cn := C.CString(k.n)
			rc := C.kvhcu_q_fn(d.cu, k.f, mod, cn)
			C.free(unsafe.Pointer(cn))
			if err := d.check("cuModuleGetFunction", rc); err != nil {
				return err
			}
		}
		buf := (*[4000]byte)(C.malloc(4000))
		defer C.free(unsafe.Pointer(buf))
		var ev C.kvh_CUevent
		if err := d.check("cuEventCreate", C.kvhcu_q_ecreate(d.cu, &ev)); err != nil {
			return err
		}
		defer C.kvhcu_q_edestroy(d.cu, ev)
		st := C.uintptr_t(stream)
		for run := 0; run < runs; run++ {
			for k, f := range []C.kvh_CUfunction{fs, fb} {
				t := C.kvhcu_q_now()
				if err := d.check("launch probe", C.kvhcu_q_launch(d.cu, f, st, unsafe.Pointer(buf))); err != nil {
					return err
				}
				el := float64(C.kvhcu_q_now() - t)
				if k == 0 {
					small = append(small, el)
				} else {
					big = append(big, el)
				}
				C.kvhcu_q_record(d.cu, ev, st)
				C.kvhcu_q_sync(d.cu, ev)
			}
		}
		return nil
	})
	return small, big, err
}

// probeIdle times one 4 KiB cuMemsetD8Async plus cuEventRecord, and a
// driverless control (1024 cache-line writes), back to back and 2 ms after
// the previous run: what an idle host thread costs any caller on this
// machine, whatever library it calls.
func (d *Driver) probeIdle(ordinal int, stream uint64, p uint64, runs int) (enq, cpu [2][]float64, err error) {
	err = d.withContext(ordinal, func(ctx C.kvh_CUcontext) error {
		var ev C.kvh_CUevent
		if err := d.check("cuEventCreate", C.kvhcu_q_ecreate(d.cu, &ev)); err != nil {
			return err
		}
		defer C.kvhcu_q_edestroy(d.cu, ev)
		for i, sleep := range []int64{0, 2e6} {
			enq[i], cpu[i] = make([]float64, runs), make([]float64, runs)
			if err := d.check("probe idle", C.kvhcu_q_idle(d.cu, C.kvh_CUdeviceptr(p), C.uintptr_t(stream), ev, C.longlong(sleep), C.int(runs), (*C.double)(&enq[i][0]), (*C.double)(&cpu[i][0]))); err != nil {
				return err
			}
		}
		return nil
	})
	return enq, cpu, err
}

// probePush makes device ordinal's primary context current on the calling
// (locked) OS thread, as an engine's thread has it; pop undoes it.
func (d *Driver) probePush(ordinal int) (pop func(), err error) {
	dev, err := d.device(ordinal)
	if err != nil {
		return nil, err
	}
	prim, err := d.primaryContext(ordinal, dev)
	if err != nil {
		return nil, err
	}
	if err := d.check("cuCtxPushCurrent", C.kvhcu_q_push(d.cu, prim)); err != nil {
		return nil, err
	}
	return func() { C.kvhcu_q_pop(d.cu) }, nil
}
