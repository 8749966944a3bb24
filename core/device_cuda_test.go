package core

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
	"github.com/kvhygiene/kvhygiene/core/cudazero"
	"github.com/stretchr/testify/require"
)

// fakeCUDA stands in for the driver: "device memory" is host memory, and
// the zeroization happens when the op is waited for (so an async sanitize
// really is outstanding until Wait).
type fakeCUDA struct {
	mu          sync.Mutex
	validateErr error
	zeroErr     error
	waitErr     error
	dirty       bool   // leave one byte set in the first range
	dirtyPtr    uint64 // leave one byte set in the range starting here
	launches    int
	lastRanges  []cudazero.Range
	lastStream  uint64
	poolCalls   int // ZeroPoolAsync calls (each is one zero + one verify launch)
	lastBlocks  []uint32
	lastVerify  bool
	captureErr  error // returned by CheckStreamOn
	checkedOn   []int // ordinals CheckStreamOn was called with
}

type fakeOp struct {
	f      *fakeCUDA
	ranges []cudazero.Range
	verify bool
}

func (f *fakeCUDA) ValidateRange(o int, r cudazero.Range) error { return f.validateErr }
func (f *fakeCUDA) CheckStreamOn(o int, s uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkedOn = append(f.checkedOn, o)
	return f.captureErr
}
func (f *fakeCUDA) DeviceUUID(o int) (string, error) { return fmt.Sprintf("GPU-fake-%d", o), nil }
func (f *fakeCUDA) ZeroAsync(o int, s uint64, rs []cudazero.Range, verify, dp bool) (cudaOp, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.zeroErr != nil {
		return nil, f.zeroErr
	}
	f.launches++
	f.lastRanges = append([]cudazero.Range(nil), rs...)
	f.lastStream = s
	return &fakeOp{f: f, ranges: f.lastRanges, verify: verify}, nil
}

// ZeroPoolAsync expands the pool shape into ranges (region-major, as the
// kernel's work items are ordered) so Wait zeroizes exactly those bytes.
func (f *fakeCUDA) ZeroPoolAsync(o int, s uint64, l *cudazero.PoolLayout, blocks []uint32, verify bool) (cudaOp, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.zeroErr != nil {
		return nil, f.zeroErr
	}
	f.launches++
	f.poolCalls++
	f.lastBlocks = append([]uint32(nil), blocks...)
	f.lastVerify = verify
	f.lastRanges = f.lastRanges[:0]
	for _, r := range l.Regions() {
		for _, b := range blocks {
			f.lastRanges = append(f.lastRanges, cudazero.Range{Ptr: r.Base + uint64(b)*r.Stride, Len: r.BlockBytes})
		}
	}
	f.lastStream = s
	return &fakeOp{f: f, ranges: append([]cudazero.Range(nil), f.lastRanges...), verify: verify}, nil
}

func (op *fakeOp) Wait() (uint64, error) {
	if op.f.waitErr != nil {
		return 0, op.f.waitErr
	}
	var nz uint64
	for i, r := range op.ranges {
		b := unsafe.Slice((*byte)(cpuzero.Ptr(uintptr(r.Ptr))), r.Len)
		clear(b)
		if (op.f.dirty && i == 0) || (op.f.dirtyPtr != 0 && r.Ptr == op.f.dirtyPtr) {
			b[0] = 1
		}
		if op.verify {
			nz += cpuzero.NonZeroBytes(b)
		}
	}
	return nz, nil
}

func withFakeCUDA(t *testing.T) *fakeCUDA {
	f := &fakeCUDA{}
	old := cudaLoad
	cudaLoad = func() (cudaDriver, error) { return f, nil }
	t.Cleanup(func() { cudaLoad = old })
	return f
}

func cudaDesc(b []byte) AllocDesc {
	d := desc(b)
	d.Device, d.Ordinal, d.Stream = DeviceCUDA, 1, 0x77
	return d
}

func TestCUDANoDriver(t *testing.T) {
	old := cudaLoad
	cudaLoad = func() (cudaDriver, error) { return nil, fmt.Errorf("dlopen libcuda.so.1: %w", cudazero.ErrNoDriver) }
	defer func() { cudaLoad = old }()
	tr, _ := newTracer(t, nil)
	_, err := tr.Allocate(cudaDesc(make([]byte, 16)))
	requireStatus(t, StatusUnsupported, err)
	require.Contains(t, err.Error(), "no CUDA driver")
	_, err = tr.PoolRegister(PoolDesc{Device: DeviceCUDA, NumBlocks: 1, Model: "m", Regions: []PoolRegion{{0x1000, 0, 64}}})
	requireStatus(t, StatusUnsupported, err)
}

// With the real cudazero on a machine without a GPU the status is the same.
func TestCUDARealDriverAbsent(t *testing.T) {
	if _, err := cudazero.Load(); err == nil {
		t.Skip("a CUDA driver is present")
	} else if !errors.Is(err, cudazero.ErrNoDriver) {
		t.Skip("driver load failed otherwise: ", err)
	}
	tr, _ := newTracer(t, nil)
	_, err := tr.Allocate(cudaDesc(make([]byte, 16)))
	requireStatus(t, StatusUnsupported, err)
	require.Contains(t, err.Error(), "no CUDA driver")
}

func TestCUDAErrors(t *testing.T) {
	f := withFakeCUDA(t)
	tr, _ := newTracer(t, nil)
	mem := region(t, 256, 5)
	f.validateErr = fmt.Errorf("not device memory: %w", cudazero.ErrInvalidRange)
	_, err := tr.Allocate(cudaDesc(mem))
	requireStatus(t, StatusInvalidArg, err)
	f.validateErr = nil
	h, err := tr.Allocate(cudaDesc(mem))
	require.NoError(t, err)
	f.zeroErr = &cudazero.Error{Op: "cuLaunchKernel", Code: 700, Name: "CUDA_ERROR_ILLEGAL_ADDRESS"}
	_, err = tr.Sanitize(h, SanitizeOpts{})
	requireStatus(t, StatusDevice, err)
	require.Contains(t, err.Error(), "CUDA_ERROR_ILLEGAL_ADDRESS")
	f.zeroErr = fmt.Errorf("capture: %w", cudazero.ErrCapturing)
	_, err = tr.Sanitize(h, SanitizeOpts{})
	requireStatus(t, StatusState, err)
	f.zeroErr = nil
	f.waitErr = &cudazero.Error{Op: "cuEventSynchronize", Code: 700, Name: "CUDA_ERROR_ILLEGAL_ADDRESS"}
	_, err = tr.Sanitize(h, SanitizeOpts{})
	requireStatus(t, StatusDevice, err)
	require.Equal(t, StateQuarantined, mustInfo(t, tr, h).State, "an unproven sanitize quarantines")
}

// The stream of a buffer is checked for graph capture in a context of the
// buffer's own device: by ZeroAsync when there is work to enqueue, by
// CheckStreamOn when there is none (an empty buffer) and before a batch logs
// anything.
func TestCUDACaptureCheckedOnBuffersDevice(t *testing.T) {
	f := withFakeCUDA(t)
	tr, path := newTracer(t, nil)
	mem := region(t, 256, 5)
	h, err := tr.Allocate(cudaDesc(mem)) // device 1
	require.NoError(t, err)
	empty := cudaDesc(mem)
	empty.NBytes = 0
	he, err := tr.Allocate(empty)
	require.NoError(t, err)
	_, err = tr.Sanitize(h, SanitizeOpts{})
	require.NoError(t, err)
	require.Empty(t, f.checkedOn, "ZeroAsync checks the stream; no second round trip")

	f.captureErr = fmt.Errorf("stream 0x77 is being captured: %w", cudazero.ErrCapturing)
	_, err = tr.Sanitize(he, SanitizeOpts{})
	requireStatus(t, StatusState, err)
	require.Contains(t, err.Error(), "captured")
	require.Equal(t, []int{1}, f.checkedOn)
	out := make([]float64, 1)
	requireStatus(t, StatusState, tr.SanitizeMany([]Handle{h}, SanitizeOpts{}, out))
	require.Equal(t, []int{1, 1}, f.checkedOn)
	c := countEvents(readLog(t, tr, path))
	require.Equal(t, 1, c["sanitize_start"], "a refused capture logs no sanitize_start")

	f.captureErr = nil
	_, err = tr.Sanitize(he, SanitizeOpts{})
	require.NoError(t, err)
	require.Equal(t, 100.0, mustInfo(t, tr, he).CoveragePct)
}

func TestCUDAAsyncSanitize(t *testing.T) {
	f := withFakeCUDA(t)
	tr, path := newTracer(t, nil)
	mem := region(t, 4096, 0xCD)
	h, err := tr.Allocate(cudaDesc(mem))
	require.NoError(t, err)
	require.NoError(t, tr.MarkInUse(h, "tenant-a"))
	cov, err := tr.Sanitize(h, SanitizeOpts{Async: true, UseStream: true, Stream: 0x99})
	require.NoError(t, err)
	require.Equal(t, 0.0, cov)
	require.Equal(t, uint64(0x99), f.lastStream)
	require.Equal(t, []cudazero.Range{{Ptr: addr(mem), Len: 4096}}, f.lastRanges)
	require.False(t, allZero(mem), "async: nothing done before wait")
	require.Equal(t, StateSanitizing, mustInfo(t, tr, h).State)
	requireStatus(t, StatusPending, tr.Free(h))
	requireStatus(t, StatusPending, tr.MarkInUse(h, ""))
	_, err = tr.Sanitize(h, SanitizeOpts{})
	requireStatus(t, StatusPending, err)
	cov, err = tr.Wait(h)
	require.NoError(t, err)
	require.Equal(t, 100.0, cov)
	require.True(t, allZero(mem))
	require.Equal(t, StateSanitized, mustInfo(t, tr, h).State)
	cov, err = tr.Wait(h) // nothing pending: attested coverage
	require.NoError(t, err)
	require.Equal(t, 100.0, cov)
	require.NoError(t, tr.Free(h))

	rs := forHandle(readLog(t, tr, path), h)
	require.Equal(t, []string{"allocate", "write", "sanitize_start", "sanitize_end", "free"}, events(rs))
	require.Equal(t, "cuda:1", rs[0]["device"])
	require.Equal(t, "cuda:1", rs[2]["device"])
	require.Equal(t, "GPU-fake-1", rs[3]["device_uuid"])
	require.Equal(t, 100.0, rs[3]["coverage_pct"])
}

func TestCUDAVerifyFailureAndCloseWaits(t *testing.T) {
	f := withFakeCUDA(t)
	tr, path := newTracer(t, nil)
	mem := region(t, 1000, 0xCD)
	h, err := tr.Allocate(cudaDesc(mem))
	require.NoError(t, err)
	f.dirty = true
	cov, err := tr.Sanitize(h, SanitizeOpts{})
	requireStatus(t, StatusVerify, err)
	require.InDelta(t, 99.9, cov, 1e-9)
	require.Equal(t, StateQuarantined, mustInfo(t, tr, h).State)
	f.dirty = false
	// an async sanitize still pending at Close is completed and logged
	mem2 := region(t, 100, 1)
	h2, err := tr.Allocate(cudaDesc(mem2))
	require.NoError(t, err)
	_, err = tr.Sanitize(h2, SanitizeOpts{Async: true})
	require.NoError(t, err)
	require.NoError(t, tr.Close())
	require.True(t, allZero(mem2))
	rs := forHandle(readLog(t, tr, path), h2)
	require.Equal(t, "sanitize_end", rs[len(rs)-1]["event_type"])
}

func TestCUDAConcurrentWait(t *testing.T) {
	withFakeCUDA(t)
	tr, _ := newTracer(t, nil)
	mem := region(t, 1<<16, 0xCD)
	h, err := tr.Allocate(cudaDesc(mem))
	require.NoError(t, err)
	_, err = tr.Sanitize(h, SanitizeOpts{Async: true})
	require.NoError(t, err)
	var wg sync.WaitGroup
	covs := make([]float64, 4)
	errs := make([]error, 4)
	for i := range covs {
		wg.Add(1)
		go func() { defer wg.Done(); covs[i], errs[i] = tr.Wait(h) }()
	}
	wg.Wait()
	for i := range covs {
		require.NoError(t, errs[i])
		require.Equal(t, 100.0, covs[i])
	}
}

func TestCUDAPoolRelease(t *testing.T) {
	f := withFakeCUDA(t)
	tr, path := newTracer(t, nil)
	const nb, bb = 32, 128
	mem := region(t, 2*nb*bb, 0xAA)
	base := addr(mem)
	p, err := tr.PoolRegister(PoolDesc{Device: DeviceCUDA, Ordinal: 0, NumBlocks: nb, Stream: 5, Model: "m",
		Regions: []PoolRegion{{base, 2 * bb, bb}, {base + bb, 2 * bb, bb}}}) // FlashInfer K/V interleaved
	require.NoError(t, err)
	require.NoError(t, tr.PoolAssign(p, []uint32{0, 4, 9}, "a", "r"))
	launches := f.launches
	cov, err := tr.PoolRelease(p, []uint32{0, 4, 9}, true)
	require.NoError(t, err)
	require.Equal(t, 0.0, cov)
	require.Equal(t, launches+1, f.launches, "one launch for all ranges of all blocks")
	require.Len(t, f.lastRanges, 6)
	require.Equal(t, cudazero.Range{Ptr: base + 9*2*bb + bb, Len: bb}, f.lastRanges[5])
	require.False(t, allZero(mem[:bb]), "async: not yet done")
	// assigning a releasing block completes the release first
	require.NoError(t, tr.PoolAssign(p, []uint32{4}, "b", "r2"))
	require.True(t, allZero(mem[:2*bb]))
	min, err := tr.PoolSync(p)
	require.NoError(t, err)
	require.Equal(t, 100.0, min)
	f.dirty = true
	_, err = tr.PoolRelease(p, []uint32{4}, false)
	requireStatus(t, StatusVerify, err)
	requireStatus(t, StatusQuarantined, tr.PoolAssign(p, []uint32{4}, "b", "r3"))
	rs := readLog(t, tr, path)
	require.Equal(t, []string{"pool_assign", "pool_release", "pool_assign", "pool_release", "quarantine"}, events(rs))
	require.Equal(t, "cuda:0", rs[1]["device"])
	require.Equal(t, float64(6*bb), rs[1]["bytes"])
}

// PoolRelease does not keep the caller's id slice (the C ABI passes the
// caller's array without copying it): an async release still completes,
// and logs, the blocks it was given after the caller reuses the slice.
func TestCUDAPoolReleaseCopiesIDs(t *testing.T) {
	f := withFakeCUDA(t)
	tr, path := newTracer(t, nil)
	const nb, bb = 16, 64
	mem := region(t, nb*bb, 0xAA)
	p, err := tr.PoolRegister(PoolDesc{Device: DeviceCUDA, NumBlocks: nb, Model: "m", Regions: []PoolRegion{{addr(mem), bb, bb}}})
	require.NoError(t, err)
	ids := []uint32{1, 2, 3}
	require.NoError(t, tr.PoolAssign(p, ids, "a", "r"))
	_, err = tr.PoolRelease(p, ids, true)
	require.NoError(t, err)
	copy(ids, []uint32{7, 8, 9})
	require.NoError(t, tr.PoolAssign(p, ids, "b", "r2"))
	_, err = tr.PoolSync(p)
	require.NoError(t, err)
	require.Equal(t, []uint32{1, 2, 3}, f.lastBlocks)
	require.True(t, allZero(mem[bb:4*bb]))
	require.False(t, allZero(mem[7*bb:8*bb]))
	rel := ofEvent(readLog(t, tr, path), "pool_release")
	require.Len(t, rel, 1)
	require.Equal(t, []any{1.0, 2.0, 3.0}, rel[0]["blocks"])
}

// A release refused by its id check, or whose enqueue fails, leaves every
// block in the state it had: assigned blocks can still be released,
// quarantined ones stay quarantined, and a forced unregister that could not
// scrub keeps the pool.
func TestCUDAPoolReleaseFailureKeepsStates(t *testing.T) {
	f := withFakeCUDA(t)
	tr, _ := newTracer(t, nil)
	const nb, bb = 16, 64
	mem := region(t, nb*bb, 0xAA)
	p, err := tr.PoolRegister(PoolDesc{Device: DeviceCUDA, NumBlocks: nb, Model: "m", Regions: []PoolRegion{{addr(mem), bb, bb}}})
	require.NoError(t, err)
	require.NoError(t, tr.PoolAssign(p, []uint32{0, 1, 2, 3}, "a", "r"))
	require.NoError(t, tr.PoolAssign(p, []uint32{9}, "a", "r"))
	requireStatus(t, StatusIsolation, tr.PoolAssign(p, []uint32{9}, "b", "r")) // 9 is quarantined
	for _, tc := range []struct {
		ids  []uint32
		want Status
		msg  string
	}{
		{[]uint32{0, 1, 1}, StatusInvalidArg, "block 1 is listed twice"},
		{[]uint32{0, 1, 16}, StatusInvalidArg, "block 16 is out of range (pool has 16 blocks)"},
		{[]uint32{0, 1, 5}, StatusState, "block 5 is not assigned (state free)"},
		{[]uint32{2, 3, 9}, StatusQuarantined, "block 9 is quarantined"},
		{[]uint32{}, StatusInvalidArg, "no blocks given"},
	} {
		_, err := tr.PoolRelease(p, tc.ids, true)
		requireStatus(t, tc.want, err)
		require.ErrorContains(t, err, tc.msg)
	}
	f.zeroErr = &cudazero.Error{Op: "cuLaunchKernel", Code: 719, Name: "CUDA_ERROR_LAUNCH_FAILED"}
	_, err = tr.PoolRelease(p, []uint32{0, 1}, true)
	requireStatus(t, StatusDevice, err)
	_, err = tr.PoolReleaseQuarantine(p, []uint32{9}, "reviewed")
	requireStatus(t, StatusDevice, err)
	requireStatus(t, StatusDevice, tr.PoolUnregister(p, true))
	f.zeroErr = nil
	_, err = tr.PoolRelease(p, []uint32{0, 1}, true) // still assigned: the failed calls marked nothing
	require.NoError(t, err)
	requireStatus(t, StatusQuarantined, tr.PoolAssign(p, []uint32{9}, "a", "r2"))
	requireStatus(t, StatusState, tr.PoolUnregister(p, false)) // blocks 2 and 3 still assigned, 9 quarantined
	require.NoError(t, tr.PoolUnregister(p, true))
	require.True(t, allZero(mem[:4*bb]))
	require.True(t, allZero(mem[9*bb:10*bb]))
}

// A quarantined block of a device pool returns to service through a scrub
// that is verified (and waited for) even when the pool verifies nothing.
func TestCUDAPoolReleaseQuarantine(t *testing.T) {
	f := withFakeCUDA(t)
	tr, path := newTracer(t, nil)
	const nb, bb = 8, 64
	mem := region(t, nb*bb, 0xAA)
	p, err := tr.PoolRegister(PoolDesc{Device: DeviceCUDA, NumBlocks: nb, Stream: 3, Model: "m", Verify: VerifyNone,
		Regions: []PoolRegion{{addr(mem), bb, bb}}})
	require.NoError(t, err)
	require.NoError(t, tr.PoolAssign(p, []uint32{2}, "a", "r"))
	requireStatus(t, StatusIsolation, tr.PoolAssign(p, []uint32{2}, "b", "r2"))
	f.dirty = true // the device scrub leaves a non-zero word: stays quarantined
	_, err = tr.PoolReleaseQuarantine(p, []uint32{2}, "reviewed")
	requireStatus(t, StatusVerify, err)
	f.dirty = false
	cov, err := tr.PoolReleaseQuarantine(p, []uint32{2}, "reviewed")
	require.NoError(t, err)
	require.Equal(t, 100.0, cov, "verified although the pool's mode is none")
	require.True(t, allZero(mem[2*bb:3*bb]))
	require.NoError(t, tr.PoolAssign(p, []uint32{2}, "b", "r2"))
	rs := readLog(t, tr, path)
	rq := ofEvent(rs, "release_quarantine")
	require.Len(t, rq, 1)
	require.Equal(t, []any{2.0}, rq[0]["blocks"])
	rel := ofEvent(rs, "pool_release")
	require.Equal(t, "full", rel[len(rel)-1]["verify"])
}

func TestCUDASanitizeManyOneLaunchPerStream(t *testing.T) {
	f := withFakeCUDA(t)
	tr, path := newTracer(t, nil)
	var hs []Handle
	var mems [][]byte
	for i := 0; i < 4; i++ {
		m := region(t, 512, 0xEE)
		mems = append(mems, m)
		d := cudaDesc(m)
		if i == 3 {
			d.Stream = 0x88 // another stream: another launch
		}
		h, err := tr.Allocate(d)
		require.NoError(t, err)
		hs = append(hs, h)
	}
	cpu := region(t, 100, 1)
	hc, err := tr.Allocate(desc(cpu))
	require.NoError(t, err)
	hs = append(hs, hc)
	out := make([]float64, len(hs))
	n := f.launches
	require.NoError(t, tr.SanitizeMany(hs, SanitizeOpts{}, out))
	require.Equal(t, n+2, f.launches)
	for i, m := range append(mems, cpu) {
		require.True(t, allZero(m), i)
		require.Equal(t, 100.0, out[i])
	}
	// one dirty buffer in a group: only that one fails and is quarantined
	f.dirtyPtr = addr(mems[1])
	err = tr.SanitizeMany(hs[:3], SanitizeOpts{}, out)
	requireStatus(t, StatusVerify, err)
	require.Equal(t, []float64{100, 100 * 511.0 / 512, 100}, out[:3])
	require.Equal(t, StateSanitized, mustInfo(t, tr, hs[0]).State)
	require.Equal(t, StateQuarantined, mustInfo(t, tr, hs[1]).State)
	require.Equal(t, StateSanitized, mustInfo(t, tr, hs[2]).State)
	c := countEvents(readLog(t, tr, path))
	require.Equal(t, 8, c["sanitize_start"])
	require.Equal(t, 8, c["sanitize_end"])
	require.Equal(t, 1, c["quarantine"])
}

// A CUDA pool release is one pool-shaped ZeroPoolAsync (one zero launch and
// one verify launch on the device) whatever the number of blocks and
// regions; no per-range ZeroAsync.
func TestCUDAPoolReleaseShapedOneCall(t *testing.T) {
	f := withFakeCUDA(t)
	tr, path := newTracer(t, nil)
	const nb, nr, bb = 64, 4, 96
	mem := region(t, nb*nr*bb, 0xAA)
	base := addr(mem)
	regions := make([]PoolRegion, nr)
	for i := range regions {
		regions[i] = PoolRegion{Base: base + uint64(i)*bb, Stride: nr * bb, BlockBytes: bb}
	}
	p, err := tr.PoolRegister(PoolDesc{Device: DeviceCUDA, NumBlocks: nb, Stream: 9, Model: "m", Regions: regions})
	require.NoError(t, err)
	released := map[uint32]bool{}
	for _, n := range []int{1, 7, 32} {
		var ids []uint32
		for b := uint32(0); len(ids) < n; b++ {
			if !released[b] {
				ids = append(ids, b)
				released[b] = true
			}
		}
		require.NoError(t, tr.PoolAssign(p, ids, "a", "r"))
		calls, launches := f.poolCalls, f.launches
		cov, err := tr.PoolRelease(p, ids, false)
		require.NoError(t, err)
		require.Equal(t, 100.0, cov)
		require.Equal(t, calls+1, f.poolCalls, "%d blocks: one pool-shaped call", n)
		require.Equal(t, launches+1, f.launches, "%d blocks: no other zeroization call", n)
		require.Equal(t, ids, f.lastBlocks)
		require.True(t, f.lastVerify, "the pool verifies (full by default)")
		require.Equal(t, uint64(9), f.lastStream)
	}
	for b := uint32(0); b < nb; b++ {
		blk := mem[b*nr*bb : (b+1)*nr*bb]
		if released[b] {
			require.True(t, allZero(blk), "block %d", b)
		} else {
			require.False(t, allZero(blk), "block %d was not released", b)
		}
	}
	rs := readLog(t, tr, path)
	var bytes []float64
	for _, r := range rs {
		if r["event_type"] == "pool_release" {
			bytes = append(bytes, r["bytes"].(float64))
		}
	}
	require.Equal(t, []float64{1 * nr * bb, 7 * nr * bb, 32 * nr * bb}, bytes)
	// An enqueue failure releases nothing: the blocks stay assigned.
	require.NoError(t, tr.PoolAssign(p, []uint32{40}, "a", "r"))
	f.zeroErr = fmt.Errorf("capture: %w", cudazero.ErrCapturing)
	_, err = tr.PoolRelease(p, []uint32{40}, false)
	requireStatus(t, StatusState, err)
	f.zeroErr = &cudazero.Error{Op: "cuLaunchKernel(kvh_pool_zero)", Code: 719, Name: "CUDA_ERROR_LAUNCH_FAILED"}
	_, err = tr.PoolRelease(p, []uint32{40}, false)
	requireStatus(t, StatusDevice, err)
	require.Contains(t, err.Error(), "CUDA_ERROR_LAUNCH_FAILED")
	f.zeroErr = nil
	cov, err := tr.PoolRelease(p, []uint32{40}, false)
	require.NoError(t, err)
	require.Equal(t, 100.0, cov)
}
