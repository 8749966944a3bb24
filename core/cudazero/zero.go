package cudazero

/*
#include "shim.h"
#include <stdlib.h>

static kvh_CUresult kvhcu_z_ptr_attrs(const kvh_cu *c, kvh_CUdeviceptr p, unsigned int *mt, int *ord, kvh_CUdeviceptr *st, size_t *sz) { return kvhcu_ptr_attrs(c, p, mt, ord, st, sz); }
static kvh_CUresult kvhcu_z_load(const kvh_cu *c, kvh_CUmodule *m, const char *img) { return c->ModuleLoadData(m, img); }
static kvh_CUresult kvhcu_z_fn(const kvh_cu *c, kvh_CUfunction *f, kvh_CUmodule m, const char *name) { return c->ModuleGetFunction(f, m, name); }
static kvh_CUresult kvhcu_z_attr(const kvh_cu *c, int *v, int a, kvh_CUdevice d) { return c->DeviceGetAttribute(v, a, d); }
static kvh_CUresult kvhcu_z_dev(const kvh_cu *c, kvh_CUdevice *d, int o) { return c->DeviceGet(d, o); }
static kvh_CUresult kvhcu_z_halloc(const kvh_cu *c, void **p, size_t n) { return c->MemAllocHost(p, n); }
static kvh_CUresult kvhcu_z_hfree(const kvh_cu *c, void *p) { return c->MemFreeHost(p); }
static kvh_CUresult kvhcu_z_dalloc(const kvh_cu *c, kvh_CUdeviceptr *p, size_t n) { return c->MemAlloc(p, n); }
static kvh_CUresult kvhcu_z_dfree(const kvh_cu *c, kvh_CUdeviceptr p) { return c->MemFree(p); }
static kvh_CUresult kvhcu_z_ecreate(const kvh_cu *c, kvh_CUevent *e) { return c->EventCreate(e, 0x2); }
static kvh_CUresult kvhcu_z_d8(const kvh_cu *c, kvh_CUdeviceptr p, size_t n, uintptr_t s) { return c->MemsetD8Async(p, 0, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_z_d32(const kvh_cu *c, kvh_CUdeviceptr p, size_t n, uintptr_t s) { return c->MemsetD32Async(p, 0, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_z_h2d(const kvh_cu *c, kvh_CUdeviceptr d, const void *h, size_t n, uintptr_t s) { return c->MemcpyHtoDAsync(d, h, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_z_d2h(const kvh_cu *c, void *h, kvh_CUdeviceptr d, size_t n, uintptr_t s) { return c->MemcpyDtoHAsync(h, d, n, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_z_launch(const kvh_cu *c, kvh_CUfunction f, unsigned int grid, unsigned int block, uintptr_t s, kvh_CUdeviceptr table, unsigned int n, kvh_CUdeviceptr counter, kvh_CUdeviceptr result) { return kvhcu_launch(c, f, grid, block, (kvh_CUstream)s, table, n, counter, result); }
static kvh_CUresult kvhcu_z_erecord(const kvh_cu *c, kvh_CUevent e, uintptr_t s) { return c->EventRecord(e, (kvh_CUstream)s); }
static kvh_CUresult kvhcu_z_equery(const kvh_cu *c, kvh_CUevent e) { return c->EventQuery(e); }
static kvh_CUresult kvhcu_z_esync(const kvh_cu *c, kvh_CUevent e) { return c->EventSynchronize(e); }
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"unsafe"
)

// Range is a device byte range [Ptr, Ptr+Len).
type Range struct{ Ptr, Len uint64 }

const (
	memTypeDevice = 2 // CU_MEMORYTYPE_DEVICE
	attrSMCount   = 16
	cuInvalidVal  = 1 // CUDA_ERROR_INVALID_VALUE

	// chunkBytes splits long ranges into descriptors so that one kernel
	// launch spreads a big range over many CTAs. Splits fall on absolute
	// multiples of chunkBytes, so chunks stay 16-byte aligned.
	chunkBytes  = 64 << 10
	blockDim    = 256
	ctasPerSM   = 8
	headerBytes = 16 // u64 counter + pad in front of the descriptor table
	minSlotSize = 4096

	// mappedMax is the largest table the kernels read straight from pinned
	// host memory (unified addressing) instead of a device copy: a small
	// table saves the cuMemcpyHtoDAsync call; a large one is read once per
	// entry over the bus, which a copy does better.
	mappedMax = 64 << 10

	attrCanMapHost = 19 // CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY
	attrUnified    = 41 // CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING
)

func memTypeName(t uint32) string {
	switch t {
	case 0:
		return "not CUDA memory"
	case 1:
		return "CU_MEMORYTYPE_HOST"
	case 2:
		return "CU_MEMORYTYPE_DEVICE"
	case 3:
		return "CU_MEMORYTYPE_ARRAY"
	case 4:
		return "CU_MEMORYTYPE_UNIFIED"
	}
	return fmt.Sprintf("memory type %d", t)
}

type allocation struct{ start, end uint64 }

// ValidateRange checks with cuPointerGetAttributes that r is device memory
// (CU_MEMORYTYPE_DEVICE) of device ordinal and lies inside one allocation.
// Otherwise it returns an error wrapping ErrInvalidRange and no device work is
// done. A zero-length range is valid (nothing is ever written to it).
func (d *Driver) ValidateRange(ordinal int, r Range) error {
	if ordinal < 0 {
		return fmt.Errorf("%w: device ordinal %d is negative", ErrInvalidRange, ordinal)
	}
	if err := checkOverflow(r); err != nil {
		return err
	}
	if r.Len == 0 {
		return nil
	}
	return d.withContext(ordinal, func(C.kvh_CUcontext) error {
		_, err := d.validate(ordinal, r)
		return err
	})
}

func checkOverflow(r Range) error {
	if r.Ptr+r.Len < r.Ptr {
		return fmt.Errorf("%w: range %#x+%d overflows the address space", ErrInvalidRange, r.Ptr, r.Len)
	}
	if r.Ptr == 0 && r.Len != 0 {
		return fmt.Errorf("%w: NULL device pointer", ErrInvalidRange)
	}
	return nil
}

// validate queries the allocation holding r.Ptr; must run in a context.
func (d *Driver) validate(ordinal int, r Range) (allocation, error) {
	var mt C.uint
	var ord C.int
	var start C.kvh_CUdeviceptr
	var size C.size_t
	rc := C.kvhcu_z_ptr_attrs(d.cu, C.kvh_CUdeviceptr(r.Ptr), &mt, &ord, &start, &size)
	if rc != cuSuccess {
		err := d.check(fmt.Sprintf("cuPointerGetAttributes(%#x)", r.Ptr), rc)
		if rc == cuInvalidVal {
			return allocation{}, fmt.Errorf("%w: %v", ErrInvalidRange, err)
		}
		return allocation{}, err
	}
	if mt != memTypeDevice {
		return allocation{}, fmt.Errorf("%w: %#x+%d is not device memory (%s)", ErrInvalidRange, r.Ptr, r.Len, memTypeName(uint32(mt)))
	}
	if int(ord) != ordinal {
		return allocation{}, fmt.Errorf("%w: %#x+%d is memory of CUDA device %d, not of device %d", ErrInvalidRange, r.Ptr, r.Len, int(ord), ordinal)
	}
	a := allocation{start: uint64(start), end: uint64(start) + uint64(size)}
	if r.Ptr < a.start || r.Ptr+r.Len > a.end {
		return allocation{}, fmt.Errorf("%w: %#x+%d runs past the end of its allocation [%#x, %#x) by %d bytes", ErrInvalidRange, r.Ptr, r.Len, a.start, a.end, r.Ptr+r.Len-a.end)
	}
	return a, nil
}

// validator validates ranges, querying each allocation once per call: a range
// inside an allocation already seen is not queried again.
type validator struct {
	d       *Driver
	ordinal int
	seen    []allocation // sorted by start
	last    int
}

func (v *validator) check(r Range) error {
	if v.last >= 0 && r.Ptr >= v.seen[v.last].start && r.Ptr+r.Len <= v.seen[v.last].end {
		return nil
	}
	i := sort.Search(len(v.seen), func(i int) bool { return v.seen[i].end > r.Ptr })
	if i < len(v.seen) && r.Ptr >= v.seen[i].start && r.Ptr+r.Len <= v.seen[i].end {
		v.last = i
		return nil
	}
	a, err := v.d.validate(v.ordinal, r)
	if err != nil {
		return err
	}
	i = sort.Search(len(v.seen), func(i int) bool { return v.seen[i].start >= a.start })
	v.seen = append(v.seen, allocation{})
	copy(v.seen[i+1:], v.seen[i:])
	v.seen[i] = a
	v.last = i
	return nil
}

// ctxState is what cudazero keeps per CUDA context: the loaded module and a
// pool of reusable per-operation resources.
type ctxState struct {
	zeroFn, verifyFn         C.kvh_CUfunction
	poolZeroFn, poolVerifyFn C.kvh_CUfunction
	poolZeroVerifyFn         C.kvh_CUfunction
	grid                     int // CTAs to launch at most (SMs * ctasPerSM)
	// ordinal is the device the context belongs to: withContext trusts it
	// instead of asking cuCtxGetDevice on every call (a context never
	// changes device; the cache already assumes a context handle is not
	// reused for another context, since it holds that context's module).
	ordinal int
	// mapped: the device reaches pinned host memory at its host address
	// (unified addressing): the verify kernels publish their count there
	// themselves and small tables are not copied (see publishPTX in ptx.go).
	mapped bool

	mu      sync.Mutex
	free    []*slot
	pending []*slot // slots of Ops collected without Wait: reused once their event has completed
}

// slot is the resources of one in-flight operation: pinned host memory (the
// descriptor table on the way in, the non-zero count on the way out), device
// memory (the counter {u64 count, u32 done}, then a copy of the table when it
// is not read from host memory) and the completion event. A slot is reused
// only after Wait, so the pinned table is never rewritten while the device may
// still read it.
type slot struct {
	host    unsafe.Pointer
	hostCap uintptr
	dev     C.kvh_CUdeviceptr
	devCap  uintptr
	event   C.kvh_CUevent
	// counterZero: the device counter is known to be zero when the work
	// enqueued next runs (a publishing verify kernel leaves it zero; a table
	// copy writes zeros over it).
	counterZero bool
}

func (d *Driver) state(ctx C.kvh_CUcontext, ordinal int) (*ctxState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cs, ok := d.ctxs[ctx]; ok {
		return cs, nil
	}
	img := C.CString(kernelPTX)
	defer C.free(unsafe.Pointer(img))
	var mod C.kvh_CUmodule
	if err := d.check("cuModuleLoadData(kvhygiene PTX)", C.kvhcu_z_load(d.cu, &mod, img)); err != nil {
		return nil, err
	}
	cs := &ctxState{ordinal: ordinal}
	for _, k := range []struct {
		name string
		fn   *C.kvh_CUfunction
	}{{zeroKernel, &cs.zeroFn}, {verifyKernel, &cs.verifyFn}, {poolZeroKernel, &cs.poolZeroFn}, {poolVerifyKernel, &cs.poolVerifyFn}, {poolZeroVerifyKernel, &cs.poolZeroVerifyFn}} {
		cname := C.CString(k.name)
		rc := C.kvhcu_z_fn(d.cu, k.fn, mod, cname)
		C.free(unsafe.Pointer(cname))
		if err := d.check("cuModuleGetFunction("+k.name+")", rc); err != nil {
			return nil, err
		}
	}
	var dev C.kvh_CUdevice
	sms := C.int(1)
	if C.kvhcu_z_dev(d.cu, &dev, C.int(ordinal)) != cuSuccess || C.kvhcu_z_attr(d.cu, &sms, attrSMCount, dev) != cuSuccess || sms < 1 {
		sms = 1
	}
	cs.grid = int(sms) * ctasPerSM
	var uva, canMap C.int
	cs.mapped = C.kvhcu_z_attr(d.cu, &uva, attrUnified, dev) == cuSuccess && uva == 1 &&
		C.kvhcu_z_attr(d.cu, &canMap, attrCanMapHost, dev) == cuSuccess && canMap == 1
	d.ctxs[ctx] = cs
	return cs, nil
}

// get returns a slot whose buffers hold at least need bytes (need 0: event
// only). It runs in cs's context (withContext).
func (cs *ctxState) get(d *Driver, need uintptr) (*slot, error) {
	cs.mu.Lock()
	if len(cs.free) == 0 && len(cs.pending) > 0 {
		cs.reclaimLocked(d)
	}
	var s *slot
	if n := len(cs.free); n > 0 {
		s = cs.free[n-1]
		cs.free = cs.free[:n-1]
	}
	cs.mu.Unlock()
	if s == nil {
		s = &slot{}
		if err := d.check("cuEventCreate", C.kvhcu_z_ecreate(d.cu, &s.event)); err != nil {
			return nil, err
		}
	}
	if need > 0 && (s.hostCap < need || s.devCap < need) {
		size := uintptr(minSlotSize)
		for size < need {
			size *= 2
		}
		if s.hostCap < need {
			if s.host != nil {
				C.kvhcu_z_hfree(d.cu, s.host)
				s.host, s.hostCap = nil, 0
			}
			if err := d.check(fmt.Sprintf("cuMemAllocHost(%d)", size), C.kvhcu_z_halloc(d.cu, &s.host, C.size_t(size))); err != nil {
				cs.put(s)
				return nil, err
			}
			s.hostCap = size
		}
		if s.devCap < need {
			if s.dev != 0 {
				C.kvhcu_z_dfree(d.cu, s.dev)
				s.dev, s.devCap = 0, 0
			}
			if err := d.check(fmt.Sprintf("cuMemAlloc(%d)", size), C.kvhcu_z_dalloc(d.cu, &s.dev, C.size_t(size))); err != nil {
				cs.put(s)
				return nil, err
			}
			s.devCap = size
			s.counterZero = false
		}
	}
	return s, nil
}

// reclaimLocked moves the pending slots whose work has completed
// (cuEventQuery) to the free list. A slot whose event reports an error is
// dropped: its work failed and its buffers are in an unknown state.
func (cs *ctxState) reclaimLocked(d *Driver) {
	keep := cs.pending[:0]
	for _, s := range cs.pending {
		switch rc := C.kvhcu_z_equery(d.cu, s.event); rc {
		case cuSuccess:
			cs.free = append(cs.free, s)
		case cuNotReady:
			keep = append(keep, s)
		}
	}
	clear(cs.pending[len(keep):])
	cs.pending = keep
}

// reclaimArg is what an Op's cleanup needs; it must not reach the Op.
type reclaimArg struct {
	cs *ctxState
	s  *slot
}

// reclaimUnwaited runs when an Op that was never waited for is garbage
// collected: its slot may still be in use by the device, so it is parked
// until get finds its event completed.
func reclaimUnwaited(a reclaimArg) {
	a.cs.mu.Lock()
	a.cs.pending = append(a.cs.pending, a.s)
	a.cs.mu.Unlock()
}

func (cs *ctxState) put(s *slot) {
	cs.mu.Lock()
	cs.free = append(cs.free, s)
	cs.mu.Unlock()
}

// forMerged calls f for each range after dropping empty ranges and joining
// ranges that continue each other in the given order (block b and b+1 of one
// paged-cache region, for instance). It allocates nothing.
func forMerged(rs []Range, f func(Range) error) error {
	var cur Range
	for _, r := range rs {
		if r.Len == 0 {
			continue
		}
		if cur.Len != 0 && cur.Ptr+cur.Len == r.Ptr {
			cur.Len += r.Len
			continue
		}
		if cur.Len != 0 {
			if err := f(cur); err != nil {
				return err
			}
		}
		cur = r
	}
	if cur.Len != 0 {
		return f(cur)
	}
	return nil
}

// merge is forMerged collected into a slice.
func merge(rs []Range) []Range {
	out := make([]Range, 0, len(rs))
	_ = forMerged(rs, func(r Range) error { out = append(out, r); return nil })
	return out
}

// chunks is the number of descriptors r is split into.
func chunks(r Range) uint64 {
	first := r.Ptr / chunkBytes
	last := (r.Ptr + r.Len - 1) / chunkBytes
	return last - first + 1
}

// Op is one enqueued zeroization. Call Wait once it is no longer needed:
// Wait releases its resources. An Op dropped without Wait gives them back
// when the garbage collector finds it, and they are reused only after the
// device has finished the work.
type Op struct {
	d       *Driver
	ordinal int
	cs      *ctxState
	s       *slot
	verify  bool
	total   uint64
	cleanup runtime.Cleanup // reclaims s if the Op is dropped without Wait

	mu      sync.Mutex
	done    bool
	nonzero uint64
	err     error
}

// ZeroAsync zeroizes the ranges of device ordinal on stream (a CUstream as integer; 0 is
// the legacy default stream), in stream order after all work already
// enqueued there, without ever synchronizing the host:
//
//   - every range is first checked with cuPointerGetAttributes (device memory
//     of this device, inside one allocation; ErrInvalidRange otherwise) and the
//     stream with cuStreamIsCapturing (ErrCapturing) — nothing is enqueued if
//     any check fails;
//   - ranges that continue each other are merged; a single contiguous range is
//     zeroed with cuMemsetD32Async when 4-byte aligned in address and length,
//     else cuMemsetD8Async; several ranges with ONE launch of kvh_scatter_zero
//     over a descriptor table staged in pinned memory (read there by the
//     kernel when the device maps host memory and the table is at most 64
//     KiB, else copied with cuMemcpyHtoDAsync); doublePass repeats the
//     zeroing;
//   - with verify, ONE launch of kvh_verify_nonzero reads every byte back and
//     counts non-zero words into a device counter, which its last CTA stores
//     into pinned host memory (or, when the device cannot map host memory,
//     cuMemcpyDtoHAsync copies there); a single 16-byte-aligned range is
//     verified by kvh_pool_verify as a one-region pool instead (same count,
//     no per-chunk table);
//   - finally an event is recorded. Op.Ready polls it, Op.Wait synchronizes on
//     it and returns the count.
//
// The work runs in the calling thread's current context when it belongs to
// this device, else in the device's primary context (pushed and popped on a
// locked OS thread). The caller must keep the memory allocated until the Op
// has completed.
func (d *Driver) ZeroAsync(ordinal int, stream uint64, ranges []Range, verify, doublePass bool) (*Op, error) {
	return d.zeroAsync(ordinal, stream, ranges, true, verify, doublePass)
}

// zeroAsync is ZeroAsync; zero false only verifies (tests, benchmarks).
func (d *Driver) zeroAsync(ordinal int, stream uint64, ranges []Range, zero, verify, doublePass bool) (*Op, error) {
	if ordinal < 0 {
		return nil, fmt.Errorf("%w: device ordinal %d is negative", ErrInvalidRange, ordinal)
	}
	var total uint64
	for _, r := range ranges {
		if err := checkOverflow(r); err != nil {
			return nil, err
		}
		total += r.Len
	}
	op := &Op{d: d, ordinal: ordinal, verify: verify, total: total}
	err := d.withContext(ordinal, func(ctx C.kvh_CUcontext) error {
		if err := d.checkStream(stream); err != nil {
			return err
		}
		// One pass: validate, count merged ranges and descriptors.
		v := validator{d: d, ordinal: ordinal, last: -1}
		var p plan
		if err := forMerged(ranges, func(r Range) error {
			if err := v.check(r); err != nil {
				return err
			}
			if p.merged == 0 {
				p.first = r
			}
			p.merged++
			p.ndesc += chunks(r)
			return nil
		}); err != nil {
			return err
		}
		if p.merged == 0 {
			op.done = true
			return nil
		}
		cs, err := d.state(ctx, ordinal)
		if err != nil {
			return err
		}
		op.cs = cs
		return op.enqueue(stream, ranges, p, zero, doublePass)
	})
	if err != nil {
		return nil, err
	}
	return op, nil
}

// plan is what the validation pass learned about the merged ranges.
type plan struct {
	merged int
	first  Range // the merged range when merged == 1
	ndesc  uint64
}

func (op *Op) enqueue(stream uint64, ranges []Range, p plan, zero, doublePass bool) error {
	d, cs := op.d, op.cs
	st := C.uintptr_t(stream)
	if op.verify && p.merged == 1 && p.first.Ptr%16 == 0 {
		return op.enqueueContiguous(st, p.first, zero, doublePass)
	}
	useTable := op.verify || p.merged > 1
	ndesc := p.ndesc
	if useTable {
		if ndesc > 1<<31 {
			return fmt.Errorf("%w: %d descriptors in one call (max %d)", ErrInvalidRange, ndesc, uint64(1)<<31)
		}
	}
	need := uintptr(0)
	if useTable {
		need = headerBytes + uintptr(ndesc)*16
	}
	s, err := cs.get(d, need)
	if err != nil {
		return err
	}
	// From here on an error leaves work possibly in flight that reads the
	// slot's buffers: the slot is abandoned (leaked), never reused.
	passes := 1
	if doublePass {
		passes = 2
	}
	if !zero {
		passes = 0
	}
	grid := 0
	var table C.kvh_CUdeviceptr
	if useTable {
		tab := unsafe.Slice((*uint64)(s.host), need/8)
		tab[0], tab[1] = 0, 0
		i := 2
		_ = forMerged(ranges, func(r Range) error {
			a, end := r.Ptr, r.Ptr+r.Len
			for a < end {
				next := (a/chunkBytes + 1) * chunkBytes
				if next > end || next < a {
					next = end
				}
				tab[i], tab[i+1] = a, next-a
				i += 2
				a = next
			}
			return nil
		})
		base, err := op.placeTable(s, need, st, "descriptor table")
		if err != nil {
			return err
		}
		table = base + headerBytes
		grid = cs.grid
		if uint64(grid) > ndesc {
			grid = int(ndesc)
		}
	}
	for pass := 0; pass < passes; pass++ {
		if p.merged == 1 {
			err = op.memset(p.first, st)
		} else {
			err = d.check("cuLaunchKernel("+zeroKernel+")", C.kvhcu_z_launch(d.cu, cs.zeroFn, C.uint(grid), blockDim, st, table, C.uint(ndesc), 0, 0))
		}
		if err != nil {
			return err
		}
	}
	if op.verify {
		ctr, result, err := op.counter(s, st)
		if err != nil {
			return err
		}
		if err := d.check("cuLaunchKernel("+verifyKernel+")", C.kvhcu_z_launch(d.cu, cs.verifyFn, C.uint(grid), blockDim, st, table, C.uint(ndesc), ctr, result)); err != nil {
			return err
		}
	}
	return op.finishEnqueue(s, st)
}

// enqueueContiguous zeroizes one 16-byte-aligned range with memset and
// verifies it with kvh_pool_verify over a one-region, one-block pool
// {Ptr, 0, Len}: the kernel splits the range into 64 KiB chunks itself, so
// the host stages 44 bytes whatever the size instead of one descriptor per
// chunk. With an aligned start the chunks are those of the descriptor path
// and the count is the same.
func (op *Op) enqueueContiguous(st C.uintptr_t, r Range, zero, doublePass bool) error {
	d, cs := op.d, op.cs
	l, ids := PoolLayout{numBlocks: 1, nregions: 1, table: []uint64{r.Ptr, 0, r.Len}}, [1]uint32{}
	regOff, idsOff, need := poolStaging(1, 1)
	s, err := cs.get(d, need)
	if err != nil {
		return err
	}
	// From here on an error may leave work in flight: the slot is abandoned.
	_ = stagePool(s, &l, ids[:]) // block 0 of a one-block layout: never out of range
	passes := 0
	if zero {
		passes = 1
		if doublePass {
			passes = 2
		}
	}
	for pass := 0; pass < passes; pass++ {
		if err := op.memset(r, st); err != nil {
			return err
		}
	}
	base, err := op.placeTable(s, need, st, "region table")
	if err != nil {
		return err
	}
	ctr, result, err := op.counter(s, st)
	if err != nil {
		return err
	}
	nchunk := (r.Len + chunkBytes - 1) / chunkBytes
	if nchunk > math.MaxUint32 {
		return fmt.Errorf("%w: range of %d bytes is too large", ErrInvalidRange, r.Len)
	}
	grid := min(uint64(cs.grid), nchunk)
	return op.launchPool(poolVerifyKernel, cs.poolVerifyFn, s, st, grid, base+C.kvh_CUdeviceptr(regOff), 1, base+C.kvh_CUdeviceptr(idsOff), 1, uint32(nchunk), ctr, result)
}

// memset zeroes one range with cuMemsetD32Async when it is 4-byte aligned in
// address and length, else cuMemsetD8Async.
func (op *Op) memset(r Range, st C.uintptr_t) error {
	d := op.d
	if r.Ptr%4 == 0 && r.Len%4 == 0 {
		return d.check("cuMemsetD32Async", C.kvhcu_z_d32(d.cu, C.kvh_CUdeviceptr(r.Ptr), C.size_t(r.Len/4), st))
	}
	return d.check("cuMemsetD8Async", C.kvhcu_z_d8(d.cu, C.kvh_CUdeviceptr(r.Ptr), C.size_t(r.Len), st))
}

// placeTable returns where the kernels read the table staged in
// s.host[:need] (header included): the pinned host memory itself when the
// device maps it and the table is small (no copy, no driver call), else a
// device copy made with one cuMemcpyHtoDAsync, which also writes zeros over
// the device counter.
func (op *Op) placeTable(s *slot, need uintptr, st C.uintptr_t, what string) (C.kvh_CUdeviceptr, error) {
	if op.cs.mapped && need <= mappedMax {
		return C.kvh_CUdeviceptr(uintptr(s.host)), nil
	}
	if err := op.d.check("cuMemcpyHtoDAsync("+what+")", C.kvhcu_z_h2d(op.d.cu, s.dev, s.host, C.size_t(need), st)); err != nil {
		return 0, err
	}
	s.counterZero = true
	return s.dev, nil
}

// counter prepares the slot's device counter for one verify launch and
// returns it with the address the kernel publishes the final count to: the
// slot's pinned header when the device maps host memory (the last CTA writes
// the count there and zeroes the counter again), else 0 and finishEnqueue
// copies the counter with cuMemcpyDtoHAsync. A counter in an unknown state is
// zeroed first, in stream order.
func (op *Op) counter(s *slot, st C.uintptr_t) (ctr, result C.kvh_CUdeviceptr, err error) {
	if !s.counterZero {
		if err := op.d.check("cuMemsetD32Async(verify counter)", C.kvhcu_z_d32(op.d.cu, s.dev, headerBytes/4, st)); err != nil {
			return 0, 0, err
		}
	}
	s.counterZero = op.cs.mapped
	if op.cs.mapped {
		result = C.kvh_CUdeviceptr(uintptr(s.host))
	}
	return s.dev, result, nil
}

// finishEnqueue is the common tail of every enqueue: with verification, the
// asynchronous copy of the non-zero count to pinned host memory, then the
// event that Ready and Wait use. Nothing here synchronizes.
func (op *Op) finishEnqueue(s *slot, st C.uintptr_t) error {
	d := op.d
	if op.verify && !op.cs.mapped {
		if err := d.check("cuMemcpyDtoHAsync(non-zero count)", C.kvhcu_z_d2h(d.cu, s.host, s.dev, 8, st)); err != nil {
			return err
		}
	}
	if err := d.check("cuEventRecord", C.kvhcu_z_erecord(d.cu, s.event, st)); err != nil {
		return err
	}
	op.s = s
	op.cleanup = runtime.AddCleanup(op, reclaimUnwaited, reclaimArg{cs: op.cs, s: s})
	return nil
}

// Ready reports whether the work has completed (cuEventQuery) without
// blocking. An error is a failure of the work (e.g. CUDA_ERROR_ILLEGAL_ADDRESS).
func (op *Op) Ready() (bool, error) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.done {
		return true, op.err
	}
	ready := false
	err := op.d.withContext(op.ordinal, func(C.kvh_CUcontext) error {
		rc := C.kvhcu_z_equery(op.d.cu, op.s.event)
		if rc == cuNotReady {
			return nil
		}
		if err := op.d.check("cuEventQuery", rc); err != nil {
			return err
		}
		ready = true
		return nil
	})
	return ready, err
}

// Wait blocks until the work has completed (cuEventSynchronize), reads the
// verification result and releases the operation's resources. nonzeroBytes is
// 0 when every verified byte is zero; otherwise it is an upper bound of the
// non-zero bytes: 4 per non-zero aligned 4-byte word, 1 per non-zero
// unaligned head/tail byte, capped at the total length of the ranges. Without
// verify nothing was read back and nonzeroBytes is 0. Later calls return the
// same result.
func (op *Op) Wait() (nonzeroBytes uint64, err error) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.done {
		return op.nonzero, op.err
	}
	op.done = true
	op.cleanup.Stop() // the slot is released (or abandoned) here
	err = op.d.withContext(op.ordinal, func(C.kvh_CUcontext) error {
		return op.d.check("cuEventSynchronize", C.kvhcu_z_esync(op.d.cu, op.s.event))
	})
	if err != nil {
		// The work failed; its resources may be in an unknown state: abandon them.
		op.err = err
		return 0, err
	}
	if op.verify {
		n := *(*uint64)(op.s.host)
		if n > op.total {
			n = op.total
		}
		op.nonzero = n
	}
	op.cs.put(op.s)
	op.s = nil
	return op.nonzero, nil
}
