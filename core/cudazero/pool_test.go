package cudazero

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// poolLayout is a small paged pool on fake device memory: regions 0 and 1
// interleave K and V blocks in one allocation (FlashInfer-style), region 2 is
// contiguous blocks of another allocation, region 3 has blocks larger than a
// 64 KiB kernel chunk and an unaligned base.
type poolLayout struct {
	regions []PoolRegion
	nblocks uint32
	allocs  []Range
}

func newPoolLayout(t *testing.T) poolLayout {
	t.Helper()
	const nb, bb = 12, 4096 + 48
	a := devAlloc(t, 0, nb*2*bb)
	b := devAlloc(t, 0, nb*bb)
	const big, bigStride = 70001, 70016
	c := devAlloc(t, 0, nb*bigStride+16)
	return poolLayout{
		regions: []PoolRegion{{a, 2 * bb, bb}, {a + bb, 2 * bb, bb}, {b, bb, bb}, {c + 3, bigStride, big}},
		nblocks: nb,
		allocs:  []Range{{a, nb * 2 * bb}, {b, nb * bb}, {c, nb*bigStride + 16}},
	}
}

// checkPool asserts that exactly the listed blocks of every region are zero
// and every other byte of the allocations is still non-zero (devAlloc filled
// them with non-zero bytes).
func (l poolLayout) check(t *testing.T, blocks []uint32) {
	t.Helper()
	zeroed := map[uint64]bool{}
	for _, r := range l.regions {
		for _, b := range blocks {
			p := r.Base + uint64(b)*r.Stride
			require.True(t, allZero(mem(p, r.BlockBytes)), "block %d of region at %#x not zeroed", b, r.Base)
			for i := uint64(0); i < r.BlockBytes; i++ {
				zeroed[p+i] = true
			}
		}
	}
	for _, a := range l.allocs {
		for i, x := range mem(a.Ptr, a.Len) {
			if !zeroed[a.Ptr+uint64(i)] {
				require.NotZero(t, x, "byte %#x outside the released blocks was touched", a.Ptr+uint64(i))
			}
		}
	}
}

func TestZeroPoolOneLaunch(t *testing.T) {
	for _, verify := range []bool{true, false} {
		d := newDriver(t)
		l := newPoolLayout(t)
		blocks := []uint32{1, 3, 4, 11}
		op, err := d.ZeroPoolAsync(0, 0, l.regions, blocks, verify)
		require.NoError(t, err)
		n, err := op.Wait()
		require.NoError(t, err)
		assert.Zero(t, n)
		assert.Equal(t, 1, fake.Calls("cuLaunchKernel"), "one launch (zero, or zero + read back) for %d ranges", len(blocks)*len(l.regions))
		assert.Zero(t, fake.Calls("cuMemcpyHtoDAsync"), "region table and block ids read from pinned memory")
		assert.Zero(t, fake.Calls("cuMemcpyDtoHAsync"), "the kernel publishes the count")
		assert.Zero(t, fake.Calls("cuPointerGetAttributes"), "no per-release validation")
		assert.Zero(t, fake.Calls("cuMemsetD8Async"))
		counterInit := 0
		if verify {
			counterInit = 1
		}
		assert.Equal(t, counterInit, fake.Calls("cuMemsetD32Async"), "the verify counter of a new slot")
		l.check(t, blocks)
	}
}

func TestZeroPoolLaunchCountIndependentOfBlocks(t *testing.T) {
	d := newDriver(t)
	const nb, bb, nr = 512, 256, 8
	p := devAlloc(t, 0, nr*nb*bb)
	regions := make([]PoolRegion, nr)
	for i := range regions {
		regions[i] = PoolRegion{p + uint64(i)*bb, nr * bb, bb}
	}
	for _, n := range []int{1, 37, nb} {
		fake.Reset()
		blocks := make([]uint32, n)
		for i := range blocks {
			blocks[i] = uint32(i * (nb / n))
		}
		op, err := d.ZeroPoolAsync(0, 0, regions, blocks, true)
		require.NoError(t, err)
		nz, err := op.Wait()
		require.NoError(t, err)
		assert.Zero(t, nz)
		assert.Equal(t, 1, fake.Calls("cuLaunchKernel"), "%d blocks", n)
		for _, b := range blocks {
			assert.True(t, allZero(mem(p+uint64(b)*nr*bb, nr*bb)))
		}
	}
}

func TestZeroPoolVerifyCountsPlantedBytes(t *testing.T) {
	d := newDriver(t)
	l := newPoolLayout(t)
	r0, r3 := l.regions[0], l.regions[3]
	for _, tc := range []struct {
		name   string
		plant  uint64
		expect uint64
	}{
		{"aligned word", r0.Base + 5*r0.Stride + 64 + 1, 4},
		{"unaligned head byte", r3.Base + 2*r3.Stride + 1, 1},
		{"second chunk of a big block", r3.Base + 2*r3.Stride + 65536 + 256, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.PlantBeforeVerify(tc.plant, 0x5a)
			op, err := d.ZeroPoolAsync(0, 0, l.regions, []uint32{2, 5}, true)
			require.NoError(t, err)
			n, err := op.Wait()
			require.NoError(t, err)
			assert.Equal(t, tc.expect, n)
			assert.Equal(t, byte(0x5a), mem(tc.plant, 1)[0])
		})
	}
}

func TestZeroPoolNeverSynchronizes(t *testing.T) {
	d := newDriver(t)
	l := newPoolLayout(t)
	s := fake.StreamCreate(0)
	require.NoError(t, fake.Hold(0, s, true))
	require.NoError(t, fake.EnqueueFill(0, s, l.allocs[1].Ptr, l.allocs[1].Len, 0xff))
	op, err := d.ZeroPoolAsync(0, s, l.regions, []uint32{0, 7}, true)
	require.NoError(t, err)
	ready, err := op.Ready()
	require.NoError(t, err)
	assert.False(t, ready, "work is still queued on the held stream")
	assert.Zero(t, fake.Calls("cuEventSynchronize")+fake.Calls("cuStreamSynchronize"))
	assert.True(t, noneZero(mem(l.regions[0].Base, l.regions[0].BlockBytes)), "returned before the device ran anything")
	require.NoError(t, fake.Hold(0, s, false))
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	l.check(t, []uint32{0, 7})
}

func TestZeroPoolRefusesBadInput(t *testing.T) {
	d := newDriver(t)
	l := newPoolLayout(t)
	for _, tc := range []struct {
		name    string
		ordinal int
		regions []PoolRegion
		blocks  []uint32
		want    string
	}{
		{"negative ordinal", -1, l.regions, []uint32{0}, "ordinal -1"},
		{"NULL base", 0, []PoolRegion{{0, 4096, 4096}}, []uint32{0}, "region 0 has a NULL base"},
		{"address overflow", 0, []PoolRegion{l.regions[0], {math.MaxUint64 - 4096, 4096, 4096}}, []uint32{0, 2}, "region 1: block 2"},
		{"stride overflow", 0, []PoolRegion{{4096, math.MaxUint64 / 2, 4096}}, []uint32{3}, "overflows"},
		{"block too large", 0, []PoolRegion{{4096, 0, math.MaxUint64 / 2}, {4096, 0, math.MaxUint64 / 2}, {4096, 0, 4}}, []uint32{0}, "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, err := d.ZeroPoolAsync(tc.ordinal, 0, tc.regions, tc.blocks, true)
			require.ErrorIs(t, err, ErrInvalidRange)
			assert.Nil(t, op)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	s := fake.StreamCreate(0)
	require.NoError(t, fake.SetCapturing(0, s, 1))
	_, err := d.ZeroPoolAsync(0, s, l.regions, []uint32{0}, true)
	require.ErrorIs(t, err, ErrCapturing)
	assert.Zero(t, fake.Calls("cuLaunchKernel")+fake.Calls("cuMemcpyHtoDAsync"))
	// Nothing to do: no device work, Wait reports 0.
	for _, rs := range [][]PoolRegion{nil, {{l.regions[0].Base, 4096, 0}}} {
		op, err := d.ZeroPoolAsync(0, 0, rs, []uint32{0}, true)
		require.NoError(t, err)
		n, err := op.Wait()
		require.NoError(t, err)
		assert.Zero(t, n)
	}
	op, err := d.ZeroPoolAsync(0, 0, l.regions, nil, true)
	require.NoError(t, err)
	ready, err := op.Ready()
	require.NoError(t, err)
	assert.True(t, ready)
	assert.Zero(t, fake.Calls("cuLaunchKernel"))
	l.check(t, nil)
}

// A layout checked once serves every release; an id at or above its block
// count is refused while the ids are staged, before any device work, and the
// slot it had taken serves the next release.
func TestPoolLayout(t *testing.T) {
	d := newDriver(t)
	l := newPoolLayout(t)
	pl, err := NewPoolLayout(l.regions, uint64(l.nblocks))
	require.NoError(t, err)
	assert.Equal(t, l.regions, pl.Regions())
	assert.Equal(t, uint64(l.nblocks), pl.NumBlocks())
	var per uint64
	for _, r := range l.regions {
		per += r.BlockBytes
	}
	assert.Equal(t, per, pl.BlockBytes())

	for i, bad := range [][]uint32{{l.nblocks}, {0, 3, l.nblocks + 7, 1}, {math.MaxUint32}} {
		fake.Reset()
		op, err := d.ZeroPoolLayoutAsync(0, 0, pl, bad, true)
		require.ErrorIs(t, err, ErrInvalidRange)
		assert.Nil(t, op)
		assert.Contains(t, err.Error(), "is out of range (the pool layout has 12 blocks)")
		assert.Zero(t, fake.Calls("cuLaunchKernel")+fake.Calls("cuMemcpyHtoDAsync")+fake.Calls("cuMemsetD32Async")+fake.Calls("cuEventRecord"))
		if i > 0 {
			assert.Zero(t, fake.Calls("cuMemAllocHost")+fake.Calls("cuEventCreate"), "the slot of the first refusal is reused")
		}
	}
	l.check(t, nil)
	blocks := []uint32{0, 5, l.nblocks - 1}
	op, err := d.ZeroPoolLayoutAsync(0, 0, pl, blocks, true)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Zero(t, fake.Calls("cuMemAllocHost"), "the refused releases' slot serves this one")
	l.check(t, blocks)

	for _, tc := range []struct {
		name      string
		regions   []PoolRegion
		numBlocks uint64
		want      string
	}{
		{"too many blocks", l.regions, 1<<32 + 1, "32-bit block ids"},
		{"NULL base", []PoolRegion{{0, 4096, 4096}}, 1, "region 0 has a NULL base"},
		{"last block overflows", []PoolRegion{{math.MaxUint64 - 8192, 4096, 4096}}, 3, "block 2"},
		{"block size overflows", []PoolRegion{{4096, 0, math.MaxUint64 / 2}, {4096, 0, math.MaxUint64/2 + 2}}, 1, "block size overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPoolLayout(tc.regions, tc.numBlocks)
			require.ErrorIs(t, err, ErrInvalidRange)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// The last block of a layout that just fits is accepted.
	_, err = NewPoolLayout([]PoolRegion{{math.MaxUint64 - 8192, 4096, 4096}}, 2)
	require.NoError(t, err)
}

func TestZeroPoolDriverErrors(t *testing.T) {
	for _, fn := range []string{"cuMemAllocHost", "cuMemAlloc"} {
		t.Run("OOM "+fn, func(t *testing.T) {
			d := newDriver(t) // no pooled staging buffers yet
			l := newPoolLayout(t)
			fake.Inject(fn, errOOM, 0, 1)
			_, err := d.ZeroPoolAsync(0, 0, l.regions, []uint32{1}, true)
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.True(t, ce.OutOfMemory())
			assert.Equal(t, "CUDA_ERROR_OUT_OF_MEMORY", ce.Name)
			assert.Contains(t, err.Error(), fn)
			assert.Zero(t, fake.Calls("cuLaunchKernel"))
			op, err := d.ZeroPoolAsync(0, 0, l.regions, []uint32{1}, true)
			require.NoError(t, err, "the next call succeeds")
			_, err = op.Wait()
			require.NoError(t, err)
			l.check(t, []uint32{1})
		})
	}
	t.Run("launch failure names the kernel", func(t *testing.T) {
		d := newDriver(t)
		l := newPoolLayout(t)
		fake.Inject("cuLaunchKernel", errLaunch, 0, 1)
		_, err := d.ZeroPoolAsync(0, 0, l.regions, []uint32{1}, true)
		var ce *Error
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "CUDA_ERROR_LAUNCH_FAILED", ce.Name)
		assert.Contains(t, err.Error(), poolZeroVerifyKernel)
	})
	t.Run("illegal address: memory freed while queued", func(t *testing.T) {
		d := newDriver(t)
		p, err := fake.Alloc(0, 1<<16)
		require.NoError(t, err)
		require.NoError(t, fake.Hold(0, 0, true))
		op, err := d.ZeroPoolAsync(0, 0, []PoolRegion{{p, 4096, 1000}}, []uint32{0, 3}, true)
		require.NoError(t, err)
		require.NoError(t, fake.Free(p))
		require.NoError(t, fake.Hold(0, 0, false))
		_, err = op.Wait()
		var ce *Error
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "CUDA_ERROR_ILLEGAL_ADDRESS", ce.Name)
		assert.Contains(t, err.Error(), "cuEventSynchronize")
		assert.Equal(t, errIllegalAddr, fake.Sticky(0))
	})
}

// findPtxas locates NVIDIA's PTX assembler: $KVH_PTXAS, ptxas on PATH, or the
// nvidia-cuda-nvcc-cu12 wheel in the project's .venv.
func findPtxas() (string, string) {
	if p := os.Getenv("KVH_PTXAS"); p != "" {
		return p, ""
	}
	if p, err := exec.LookPath("ptxas"); err == nil {
		return p, ""
	}
	ms, _ := filepath.Glob(filepath.Join("..", "..", ".venv", "lib", "python3*", "site-packages", "nvidia", "cuda_nvcc", "bin", "ptxas"))
	if len(ms) > 0 {
		return ms[0], ""
	}
	return "", "ptxas not found: set KVH_PTXAS, put ptxas on PATH, or pip install nvidia-cuda-nvcc-cu12 into .venv"
}

// TestPTXAssembles runs NVIDIA's ptxas over the embedded kernels for the
// oldest target the PTX names and for Volta and Hopper.
func TestPTXAssembles(t *testing.T) {
	ptxas, why := findPtxas()
	if ptxas == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must assemble the embedded PTX: %s (scripts/setup.sh installs nvidia-cuda-nvcc-cu12)", why)
		}
		t.Skip(why)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "kvhygiene.ptx")
	require.NoError(t, os.WriteFile(src, []byte(kernelPTX), 0o644))
	for _, arch := range []string{"sm_50", "sm_70", "sm_90"} {
		out, err := exec.Command(ptxas, "-arch="+arch, "-o", filepath.Join(dir, arch+".cubin"), src).CombinedOutput()
		require.NoError(t, err, "ptxas -arch=%s: %s", arch, out)
		assert.Empty(t, strings.TrimSpace(string(out)), "ptxas -arch=%s warnings", arch)
	}
}

// poolHostCount is kvh_pool_verify's counting rule on the host: hostCount
// over every 64 KiB chunk of every listed block of every region; at(p, n)
// returns the current bytes [p, p+n).
func poolHostCount(regions []PoolRegion, blocks []uint32, at func(p, n uint64) []byte) uint64 {
	var want uint64
	for _, r := range regions {
		for _, b := range blocks {
			a := r.Base + uint64(b)*r.Stride
			for off := uint64(0); off < r.BlockBytes; off += chunkBytes {
				n := min(r.BlockBytes-off, chunkBytes)
				want += hostCount(a+off, at(a+off, n))
			}
		}
	}
	return want
}

func TestZeroPoolVerifyOnlyMatchesHostRule(t *testing.T) {
	d := newDriver(t)
	l := newPoolLayout(t)
	blocks := []uint32{0, 2, 9}
	want := poolHostCount(l.regions, blocks, mem)
	require.Positive(t, want)
	op, err := d.zeroPoolAsync(0, 0, mustLayout(t, l.regions, blocks), blocks, false, true)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Equal(t, want, n)
	assert.Equal(t, 1, fake.Calls("cuLaunchKernel"), "verify only")
	l.check(t, nil)
}

// Each verify launch publishes its own count: the device counter is zeroed
// again by the kernel (or, without unified addressing, by the table copy),
// so consecutive operations on one slot never add up.
func TestVerifyCountsDoNotAccumulate(t *testing.T) {
	for _, unified := range []bool{true, false} {
		t.Run(map[bool]string{true: "unified addressing", false: "no unified addressing"}[unified], func(t *testing.T) {
			d := newDriver(t)
			fake.SetUnified(unified)
			l := newPoolLayout(t)
			p := devAlloc(t, 0, 1<<16)
			r := Range{p, 1 << 16}
			for i, plant := range []bool{true, false, true, false} {
				fake.Reset()
				fake.SetUnified(unified)
				if plant {
					fake.PlantBeforeVerify(l.regions[2].Base+2*l.regions[2].Stride+64, 0x5a)
				}
				op, err := d.ZeroPoolAsync(0, 0, l.regions, []uint32{2, 5}, true)
				require.NoError(t, err)
				n, err := op.Wait()
				require.NoError(t, err)
				want := uint64(0)
				if plant {
					want = 4 // one non-zero aligned word
				}
				assert.Equal(t, want, n, "pool release %d", i)
				copies := 0
				if !unified {
					copies = 1
				}
				assert.Equal(t, copies, fake.Calls("cuMemcpyHtoDAsync"), "table copies, release %d", i)
				assert.Equal(t, copies, fake.Calls("cuMemcpyDtoHAsync"), "count copies, release %d", i)
				assert.Equal(t, 1, fake.Calls("cuLaunchKernel"), "release %d", i)

				// The same slot serves a descriptor-table verify next.
				fake.Reset()
				fake.SetUnified(unified)
				if plant {
					fake.PlantBeforeVerify(p+3, 0x01)
				}
				op, err = d.ZeroAsync(0, 0, []Range{r}, true, false)
				require.NoError(t, err)
				n, err = op.Wait()
				require.NoError(t, err)
				assert.Equal(t, want, n, "sanitize %d", i)
			}
			l.check(t, []uint32{2, 5})
		})
	}
}

// A table larger than mappedMax is copied to the device even with unified
// addressing; the count is still published by the kernel, and the next,
// small table on the same slot starts from a zero counter.
func TestLargeTableIsCopied(t *testing.T) {
	d := newDriver(t)
	p := devAlloc(t, 0, 16<<20)
	var rs []Range
	for off := uint64(0); off < 16<<20; off += 4096 {
		rs = append(rs, Range{p + off, 2048}) // 4096 descriptors: 64 KiB + header
	}
	op, err := d.ZeroAsync(0, 0, rs, true, false)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, 1, fake.Calls("cuMemcpyHtoDAsync"), "large table copied")
	assert.Zero(t, fake.Calls("cuMemcpyDtoHAsync"), "count published by the kernel")
	assert.Zero(t, fake.Calls("cuMemsetD32Async"), "the copy zeroed the counter")
	for _, r := range rs {
		require.True(t, allZero(mem(r.Ptr, r.Len)))
	}
	fake.Reset()
	fake.PlantBeforeVerify(p+16, 0x7f) // inside range 0, after its zeroing
	op, err = d.ZeroAsync(0, 0, rs[:2], true, false)
	require.NoError(t, err)
	n, err = op.Wait()
	require.NoError(t, err)
	assert.Equal(t, uint64(4), n)
	assert.Zero(t, fake.Calls("cuMemcpyHtoDAsync"), "small table read from pinned memory")
	assert.Zero(t, fake.Calls("cuMemsetD32Async"), "the kernel left the counter zero")
}

// mustLayout is the layout of regions for the largest id in blocks.
func mustLayout(t testing.TB, regions []PoolRegion, blocks []uint32) *PoolLayout {
	t.Helper()
	l, err := layoutFor(regions, blocks)
	require.NoError(t, err)
	return l
}

func TestMaxID(t *testing.T) {
	assert.Zero(t, maxID(nil))
	for n := 1; n <= 9; n++ {
		for at := 0; at < n; at++ {
			ids := make([]uint32, n)
			for i := range ids {
				ids[i] = uint32(i % 3)
			}
			ids[at] = 1000 + uint32(at)
			assert.Equal(t, 1000+uint32(at), maxID(ids), "n %d, max at %d", n, at)
		}
	}
}
