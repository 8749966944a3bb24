package cudazero

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Real-GPU tests: run only with KVH_CUDAZERO_REAL=1 against the system
// libcuda (tests/gpu/run.sh builds this test binary with `go test -c` and runs
// it on a GPU machine: ./cudazero.test -test.run 'TestReal').

func realDriver(t *testing.T) *Driver {
	t.Helper()
	if os.Getenv("KVH_CUDAZERO_REAL") != "1" {
		t.Skip("real-GPU test: set KVH_CUDAZERO_REAL=1 on a machine with an NVIDIA GPU")
	}
	d, err := open(LibraryPath())
	require.NoError(t, err)
	return d
}

// hostCount is the verify kernel's counting rule on the host.
func hostCount(p uint64, b []byte) uint64 {
	end := p + uint64(len(b))
	bs := (p + 15) &^ 15
	if bs > end {
		bs = end
	}
	be := end &^ 15
	if be < bs {
		be = bs
	}
	var n uint64
	for a := p; a < end; {
		if a >= bs && a < be {
			w := b[a-p : a-p+4]
			if w[0]|w[1]|w[2]|w[3] != 0 {
				n += 4
			}
			a += 4
			continue
		}
		if b[a-p] != 0 {
			n++
		}
		a++
	}
	return n
}

func TestRealDriverIdentity(t *testing.T) {
	d := realDriver(t)
	v, _ := d.DriverVersion()
	n, err := d.DeviceCount()
	require.NoError(t, err)
	require.Positive(t, n)
	uuid, err := d.DeviceUUID(0)
	require.NoError(t, err)
	assert.Regexp(t, `^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, uuid)
	t.Logf("driver %d, %d device(s), resolver %s, device 0 %s", v, n, d.Resolver(), uuid)
}

func TestRealZeroAndVerify(t *testing.T) {
	d := realDriver(t)
	const size = 64 << 20
	p, err := d.memAlloc(0, size)
	require.NoError(t, err)
	defer func() { _ = d.memFree(0, p) }()
	rng := rand.New(rand.NewSource(1))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Intn(255) + 1)
	}

	cases := []struct {
		name string
		rs   []Range
	}{
		{"contiguous D32", []Range{{p + 4096, 32 << 20}}},
		{"contiguous aligned start, odd length", []Range{{p + 8192, 5<<20 + 7}}},
		{"contiguous D8 unaligned", []Range{{p + 3, 10<<20 + 5}}},
		{"tiny unaligned", []Range{{p + 17, 3}}},
	}
	// Scatter: 3000 ranges of random size and alignment with random gaps.
	var sc []Range
	off := uint64(0)
	for i := 0; i < 3000; i++ {
		off += uint64(rng.Intn(64) + 1)
		n := uint64(rng.Intn(9000) + 1)
		if i%500 == 7 {
			n = 300 << 10
		}
		sc = append(sc, Range{p + off, n})
		off += n
	}
	require.Less(t, off, uint64(size))
	cases = append(cases, struct {
		name string
		rs   []Range
	}{"scatter 3000 ranges", sc})

	got := make([]byte, size)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, d.copyIn(0, p, data))
			// Verify alone on random data: exact count against the host rule.
			var want uint64
			for _, r := range merge(tc.rs) {
				want += hostCount(r.Ptr, data[r.Ptr-p:r.Ptr-p+r.Len])
			}
			op, err := d.zeroAsync(0, 0, tc.rs, false, true, false)
			require.NoError(t, err)
			n, err := op.Wait()
			require.NoError(t, err)
			var total uint64
			for _, r := range tc.rs {
				total += r.Len
			}
			if want > total {
				want = total
			}
			assert.Equal(t, want, n, "verify kernel count on random data")

			for _, dp := range []bool{false, true} {
				require.NoError(t, d.copyIn(0, p, data))
				op, err := d.ZeroAsync(0, 0, tc.rs, true, dp)
				require.NoError(t, err)
				n, err := op.Wait()
				require.NoError(t, err)
				assert.Zero(t, n, "double pass %v", dp)
				require.NoError(t, d.copyOut(0, p, got))
				expect := append([]byte(nil), data...)
				for _, r := range tc.rs {
					clear(expect[r.Ptr-p : r.Ptr-p+r.Len])
				}
				if !bytes.Equal(expect, got) {
					for i := range got {
						if got[i] != expect[i] {
							t.Fatalf("byte %d: got %#x want %#x", i, got[i], expect[i])
						}
					}
				}
			}
		})
	}
}

// TestRealZeroPool runs kvh_pool_zero / kvh_pool_verify on the GPU: the
// verify count on random data equals the host rule, the listed blocks of
// every region (interleaved K/V, unaligned base, blocks larger than a 64 KiB
// chunk) are zero afterwards and every other byte is unchanged.
func TestRealZeroPool(t *testing.T) {
	d := realDriver(t)
	const size = 32 << 20
	p, err := d.memAlloc(0, size)
	require.NoError(t, err)
	defer func() { _ = d.memFree(0, p) }()
	rng := rand.New(rand.NewSource(2))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Intn(255) + 1)
	}
	const nb, bb, big, bigStride = 64, 16<<10 + 48, 200001, 200016
	regions := []PoolRegion{
		{p, 2 * bb, bb}, {p + bb, 2 * bb, bb}, // interleaved K/V
		{p + 2*nb*bb + 5, bigStride, big}, // unaligned, > 64 KiB
		{p + 2*nb*bb + nb*bigStride + 64, 4096, 4096},
	}
	require.Less(t, regions[3].Base+nb*4096, p+size)
	blocks := []uint32{0, 1, 5, 17, 40, 63}
	at := func(q, n uint64) []byte { return data[q-p : q-p+n] }

	require.NoError(t, d.copyIn(0, p, data))
	op, err := d.zeroPoolAsync(0, 0, mustLayout(t, regions, blocks), blocks, false, true)
	require.NoError(t, err)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Equal(t, poolHostCount(regions, blocks, at), n, "verify kernel count on random data")

	op, err = d.ZeroPoolAsync(0, 0, regions, blocks, true)
	require.NoError(t, err)
	n, err = op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	got := make([]byte, size)
	require.NoError(t, d.copyOut(0, p, got))
	expect := append([]byte(nil), data...)
	for _, r := range regions {
		for _, b := range blocks {
			o := r.Base + uint64(b)*r.Stride - p
			clear(expect[o : o+r.BlockBytes])
		}
	}
	if !bytes.Equal(expect, got) {
		for i := range got {
			if got[i] != expect[i] {
				t.Fatalf("byte %d: got %#x want %#x", i, got[i], expect[i])
			}
		}
	}
	// A byte written into a released block after zeroing is found.
	plant := regions[2].Base + 17*bigStride + 70000
	require.NoError(t, d.fillAsync(0, 0, plant, 1, 9))
	op, err = d.zeroPoolAsync(0, 0, mustLayout(t, regions, blocks), blocks, false, true)
	require.NoError(t, err)
	n, err = op.Wait()
	require.NoError(t, err)
	expect[plant-p] = 9
	assert.Equal(t, poolHostCount(regions, blocks, func(q, n uint64) []byte { return expect[q-p : q-p+n] }), n)
	assert.Equal(t, uint64(4), n, "one non-zero aligned word")
}

func TestRealRefusesBadPointersAndKeepsWorking(t *testing.T) {
	d := realDriver(t)
	p, err := d.memAlloc(0, 1<<20)
	require.NoError(t, err)
	defer func() { _ = d.memFree(0, p) }()
	host := make([]byte, 4096)
	hp := uint64(uintptr(unsafe.Pointer(&host[0])))
	for _, r := range []Range{{hp, 4096}, {p, 1<<20 + 1}, {p + 1<<20 - 8, 16}, {0x1000, 64}} {
		_, err := d.ZeroAsync(0, 0, []Range{r}, true, false)
		require.ErrorIs(t, err, ErrInvalidRange, "%#x+%d", r.Ptr, r.Len)
		t.Log(err)
	}
	if n, _ := d.DeviceCount(); n > 1 {
		_, err := d.ZeroAsync(1, 0, []Range{{p, 16}}, true, false)
		require.ErrorIs(t, err, ErrInvalidRange)
	}
	op, err := d.ZeroAsync(0, 0, []Range{{p, 1 << 20}}, true, false)
	require.NoError(t, err, "the context still works")
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestRealStreamOrder(t *testing.T) {
	d := realDriver(t)
	const size = 1 << 30
	p, err := d.memAlloc(0, size)
	require.NoError(t, err)
	defer func() { _ = d.memFree(0, p) }()
	// Pending engine work (fill 1 GiB with 0xff several times) then our
	// zeroization of a part of it on the same stream: it must run after.
	for i := 0; i < 4; i++ {
		require.NoError(t, d.fillAsync(0, 0, p, size, 0xff))
	}
	start := time.Now()
	op, err := d.ZeroAsync(0, 0, []Range{{p, 1 << 20}, {p + 8<<20, 1 << 20}}, true, false)
	require.NoError(t, err)
	enq := time.Since(start)
	ready, err := op.Ready()
	require.NoError(t, err)
	t.Logf("enqueue took %v; ready right after: %v", enq, ready)
	n, err := op.Wait()
	require.NoError(t, err)
	assert.Zero(t, n)
	got := make([]byte, 10<<20)
	require.NoError(t, d.copyOut(0, p, got))
	assert.True(t, allZero(got[:1<<20]))
	assert.True(t, allZero(got[8<<20:9<<20]))
	assert.True(t, noneZero(got[1<<20:8<<20]))
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// TestRealBenchmarks measures and writes a markdown report to
// $KVH_GPU_RESULTS (stdout if unset). Timings are wall-clock from enqueue to
// Wait returning (the host waits on the event), medians of 9 runs.
func TestRealBenchmarks(t *testing.T) {
	d := realDriver(t)
	if os.Getenv("KVH_CUDAZERO_BENCH") != "1" {
		t.Skip("set KVH_CUDAZERO_BENCH=1")
	}
	const runs = 9
	var out strings.Builder
	uuid, _ := d.DeviceUUID(0)
	v, _ := d.DriverVersion()
	fmt.Fprintf(&out, "device 0 %s, driver %d, resolver %s; medians of %d runs, wall clock enqueue→Wait\n\n", uuid, v, d.Resolver(), runs)
	fmt.Fprintf(&out, "| case | bytes | ranges | median total | GB/s | median host enqueue |\n|---|---|---|---|---|---|\n")
	var enq []float64 // host enqueue times of the current timeIt
	timeIt := func(f func() error) float64 {
		var xs []float64
		require.NoError(t, f()) // warm-up (module load, slot allocation)
		enq = enq[:0]
		for i := 0; i < runs; i++ {
			st := time.Now()
			require.NoError(t, f())
			xs = append(xs, time.Since(st).Seconds())
		}
		return median(xs)
	}
	row := func(name string, bytes uint64, ranges int, sec float64) {
		e := "-"
		if len(enq) > 0 {
			e = fmt.Sprintf("%.1f µs", median(enq)*1e6)
		}
		fmt.Fprintf(&out, "| %s | %d MiB | %d | %.1f µs | %.0f | %s |\n", name, bytes>>20, ranges, sec*1e6, float64(bytes)/sec/1e9, e)
		enq = enq[:0]
	}
	wait := func(rs []Range, zero, verify bool) func() error {
		return func() error {
			st := time.Now()
			op, err := d.zeroAsync(0, 0, rs, zero, verify, false)
			enq = append(enq, time.Since(st).Seconds())
			if err != nil {
				return err
			}
			n, err := op.Wait()
			if err == nil && n != 0 && zero {
				return errors.New("non-zero after zeroize")
			}
			return err
		}
	}
	const big = 4 << 30
	p, err := d.memAlloc(0, big)
	require.NoError(t, err)
	defer func() { _ = d.memFree(0, p) }()

	for _, sz := range []uint64{256 << 20, 1 << 30} {
		rs := []Range{{p, sz}}
		row("raw cuMemsetD8Async", sz, 1, timeIt(func() error {
			if err := d.fillAsync(0, 0, p, sz, 0); err != nil {
				return err
			}
			return d.syncStream(0, 0)
		}))
		row("ZeroAsync contiguous (D32), no verify", sz, 1, timeIt(wait(rs, true, false)))
		row("ZeroAsync contiguous + verify", sz, 1, timeIt(wait(rs, true, true)))
		row("verify only (kvh_verify_nonzero)", sz, 1, timeIt(wait(rs, false, true)))
	}
	// 2 GiB in 32 KiB regions, every other 32 KiB of a 4 GiB allocation (no merging).
	var sc []Range
	for off := uint64(0); off < big; off += 64 << 10 {
		sc = append(sc, Range{p + off, 32 << 10})
	}
	row("raw cuMemsetD8Async contiguous 2 GiB", 2<<30, 1, timeIt(func() error {
		if err := d.fillAsync(0, 0, p, 2<<30, 0); err != nil {
			return err
		}
		return d.syncStream(0, 0)
	}))
	row("ZeroAsync scatter 32 KiB regions, one launch", 2<<30, len(sc), timeIt(wait(sc, true, false)))
	row("ZeroAsync scatter + verify", 2<<30, len(sc), timeIt(wait(sc, true, true)))
	row("verify only scatter", 2<<30, len(sc), timeIt(wait(sc, false, true)))
	row("verify only contiguous 2 GiB", 2<<30, 1, timeIt(wait([]Range{{p, 2 << 30}}, false, true)))

	// Host-side cost of enqueueing one pool release of 1024 blocks (non-adjacent
	// 32 KiB blocks; one ZeroAsync call incl. validation) versus 1024 separate
	// cuMemsetD8Async calls. Only the enqueue is timed; the device is drained
	// between runs.
	fmt.Fprintf(&out, "\n| host-side enqueue cost | median |\n|---|---|\n")
	for _, regionsPerBlock := range []int{1, 64} {
		var rs []Range
		for b := 0; b < 1024; b++ {
			for r := 0; r < regionsPerBlock; r++ {
				off := (uint64(r)*1024 + uint64(b)) * (64 << 10) % big
				rs = append(rs, Range{p + off, 16 << 10})
			}
		}
		var xs, ys []float64
		for i := 0; i < runs+1; i++ {
			st := time.Now()
			op, err := d.ZeroAsync(0, 0, rs, true, false)
			el := time.Since(st).Seconds()
			require.NoError(t, err)
			_, err = op.Wait()
			require.NoError(t, err)
			st = time.Now()
			require.NoError(t, d.fillMany(0, 0, rs))
			el2 := time.Since(st).Seconds()
			require.NoError(t, d.syncStream(0, 0))
			if i > 0 {
				xs, ys = append(xs, el), append(ys, el2)
			}
		}
		fmt.Fprintf(&out, "| one ZeroAsync(+verify) of 1024 blocks × %d regions (%d ranges) | %.1f µs |\n", regionsPerBlock, len(rs), median(xs)*1e6)
		fmt.Fprintf(&out, "| %d separate cuMemsetD8Async calls (C loop) | %.1f µs |\n", len(rs), median(ys)*1e6)
	}

	// Pool-shaped path (ZeroPoolAsync): 1024 blocks × 64 regions × 32 KiB =
	// 2 GiB, block b of region r at p + (b*64+r)*64 KiB (never adjacent).
	const pr, pb, pbb = 64, 1024, 32 << 10
	pregs, pblocks := interleavedPool(p, pr, pb, pbb)
	var pranges []Range
	for _, r := range pregs {
		for _, b := range pblocks {
			pranges = append(pranges, Range{r.Base + uint64(b)*r.Stride, pbb})
		}
	}
	require.LessOrEqual(t, pregs[pr-1].Base+uint64(pb-1)*pregs[0].Stride+pbb, p+big)
	pool := func(zero, verify bool) func() error {
		return func() error {
			st := time.Now()
			op, err := d.zeroPoolAsync(0, 0, mustLayout(t, pregs, pblocks), pblocks, zero, verify)
			enq = append(enq, time.Since(st).Seconds())
			if err != nil {
				return err
			}
			n, err := op.Wait()
			if err == nil && n != 0 && zero {
				return errors.New("non-zero after pool zeroize")
			}
			return err
		}
	}
	fmt.Fprintf(&out, "\n| pool-shaped (1024 blocks × 64 regions × 32 KiB) | bytes | ranges | median total | GB/s | median host enqueue |\n|---|---|---|---|---|---|\n")
	contig := timeIt(func() error {
		if err := d.fillAsync(0, 0, p, 2<<30, 0); err != nil {
			return err
		}
		return d.syncStream(0, 0)
	})
	row("raw cuMemsetD8Async contiguous 2 GiB", 2<<30, 1, contig)
	shaped := timeIt(pool(true, false))
	row("ZeroPoolAsync, no verify (one launch)", 2<<30, len(pranges), shaped)
	shapedV := timeIt(pool(true, true))
	row("ZeroPoolAsync + verify (one zero+verify launch)", 2<<30, len(pranges), shapedV)
	row("verify only (kvh_pool_verify)", 2<<30, len(pranges), timeIt(pool(false, true)))
	old := timeIt(wait(pranges, true, true))
	row("ZeroAsync + verify, same 65536 ranges (descriptor table)", 2<<30, len(pranges), old)
	fmt.Fprintf(&out, "\nend-to-end bandwidth of the 2 GiB scatter zeroize relative to the contiguous memset (target ≥ 0.8×): ZeroPoolAsync %.2f×, ZeroPoolAsync+verify %.2f×; ZeroPoolAsync+verify is %.2f× faster than ZeroAsync+verify over the same 65536 ranges\n",
		contig/shaped, contig/shapedV, old/shapedV)

	// Host-side cost of one pool release through the shaped path (enqueue
	// only; the device is drained between runs) vs 1024 separate memsets.
	fmt.Fprintf(&out, "\n| host-side enqueue cost, 1024 blocks × 64 regions × 32 KiB | median |\n|---|---|\n")
	memsets := make([]Range, pb)
	for b := range memsets {
		memsets[b] = Range{p + uint64(b)*(2<<20), pbb}
	}
	var xs, xv, ys []float64
	for i := 0; i < runs+1; i++ {
		for _, v := range []bool{false, true} {
			st := time.Now()
			op, err := d.ZeroPoolAsync(0, 0, pregs, pblocks, v)
			el := time.Since(st).Seconds()
			require.NoError(t, err)
			_, err = op.Wait()
			require.NoError(t, err)
			if i > 0 && v {
				xv = append(xv, el)
			} else if i > 0 {
				xs = append(xs, el)
			}
		}
		st := time.Now()
		require.NoError(t, d.fillMany(0, 0, memsets))
		el := time.Since(st).Seconds()
		require.NoError(t, d.syncStream(0, 0))
		if i > 0 {
			ys = append(ys, el)
		}
	}
	fmt.Fprintf(&out, "| one ZeroPoolAsync (no verify), 65536 ranges | %.1f µs |\n", median(xs)*1e6)
	fmt.Fprintf(&out, "| one ZeroPoolAsync + verify, 65536 ranges | %.1f µs |\n", median(xv)*1e6)
	fmt.Fprintf(&out, "| 1024 separate cuMemsetD8Async calls (C loop) | %.1f µs |\n", median(ys)*1e6)

	if path := os.Getenv("KVH_GPU_RESULTS"); path != "" {
		require.NoError(t, os.WriteFile(path, []byte(out.String()), 0o644))
	}
	t.Log("\n" + out.String())
}

// interleavedPool lays out nr regions of nb blocks of bb bytes from p: block
// b of region r at p + (b*nr+r)*64 KiB, so no two blocks are adjacent. It
// returns the regions and the block ids 0..nb-1.
func interleavedPool(p, nr uint64, nb int, bb uint64) ([]PoolRegion, []uint32) {
	regs := make([]PoolRegion, 0, nr)
	for r := uint64(0); r < nr; r++ {
		regs = append(regs, PoolRegion{Base: p + r*(64<<10), Stride: nr * (64 << 10), BlockBytes: bb})
	}
	blocks := make([]uint32, nb)
	for b := range blocks {
		blocks[b] = uint32(b)
	}
	return regs, blocks
}

// TestRealHostCostProbe prices each driver call of a 1024-block × 64-region
// pool release (medians of 101 runs, device drained between runs) and writes
// a markdown table to $KVH_GPU_PROBE (stdout if unset).
func TestRealHostCostProbe(t *testing.T) {
	d := realDriver(t)
	if os.Getenv("KVH_CUDAZERO_BENCH") != "1" {
		t.Skip("set KVH_CUDAZERO_BENCH=1")
	}
	const runs = 101
	const pr, pb, pbb = 64, 1024, 32 << 10
	const size = pr * pb * (64 << 10)
	p, err := d.memAlloc(0, size)
	require.NoError(t, err)
	defer func() { _ = d.memFree(0, p) }()
	regs, blocks := interleavedPool(p, pr, pb, pbb)
	var out strings.Builder
	us := func(xs []float64) string { return fmt.Sprintf("%.2f", median(xs)/1e3) }
	for _, c := range []struct {
		stream uint64
		fused  bool
		idle   time.Duration
	}{{0, false, 0}, {0, true, 0}, {2, false, 0}, {2, true, 0}, {0, true, 2 * time.Millisecond}} {
		names, xs, err := d.probeSteps(0, c.stream, regs, blocks, c.fused, runs, c.idle)
		require.NoError(t, err)
		idle := ""
		if c.idle > 0 {
			idle = fmt.Sprintf(", %v idle before each run", c.idle)
		}
		fmt.Fprintf(&out, "\nstream %#x, %s%s (µs, median of %d)\n\n| step | median µs |\n|---|---|\n", c.stream, map[bool]string{false: "earlier sequence: table copied, zero + verify kernels, count copied back", true: "ZeroPoolAsync now: table read from pinned host memory, one zero+verify kernel publishing the count"}[c.fused], idle, runs)
		var sum []float64
		for i, n := range names {
			fmt.Fprintf(&out, "| %s | %s |\n", n, us(xs[i]))
			for r, x := range xs[i] {
				if i == 0 {
					sum = append(sum, 0)
				}
				if !strings.HasPrefix(n, "cuEventSynchronize") {
					sum[r] += x
				}
			}
		}
		fmt.Fprintf(&out, "| **enqueue total** | %s |\n", us(sum))
	}
	small, big, err := d.probeParams(0, 0, runs)
	require.NoError(t, err)
	fmt.Fprintf(&out, "\n| empty kernel launch | median µs |\n|---|---|\n| 8-byte parameter | %s |\n| 4000-byte parameter | %s |\n", us(small), us(big))

	idle := false
	full := func(verify bool) []float64 {
		var xs []float64
		for i := 0; i < runs; i++ {
			if verify && idle {
				time.Sleep(2 * time.Millisecond)
			}
			st := time.Now()
			op, err := d.ZeroPoolAsync(0, 0, regs, blocks, verify)
			el := time.Since(st)
			require.NoError(t, err)
			n, err := op.Wait()
			require.NoError(t, err)
			require.Zero(t, n)
			xs = append(xs, float64(el.Nanoseconds()))
		}
		return xs
	}
	fmt.Fprintf(&out, "\n| whole ZeroPoolAsync (Go) | no current context | primary context current |\n|---|---|---|\n")
	nv, v := full(false), full(true)
	idle = true
	vi := full(true)
	idle = false
	runtime.LockOSThread()
	pop, err := d.probePush(0)
	require.NoError(t, err)
	nvc, vc := full(false), full(true)
	idle = true
	vic := full(true)
	pop()
	runtime.UnlockOSThread()
	fmt.Fprintf(&out, "| no verify | %s | %s |\n| verify | %s | %s |\n| verify, 2 ms after the previous Wait (idle) | %s | %s |\n", us(nv), us(nvc), us(v), us(vc), us(vi), us(vic))
	enq, cpu, err := d.probeIdle(0, 0, p, runs)
	require.NoError(t, err)
	fmt.Fprintf(&out, "\nwhat an idle host thread costs any caller (C, no Go, no kvhygiene code; medians of %d)\n\n| | back to back | 2 ms after the previous run |\n|---|---|---|\n", runs)
	fmt.Fprintf(&out, "| cuMemsetD8Async 4 KiB + cuEventRecord | %s | %s |\n| control without the driver: 1024 cache-line writes | %s | %s |\n", us(enq[0]), us(enq[1]), us(cpu[0]), us(cpu[1]))
	if path := os.Getenv("KVH_GPU_PROBE"); path != "" {
		require.NoError(t, os.WriteFile(path, []byte(out.String()), 0o644))
	}
	t.Log("\n" + out.String())
}
