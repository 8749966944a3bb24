package cudazero

import (
	"errors"
	"math/rand"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// CUresult values used by the tests (cuda.h).
const (
	errOOM         = 2
	errNoDevice    = 100
	errInvalidPTX  = 218
	errIllegalAddr = 700
	errLaunch      = 719
)

func ptrOf(addr uint64) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&addr)) }

func mem(addr, n uint64) []byte { return unsafe.Slice((*byte)(ptrOf(addr)), n) }

// newDriver opens a fresh Driver on the full fake with a clean fake state.
func newDriver(t *testing.T) *Driver {
	t.Helper()
	fake.Reset()
	d, err := open(fakeLib)
	require.NoError(t, err)
	t.Cleanup(fake.Reset)
	return d
}

// devAlloc allocates fake device memory filled with random non-zero bytes.
func devAlloc(t *testing.T, dev int, n uint64) uint64 {
	t.Helper()
	p, err := fake.Alloc(dev, n)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fake.Free(p) })
	b := mem(p, n)
	rng := rand.New(rand.NewSource(int64(n)))
	for i := range b {
		b[i] = byte(rng.Intn(255) + 1)
	}
	return p
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func noneZero(b []byte) bool {
	for _, x := range b {
		if x == 0 {
			return false
		}
	}
	return true
}

func TestLoadNoDriver(t *testing.T) {
	_, err := open("/nonexistent/libcuda.so.1")
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNoDriver)
	assert.Contains(t, err.Error(), "no CUDA driver")
	assert.Contains(t, err.Error(), "/nonexistent/libcuda.so.1")
}

func TestLoadInitFails(t *testing.T) {
	fake.Reset()
	defer fake.Reset()
	fake.Inject("cuInit", errNoDevice, 0, 1)
	_, err := open(fakeLib)
	require.ErrorIs(t, err, ErrNoDriver)
	assert.Contains(t, err.Error(), "CUDA_ERROR_NO_DEVICE")
}

func TestLoadOnceHonoursKVH_LIBCUDA(t *testing.T) {
	fake.Reset()
	assert.Equal(t, fakeLib, LibraryPath())
	d1, err := Load()
	require.NoError(t, err)
	d2, err := Load()
	require.NoError(t, err)
	assert.Same(t, d1, d2)
	assert.Equal(t, fakeLib, d1.Path())
	t.Setenv("KVH_LIBCUDA", "")
	assert.Equal(t, "libcuda.so.1", LibraryPath())
}

func TestResolvers(t *testing.T) {
	for _, tc := range []struct {
		mode int
		want string
	}{{0, "cuGetProcAddress_v2"}, {1, "cuGetProcAddress"}, {2, "dlsym"}} {
		fake.Reset()
		fake.ProcAddrMode(tc.mode)
		d, err := open(fakeLib)
		require.NoError(t, err, "mode %d", tc.mode)
		assert.Equal(t, tc.want, d.Resolver())
		v, err := d.DriverVersion()
		require.NoError(t, err)
		assert.Equal(t, 12040, v)
		// The resolved entry points work.
		p := devAlloc(t, 0, 4096)
		op, err := d.ZeroAsync(0, 0, []Range{{p, 4096}}, true, false)
		require.NoError(t, err)
		n, err := op.Wait()
		require.NoError(t, err)
		assert.Zero(t, n)
		assert.True(t, allZero(mem(p, 4096)))
	}
	fake.Reset()
}

func TestLoadDlsymOnlyLibrary(t *testing.T) {
	d, err := open(fakeLibDlsym)
	require.NoError(t, err)
	assert.Equal(t, "dlsym", d.Resolver())
	uuid, err := d.DeviceUUID(1)
	require.NoError(t, err)
	assert.Equal(t, "GPU-20212223-2425-2627-2829-2a2b2c2d2e2f", uuid)
}

func TestLoadMissingSymbol(t *testing.T) {
	// cuGetProcAddress answers "not found".
	fake.Reset()
	defer fake.Reset()
	fake.Hide("cuStreamIsCapturing")
	_, err := open(fakeLib)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrMissingSymbol)
	assert.ErrorIs(t, err, ErrNoDriver)
	assert.Contains(t, err.Error(), "cuStreamIsCapturing")

	// dlsym fallback on a library that does not export it.
	_, err = open(fakeLibMin)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrMissingSymbol)
	assert.Contains(t, err.Error(), "lacks entry point cuStreamIsCapturing")
}

func TestDeviceUUIDAndCount(t *testing.T) {
	d := newDriver(t)
	uuid, err := d.DeviceUUID(0)
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`), uuid)
	assert.Equal(t, "GPU-10111213-1415-1617-1819-1a1b1c1d1e1f", uuid)
	n, err := d.DeviceCount()
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	_, err = d.DeviceUUID(5)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "CUDA_ERROR_INVALID_DEVICE", ce.Name)
	_, err = d.DeviceUUID(-1)
	assert.ErrorIs(t, err, ErrInvalidRange)
}

func TestValidateRange(t *testing.T) {
	d := newDriver(t)
	p0 := devAlloc(t, 0, 8192)
	p1 := devAlloc(t, 1, 4096)
	pinned, err := fake.HostAlloc(0, 4096)
	require.NoError(t, err)
	defer func() { _ = fake.HostFree(pinned) }()
	goMem := make([]byte, 64)
	goPtr := uint64(uintptr(unsafe.Pointer(&goMem[0])))

	for _, tc := range []struct {
		name    string
		ordinal int
		r       Range
		want    string // "" = valid
	}{
		{"whole allocation", 0, Range{p0, 8192}, ""},
		{"inside", 0, Range{p0 + 100, 1000}, ""},
		{"ends at allocation end", 0, Range{p0 + 8191, 1}, ""},
		{"zero length", 0, Range{p0, 0}, ""},
		{"other device", 1, Range{p1, 4096}, ""},
		{"past end", 0, Range{p0 + 4096, 4097}, "runs past the end of its allocation"},
		{"past end by one", 0, Range{p0, 8193}, "by 1 bytes"},
		{"wrong device", 0, Range{p1, 16}, "memory of CUDA device 1, not of device 0"},
		{"pageable host memory", 0, Range{goPtr, 64}, "not device memory (not CUDA memory)"},
		{"pinned host memory", 0, Range{pinned, 64}, "not device memory (CU_MEMORYTYPE_HOST)"},
		{"null", 0, Range{0, 16}, "NULL device pointer"},
		{"overflow", 0, Range{^uint64(0) - 4, 16}, "overflows"},
		{"negative ordinal", -1, Range{p0, 16}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.ValidateRange(tc.ordinal, tc.r)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidRange)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	runtime.KeepAlive(goMem)
	assert.Zero(t, fake.Calls("cuMemsetD8Async")+fake.Calls("cuMemsetD32Async")+fake.Calls("cuLaunchKernel"))
	var ce *Error
	require.ErrorAs(t, d.ValidateRange(7, Range{p0, 16}), &ce)
	assert.Equal(t, "CUDA_ERROR_INVALID_DEVICE", ce.Name)
}

func TestZeroAsyncRefusesBadRangesWithoutDeviceWork(t *testing.T) {
	d := newDriver(t)
	p0 := devAlloc(t, 0, 4096)
	p1 := devAlloc(t, 1, 4096)
	for _, rs := range [][]Range{
		{{p0, 4096}, {p1, 16}},        // second on the wrong device
		{{p0, 1024}, {p0 + 4000, 97}}, // second past the end
		{{p0, 16}, {^uint64(0), 2}},   // overflow
	} {
		op, err := d.ZeroAsync(0, 0, rs, true, false)
		require.ErrorIs(t, err, ErrInvalidRange)
		assert.Nil(t, op)
	}
	for _, c := range []string{"cuMemsetD8Async", "cuMemsetD32Async", "cuLaunchKernel", "cuMemcpyHtoDAsync", "cuEventRecord"} {
		assert.Zero(t, fake.Calls(c), c)
	}
	assert.True(t, noneZero(mem(p0, 4096)))
}

func TestZeroContiguousD32(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 1<<20)
	r := Range{p + 4096, 1<<20 - 8192}
	op, err := d.ZeroAsync(0, 0, []Range{r}, true, false)
	require.NoError(t, err)
	assert.Zero(t, fake.Calls("cuEventSynchronize"), "ZeroAsync must not synchronize")
	assert.Zero(t, fake.Calls("cuStreamSynchronize"))
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, 2, fake.Calls("cuMemsetD32Async"), "the range, and the verify counter of a new slot")
	assert.Zero(t, fake.Calls("cuMemsetD8Async"))
	assert.Equal(t, 1, fake.Calls("cuLaunchKernel"), "only the verify kernel")
	assert.Zero(t, fake.Calls("cuMemcpyHtoDAsync"), "the one-entry table is read from pinned memory")
	assert.Zero(t, fake.Calls("cuMemcpyDtoHAsync"), "the kernel publishes the count itself")
	assert.True(t, allZero(mem(r.Ptr, r.Len)))
	assert.True(t, noneZero(mem(p, 4096)), "bytes before the range untouched")
	assert.True(t, noneZero(mem(r.Ptr+r.Len, 4096)), "bytes after the range untouched")
	n2, err := op.Wait()
	require.NoError(t, err)
	assert.Equal(t, n, n2, "Wait is idempotent")

	// The slot is reused: its counter was left zero by the kernel.
	fake.Reset()
	for i, b := 0, mem(r.Ptr, r.Len); i < len(b); i++ {
		b[i] = 0x5a
	}
	op, err = d.ZeroAsync(0, 0, []Range{r}, true, false)
	require.NoError(t, err)
	n, err = op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, 1, fake.Calls("cuMemsetD32Async"), "the range only")
	assert.Equal(t, 1, fake.Calls("cuLaunchKernel"), "one launch")
	assert.Equal(t, 1, fake.Calls("cuEventRecord"), "one event")
	assert.True(t, allZero(mem(r.Ptr, r.Len)))
}

func TestZeroContiguousD8(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 4096)
	r := Range{p + 3, 1001}
	op, err := d.ZeroAsync(0, 0, []Range{r}, true, false)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, 1, fake.Calls("cuMemsetD8Async"))
	assert.Equal(t, 1, fake.Calls("cuMemsetD32Async"), "the verify counter of a new slot")
	assert.True(t, allZero(mem(r.Ptr, r.Len)))
	assert.True(t, noneZero(mem(p, 3)))
	assert.True(t, noneZero(mem(r.Ptr+r.Len, 4096-3-1001)))
}

func TestZeroWithoutVerify(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 4096)
	op, err := d.ZeroAsync(0, 0, []Range{{p, 4096}}, false, false)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Zero(t, fake.Calls("cuLaunchKernel"))
	assert.Zero(t, fake.Calls("cuMemcpyHtoDAsync"))
	assert.True(t, allZero(mem(p, 4096)))
}

// scatterRanges cuts non-adjacent ranges of varied sizes and alignments out of
// two allocations; the gaps between them must survive.
func scatterRanges(t *testing.T, count int) (rs []Range, gaps []Range) {
	rng := rand.New(rand.NewSource(7))
	var bases []uint64
	for a := 0; a < 2; a++ {
		bases = append(bases, devAlloc(t, 0, 1<<20))
	}
	for _, base := range bases {
		off := uint64(0)
		for i := 0; i < count/2; i++ {
			gap := uint64(rng.Intn(40) + 1)
			size := uint64(rng.Intn(3000) + 1)
			if i == 3 {
				size = 200 << 10 // spans several 64 KiB descriptors
			}
			gaps = append(gaps, Range{base + off, gap})
			off += gap
			rs = append(rs, Range{base + off, size})
			off += size
		}
		require.Less(t, off, uint64(1<<20))
	}
	return rs, gaps
}

func TestZeroScatterOneLaunch(t *testing.T) {
	d := newDriver(t)
	rs, gaps := scatterRanges(t, 300)
	rs = append(rs, Range{rs[0].Ptr, 0}) // empty ranges are ignored
	op, err := d.ZeroAsync(0, 0, rs, true, false)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, 2, fake.Calls("cuLaunchKernel"), "one scatter-zero and one verify launch")
	assert.Zero(t, fake.Calls("cuMemcpyHtoDAsync"), "a small table is read from pinned memory")
	assert.Zero(t, fake.Calls("cuMemcpyDtoHAsync"), "the verify kernel publishes the count")
	assert.Zero(t, fake.Calls("cuMemsetD8Async"))
	assert.Equal(t, 1, fake.Calls("cuMemsetD32Async"), "the verify counter of a new slot")
	assert.LessOrEqual(t, fake.Calls("cuPointerGetAttributes"), 2, "one query per allocation")
	for _, r := range rs {
		assert.True(t, allZero(mem(r.Ptr, r.Len)))
	}
	for _, g := range gaps {
		assert.True(t, noneZero(mem(g.Ptr, g.Len)), "gap at %#x touched", g.Ptr)
	}
}

func TestZeroMergesAdjacentBlocks(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 64*1024)
	var rs []Range
	for b := uint64(0); b < 16; b++ {
		rs = append(rs, Range{p + b*4096, 4096})
	}
	op, err := d.ZeroAsync(0, 0, rs, false, false)
	require.NoError(t, err)
	_, err = op.Wait()
	require.NoError(t, err)
	assert.Equal(t, 1, fake.Calls("cuMemsetD32Async"))
	assert.Zero(t, fake.Calls("cuLaunchKernel"))
	assert.True(t, allZero(mem(p, 64*1024)))
}

func TestDoublePass(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 8192)
	op, err := d.ZeroAsync(0, 0, []Range{{p, 4096}}, false, true)
	require.NoError(t, err)
	_, err = op.Wait()
	require.NoError(t, err)
	assert.Equal(t, 2, fake.Calls("cuMemsetD32Async"))

	fake.Reset()
	op, err = d.ZeroAsync(0, 0, []Range{{p, 100}, {p + 200, 100}}, true, true)
	require.NoError(t, err)
	_, err = op.Wait()
	require.NoError(t, err)
	assert.Equal(t, 3, fake.Calls("cuLaunchKernel"), "two zero passes + verify")
	assert.True(t, allZero(mem(p, 100)) && allZero(mem(p+200, 100)))
}

func TestVerifyFindsPlantedBytes(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 1<<16)
	for _, tc := range []struct {
		name   string
		rs     []Range
		plant  uint64
		expect uint64
	}{
		{"contiguous aligned word", []Range{{p, 1 << 16}}, p + 4096 + 1, 4},
		{"contiguous unaligned head byte", []Range{{p + 1, 1000}}, p + 5, 1},
		{"scatter tail byte", []Range{{p, 100}, {p + 1000, 37}}, p + 1036, 1},
		{"scatter body word", []Range{{p, 100}, {p + 1024, 4096}}, p + 2048, 4},
		{"double pass", []Range{{p, 4096}}, p + 17, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.PlantBeforeVerify(tc.plant, 0x5a)
			op, err := d.ZeroAsync(0, 0, tc.rs, true, tc.name == "double pass")
			require.NoError(t, err)
			n, err := op.Wait()
			require.NoError(t, err)
			assert.Equal(t, tc.expect, n)
			assert.Equal(t, byte(0x5a), mem(tc.plant, 1)[0])
		})
	}
}

func TestVerifyCountCappedAtTotal(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 4096)
	// Every byte of a 2-byte unaligned range and an aligned word: the kernel
	// counts 4 for the word even though only 2 bytes belong to the range.
	fake.PlantBeforeVerify(p+1, 1)
	op, err := d.ZeroAsync(0, 0, []Range{{p + 1, 1}}, true, false)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), n)
}

func TestAsyncReadyThenWait(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 1<<16)
	require.NoError(t, fake.Hold(0, 0, true))
	op, err := d.ZeroAsync(0, 0, []Range{{p, 1 << 16}}, true, false)
	require.NoError(t, err)
	ready, err := op.Ready()
	require.NoError(t, err)
	assert.False(t, ready, "work is still queued on the held stream")
	assert.True(t, noneZero(mem(p, 1<<16)), "ZeroAsync returned before the device ran anything")
	assert.Greater(t, fake.Pending(0, 0), 0)
	go func() {
		time.Sleep(10 * time.Millisecond)
		_ = fake.Hold(0, 0, false)
	}()
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	ready, err = op.Ready()
	require.NoError(t, err)
	assert.True(t, ready)
	assert.True(t, allZero(mem(p, 1<<16)))
}

func TestStreamOrderAfterPendingWork(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 8192)
	s := fake.StreamCreate(0)
	require.NotZero(t, s)
	require.NoError(t, fake.Hold(0, s, true))
	// The engine's pending kernel writes the block; our zeroization is
	// enqueued after it on the same stream and must run after it.
	require.NoError(t, fake.EnqueueFill(0, s, p, 8192, 0xff))
	op, err := d.ZeroAsync(0, s, []Range{{p, 4096}, {p + 5000, 3000}}, true, false)
	require.NoError(t, err)
	ready, err := op.Ready()
	require.NoError(t, err)
	assert.False(t, ready)
	require.NoError(t, fake.Hold(0, s, false))
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.True(t, allZero(mem(p, 4096)))
	assert.True(t, allZero(mem(p+5000, 3000)))
	for _, b := range mem(p+4096, 5000-4096) {
		require.Equal(t, byte(0xff), b, "the pending fill ran before us and the gap was left alone")
	}
}

func TestCaptureRefused(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 4096)
	s := fake.StreamCreate(0)
	require.NoError(t, d.CheckStream(s))
	for status, word := range map[int]string{1: "ACTIVE", 2: "INVALIDATED"} {
		require.NoError(t, fake.SetCapturing(0, s, status))
		op, err := d.ZeroAsync(0, s, []Range{{p, 4096}}, true, false)
		require.ErrorIs(t, err, ErrCapturing)
		assert.Nil(t, op)
		assert.Contains(t, err.Error(), word)
		assert.ErrorIs(t, d.CheckStream(s), ErrCapturing)
		assert.ErrorIs(t, d.CheckStreamOn(0, s), ErrCapturing)
	}
	assert.Zero(t, fake.Calls("cuMemsetD32Async")+fake.Calls("cuLaunchKernel"))
	assert.True(t, noneZero(mem(p, 4096)))
}

func TestOutOfMemory(t *testing.T) {
	for _, fn := range []string{"cuMemAllocHost", "cuMemAlloc"} {
		t.Run(fn, func(t *testing.T) {
			d := newDriver(t) // fresh driver: no pooled buffers yet
			p := devAlloc(t, 0, 4096)
			fake.Inject(fn, errOOM, 0, 1)
			_, err := d.ZeroAsync(0, 0, []Range{{p, 100}, {p + 200, 100}}, true, false)
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.True(t, ce.OutOfMemory())
			assert.Equal(t, "CUDA_ERROR_OUT_OF_MEMORY", ce.Name)
			assert.Contains(t, err.Error(), fn)
			assert.Zero(t, fake.Calls("cuLaunchKernel"))
			// The next call succeeds.
			op, err := d.ZeroAsync(0, 0, []Range{{p, 100}, {p + 200, 100}}, true, false)
			require.NoError(t, err)
			n, err := op.Wait()
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
}

func TestIllegalAddress(t *testing.T) {
	t.Run("injected", func(t *testing.T) {
		d := newDriver(t)
		p := devAlloc(t, 0, 4096)
		fake.Inject("cuEventSynchronize", errIllegalAddr, 0, 1)
		op, err := d.ZeroAsync(0, 0, []Range{{p, 4096}}, true, false)
		require.NoError(t, err)
		_, err = op.Wait()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "CUDA_ERROR_ILLEGAL_ADDRESS")
		assert.Contains(t, err.Error(), "cuEventSynchronize")
		_, err2 := op.Wait()
		assert.Equal(t, err, err2)
	})
	t.Run("memory freed while queued", func(t *testing.T) {
		d := newDriver(t)
		p, err := fake.Alloc(0, 1<<16)
		require.NoError(t, err)
		require.NoError(t, fake.Hold(0, 0, true))
		op, err := d.ZeroAsync(0, 0, []Range{{p, 1000}, {p + 2000, 1000}}, true, false)
		require.NoError(t, err)
		require.NoError(t, fake.Free(p)) // the engine freed it under us
		require.NoError(t, fake.Hold(0, 0, false))
		_, err = op.Wait()
		var ce *Error
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "CUDA_ERROR_ILLEGAL_ADDRESS", ce.Name)
		assert.Equal(t, errIllegalAddr, fake.Sticky(0))
		ready, err := op.Ready()
		assert.True(t, ready)
		assert.Error(t, err)
	})
}

func TestLaunchAndModuleFailures(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 4096)
	fake.Inject("cuLaunchKernel", errLaunch, 0, 1)
	_, err := d.ZeroAsync(0, 0, []Range{{p, 10}, {p + 20, 10}}, true, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cuLaunchKernel(kvh_scatter_zero)")
	assert.Contains(t, err.Error(), "CUDA_ERROR_LAUNCH_FAILED")

	d2 := newDriver(t)
	fake.Inject("cuModuleLoadData", errInvalidPTX, 0, 1)
	_, err = d2.ZeroAsync(0, 0, []Range{{p, 10}, {p + 20, 10}}, true, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CUDA_ERROR_INVALID_PTX")
	op, err := d2.ZeroAsync(0, 0, []Range{{p, 10}, {p + 20, 10}}, true, false)
	require.NoError(t, err, "module load is retried")
	_, err = op.Wait()
	require.NoError(t, err)
	assert.Equal(t, 2, fake.Calls("cuModuleLoadData"))
}

func TestContextHandling(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 4096)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// No current context: the primary context is pushed and popped.
	op, err := d.ZeroAsync(0, 0, []Range{{p, 4096}}, true, false)
	require.NoError(t, err)
	_, err = op.Wait()
	require.NoError(t, err)
	assert.Equal(t, fake.Calls("cuCtxPushCurrent"), fake.Calls("cuCtxPopCurrent"))
	assert.Positive(t, fake.Calls("cuCtxPushCurrent"))
	assert.Zero(t, fake.CtxDepth())

	// The caller's current context of the right device is used as is.
	require.NoError(t, fake.PushPrimary(0))
	fake.Reset()
	op, err = d.ZeroAsync(0, 0, []Range{{p, 4096}}, true, false)
	require.NoError(t, err)
	assert.Zero(t, fake.Calls("cuCtxPushCurrent"))
	assert.Equal(t, 1, fake.CtxDepth())
	assert.Zero(t, fake.Calls("cuCtxGetDevice"), "the primary context's state was loaded for device 0 by the first call")

	// A driver that has not seen the context yet asks for its device once.
	d2 := newDriver(t)
	for i := range 2 {
		fake.Reset()
		o, err := d2.ZeroAsync(0, 0, []Range{{p, 4096}}, true, false)
		require.NoError(t, err)
		_, err = o.Wait()
		require.NoError(t, err)
		assert.Equal(t, 1-i, fake.Calls("cuCtxGetDevice"), "call %d", i)
		assert.Zero(t, fake.Calls("cuCtxPushCurrent"))
	}

	// A current context of another device: device 1's work gets its own.
	p1 := devAlloc(t, 1, 4096)
	op1, err := d.ZeroAsync(1, 0, []Range{{p1, 4096}}, true, false)
	require.NoError(t, err)
	assert.Equal(t, 1, fake.Calls("cuCtxPushCurrent"))
	assert.Equal(t, 1, fake.CtxDepth())
	for _, o := range []*Op{op, op1} {
		n, err := o.Wait()
		require.NoError(t, err)
		assert.Zero(t, n)
	}
	assert.True(t, allZero(mem(p1, 4096)))
	require.NoError(t, fake.Pop())
}

func TestEmptyRanges(t *testing.T) {
	d := newDriver(t)
	for _, rs := range [][]Range{nil, {{0, 0}}, {{12345, 0}}} {
		op, err := d.ZeroAsync(0, 0, rs, true, true)
		require.NoError(t, err)
		ready, err := op.Ready()
		require.NoError(t, err)
		assert.True(t, ready)
		n, err := op.Wait()
		require.NoError(t, err)
		assert.Zero(t, n)
	}
	assert.Zero(t, fake.Calls("cuEventRecord"))
}

func TestConcurrentStreams(t *testing.T) {
	d := newDriver(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		s := fake.StreamCreate(0)
		p := devAlloc(t, 0, 32<<10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				op, err := d.ZeroAsync(0, s, []Range{{p, 1000}, {p + 4096, 8192}}, true, i%2 == 0)
				if err == nil {
					var n uint64
					n, err = op.Wait()
					if err == nil && n != 0 {
						err = errors.New("non-zero after zeroize")
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			if !allZero(mem(p, 1000)) || !allZero(mem(p+4096, 8192)) {
				errs <- errors.New("memory not zero")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMergeAndChunks(t *testing.T) {
	assert.Equal(t, []Range{{100, 30}, {200, 5}}, merge([]Range{{100, 10}, {110, 20}, {0, 0}, {200, 5}}))
	assert.Empty(t, merge([]Range{{1, 0}}))
	assert.Equal(t, uint64(1), chunks(Range{0, chunkBytes}))
	assert.Equal(t, uint64(2), chunks(Range{1, chunkBytes}))
	assert.Equal(t, uint64(3), chunks(Range{chunkBytes - 1, chunkBytes + 2}))
}

func TestPTXShape(t *testing.T) {
	// The driver JIT (and the fake) accept this; keep the ISA a CUDA 12.0
	// driver understands and 64-bit addressing.
	assert.True(t, strings.Contains(kernelPTX, ".version 7.0"))
	assert.True(t, strings.Contains(kernelPTX, ".address_size 64"))
	assert.True(t, strings.Contains(kernelPTX, ".entry "+zeroKernel+"("))
	assert.True(t, strings.Contains(kernelPTX, ".entry "+verifyKernel+"("))
	assert.True(t, strings.Contains(kernelPTX, ".entry "+poolZeroKernel+"("))
	assert.True(t, strings.Contains(kernelPTX, ".entry "+poolVerifyKernel+"("))
	assert.True(t, strings.Contains(kernelPTX, "st.global.v4.u32"))
	// every template placeholder (@name@) is filled; PTX's own '@' only
	// starts a predicate (@%p, @!%p)
	assert.False(t, regexp.MustCompile(`@[A-Za-z]`).MatchString(kernelPTX))
}

func TestErrorString(t *testing.T) {
	e := &Error{Op: "cuMemAlloc(64)", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY"}
	assert.Equal(t, "cudazero: cuMemAlloc(64): CUDA_ERROR_OUT_OF_MEMORY (2)", e.Error())
	assert.True(t, e.OutOfMemory())
}

func TestDevMemHelpers(t *testing.T) {
	d := newDriver(t)
	p, err := d.memAlloc(0, 4096)
	require.NoError(t, err)
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(i%251 + 1)
	}
	require.NoError(t, d.copyIn(0, p, data))
	got := make([]byte, 4096)
	require.NoError(t, d.copyOut(0, p, got))
	assert.Equal(t, data, got)
	// Verify-only over known data: exact count by the kernel's rule.
	rs := []Range{{p + 1, 40}, {p + 100, 3}}
	op, err := d.zeroAsync(0, 0, rs, false, true, false)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Equal(t, hostCount(p+1, data[1:41])+hostCount(p+100, data[100:103]), n)
	require.NoError(t, d.fillAsync(0, 0, p, 16, 0))
	require.NoError(t, d.fillMany(0, 0, []Range{{p + 16, 16}, {p + 64, 8}}))
	require.NoError(t, d.syncStream(0, 0))
	require.NoError(t, d.copyOut(0, p, got))
	assert.True(t, allZero(got[:32]) && allZero(got[64:72]))
	assert.Equal(t, data[32:64], got[32:64])
	require.NoError(t, d.memFree(0, p))
	var ce *Error
	require.ErrorAs(t, d.memFree(0, p), &ce)
	assert.Equal(t, "CUDA_ERROR_INVALID_VALUE", ce.Name)
}

// onlyCtxState returns the driver's single context state (one device used).
func onlyCtxState(t *testing.T, d *Driver) *ctxState {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Len(t, d.ctxs, 1)
	for _, cs := range d.ctxs {
		return cs
	}
	return nil
}

// collectPending runs the garbage collector until n slots of dropped Ops
// are parked, or fails after a while.
func collectPending(t *testing.T, cs *ctxState, n int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		runtime.GC()
		cs.mu.Lock()
		got := len(cs.pending)
		cs.mu.Unlock()
		if got >= n {
			require.Equal(t, n, got)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the slots of %d dropped Ops were never parked", n)
}

// An Op dropped without Wait gives its pinned buffers and event back when
// it is garbage collected, and they are reused only once the device has
// finished the work that reads them.
func TestDroppedOpSlotReclaimed(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 4096)
	r := []Range{{p, 4096}}
	drop := func(stream uint64) {
		_, err := d.ZeroAsync(0, stream, r, true, false)
		require.NoError(t, err)
	}
	for i := 0; i < 4; i++ {
		drop(0)
	}
	cs := onlyCtxState(t, d)
	collectPending(t, cs, 4)
	events := fake.Calls("cuEventCreate")
	var ops []*Op
	for i := 0; i < 4; i++ { // four outstanding at once: all four parked slots are needed
		op, err := d.ZeroAsync(0, 0, r, true, false)
		require.NoError(t, err)
		ops = append(ops, op)
	}
	require.Equal(t, events, fake.Calls("cuEventCreate"), "the parked slots were reused, none created")
	for _, op := range ops {
		_, err := op.Wait()
		require.NoError(t, err)
	}

	// A dropped Op whose work is still queued keeps its slot out of use.
	s := fake.StreamCreate(0)
	require.NoError(t, fake.Hold(0, s, true))
	drop(s)
	collectPending(t, cs, 1)
	var held []*Op
	for i := 0; i < 4; i++ { // the three slots still free (the dropped Op took one), then a new one: not the parked one
		op, err := d.ZeroAsync(0, 0, r, true, false)
		require.NoError(t, err)
		held = append(held, op)
	}
	require.Equal(t, events+1, fake.Calls("cuEventCreate"))
	cs.mu.Lock()
	require.Len(t, cs.pending, 1, "still queued on the held stream")
	cs.mu.Unlock()
	for _, op := range held {
		_, err := op.Wait()
		require.NoError(t, err)
	}
	require.NoError(t, fake.Hold(0, s, false))
	require.Eventually(t, func() bool { return fake.Pending(0, s) == 0 }, 2*time.Second, time.Millisecond)
	held = held[:0]
	for i := 0; i < 5; i++ { // the four free slots, then the parked one: its work is done now
		op, err := d.ZeroAsync(0, 0, r, true, false)
		require.NoError(t, err)
		held = append(held, op)
	}
	require.Equal(t, events+1, fake.Calls("cuEventCreate"), "the parked slot was reused once its work completed")
	cs.mu.Lock()
	require.Empty(t, cs.pending)
	cs.mu.Unlock()
	for _, op := range held {
		_, err := op.Wait()
		require.NoError(t, err)
	}
	assert.True(t, allZero(mem(p, 4096)))
}

// One 16-byte-aligned range is verified as a one-region pool: a constant,
// tiny table whatever its size, and the same count as the descriptor rule.
func TestZeroContiguousVerifyAsPool(t *testing.T) {
	d := newDriver(t)
	const size = 4 << 20
	p := devAlloc(t, 0, size+4096)
	r := Range{p + 4096, size - 2} // aligned start, ragged end: D8, many chunks
	for _, dp := range []bool{false, true} {
		fake.Reset()
		fake.PlantBeforeVerify(r.Ptr+3*chunkBytes+5, 0x33)
		op, err := d.ZeroAsync(0, 0, []Range{r}, true, dp)
		require.NoError(t, err)
		n, err := op.Wait()
		require.NoError(t, err)
		assert.Equal(t, uint64(4), n, "one non-zero aligned word in chunk 3")
		passes := 1
		if dp {
			passes = 2
		}
		assert.Equal(t, passes, fake.Calls("cuMemsetD8Async"))
		assert.Equal(t, 1, fake.Calls("cuLaunchKernel"))
		assert.Zero(t, fake.Calls("cuMemcpyHtoDAsync"), "44-byte table read from pinned memory")
		assert.Zero(t, fake.Calls("cuMemcpyDtoHAsync"))
		b := mem(r.Ptr, r.Len)
		b[3*chunkBytes+5] = 0
		assert.True(t, allZero(b))
	}
	// Verify alone on non-zero data: the count of the whole range.
	fake.Reset()
	q := devAlloc(t, 0, 1<<20)
	op, err := d.zeroAsync(0, 0, []Range{{q, 1 << 20}}, false, true, false)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Equal(t, hostCount(q, mem(q, 1<<20)), n)
}
