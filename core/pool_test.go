package core

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestPoolRegisterValidation(t *testing.T) {
	tr, _ := newTracer(t, nil)
	mem := region(t, 1<<16, 1)
	base := addr(mem)
	for _, c := range []struct {
		name string
		d    PoolDesc
		want Status
	}{
		{"vllm K and V separate", PoolDesc{NumBlocks: 8, Regions: []PoolRegion{{base, 1024, 1024}, {base + 8192, 1024, 1024}}}, StatusOK},
		{"flashinfer interleaved", PoolDesc{NumBlocks: 8, Regions: []PoolRegion{{base, 2048, 1024}, {base + 1024, 2048, 1024}}}, StatusOK},
		{"single block stride 0", PoolDesc{NumBlocks: 1, Regions: []PoolRegion{{base, 0, 4096}}}, StatusOK},
		{"different strides disjoint blocks", PoolDesc{NumBlocks: 4, Regions: []PoolRegion{{base, 4096, 100}, {base + 200, 2048, 100}}}, StatusOK},
		{"different strides colliding", PoolDesc{NumBlocks: 4, Regions: []PoolRegion{{base, 4096, 100}, {base + 2048 + 4000, 2048, 200}}}, StatusInvalidArg},
		{"overlap by one byte", PoolDesc{NumBlocks: 8, Regions: []PoolRegion{{base, 1024, 1024}, {base + 8191, 1024, 1024}}}, StatusInvalidArg},
		{"interleaved overlapping", PoolDesc{NumBlocks: 8, Regions: []PoolRegion{{base, 2048, 1024}, {base + 1000, 2048, 1024}}}, StatusInvalidArg},
		{"same base", PoolDesc{NumBlocks: 2, Regions: []PoolRegion{{base, 64, 64}, {base, 64, 64}}}, StatusInvalidArg},
		{"block larger than stride", PoolDesc{NumBlocks: 2, Regions: []PoolRegion{{base, 100, 200}}}, StatusInvalidArg},
		{"zero block bytes", PoolDesc{NumBlocks: 2, Regions: []PoolRegion{{base, 100, 0}}}, StatusInvalidArg},
		{"zero base", PoolDesc{NumBlocks: 2, Regions: []PoolRegion{{0, 100, 10}}}, StatusInvalidArg},
		{"no regions", PoolDesc{NumBlocks: 2}, StatusInvalidArg},
		{"no blocks", PoolDesc{Regions: []PoolRegion{{base, 100, 10}}}, StatusInvalidArg},
		{"extent overflow", PoolDesc{NumBlocks: 1 << 20, Regions: []PoolRegion{{base, 1 << 62, 10}}}, StatusInvalidArg},
		{"base overflow", PoolDesc{NumBlocks: 2, Regions: []PoolRegion{{^uint64(0) - 100, 100, 10}}}, StatusInvalidArg},
		{"bad verify", PoolDesc{NumBlocks: 2, Verify: 8, Regions: []PoolRegion{{base, 100, 10}}}, StatusInvalidArg},
		{"bad device", PoolDesc{NumBlocks: 2, Device: 3, Regions: []PoolRegion{{base, 100, 10}}}, StatusInvalidArg},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.d.Model = "m"
			p, err := tr.PoolRegister(c.d)
			requireStatus(t, c.want, err)
			if err == nil {
				require.NoError(t, tr.PoolUnregister(p, false))
			}
		})
	}
	_, err := tr.PoolRegister(PoolDesc{NumBlocks: 1, Regions: []PoolRegion{{base, 0, 10}}})
	requireStatus(t, StatusInvalidID, err)
}

// A CPU region that is not (entirely) mapped memory is refused at
// registration, never faulted on at release.
func TestPoolRegisterRefusesUnmappedMemory(t *testing.T) {
	tr, _ := newTracer(t, nil)
	page := unix.Getpagesize()
	m, err := unix.Mmap(-1, 0, 3*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	require.NoError(t, err)
	base := addr(m)
	munmap := func(a uint64, n int) error {
		if _, _, e := unix.Syscall(unix.SYS_MUNMAP, uintptr(a), uintptr(n), 0); e != 0 {
			return e
		}
		return nil
	}
	t.Cleanup(func() { _ = munmap(base, 2*page) })
	require.NoError(t, munmap(base+2*uint64(page), page)) // a hole right after two mapped pages
	for _, c := range []struct {
		name string
		r    PoolRegion
		want Status
	}{
		{"inside the mapping", PoolRegion{base, 1024, 1024}, StatusOK},
		{"runs into the hole", PoolRegion{base + uint64(page), 1024, 1024}, StatusInvalidArg},
		{"entirely in the hole", PoolRegion{base + 2*uint64(page), 64, 64}, StatusInvalidArg},
		{"low address never mapped", PoolRegion{0x1000, 64, 64}, StatusInvalidArg},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := tr.PoolRegister(PoolDesc{NumBlocks: 2 * uint32(page) / 1024, Regions: []PoolRegion{c.r}, Model: "m"})
			requireStatus(t, c.want, err)
			if err == nil {
				require.NoError(t, tr.PoolUnregister(p, false))
			} else {
				require.Contains(t, err.Error(), "not mapped memory")
			}
		})
	}
}

// A vLLM-like layout: 2 layers x (K, V), 16 blocks of 256 bytes.
func TestPoolAssignRelease(t *testing.T) {
	tr, path := newTracer(t, nil)
	const nb, bb = 16, 256
	mem := region(t, 4*nb*bb, 0xEE)
	base := addr(mem)
	var regs []PoolRegion
	for r := 0; r < 4; r++ {
		regs = append(regs, PoolRegion{Base: base + uint64(r*nb*bb), Stride: bb, BlockBytes: bb})
	}
	p, err := tr.PoolRegister(PoolDesc{NumBlocks: nb, Regions: regs, Model: "llama", Name: "kv"})
	require.NoError(t, err)

	require.NoError(t, tr.PoolAssign(p, []uint32{1, 3, 5}, "tenant-a", "req-1"))
	// B may not take A's dirty block; all-or-nothing: block 7 is not assigned either
	err = tr.PoolAssign(p, []uint32{7, 3}, "tenant-b", "req-2")
	requireStatus(t, StatusIsolation, err)
	_, err = tr.PoolRelease(p, []uint32{7}, false)
	requireStatus(t, StatusState, err)
	_, err = tr.PoolRelease(p, []uint32{3}, false)
	requireStatus(t, StatusQuarantined, err)
	err = tr.PoolAssign(p, []uint32{3}, "tenant-a", "req-1")
	requireStatus(t, StatusQuarantined, err)
	requireStatus(t, StatusState, tr.PoolAssign(p, []uint32{1}, "tenant-a", "req-9"))
	requireStatus(t, StatusInvalidArg, tr.PoolAssign(p, []uint32{2, 2}, "tenant-a", "req-9"))
	requireStatus(t, StatusInvalidArg, tr.PoolAssign(p, []uint32{nb}, "tenant-a", "req-9"))
	requireStatus(t, StatusInvalidArg, tr.PoolAssign(p, nil, "tenant-a", "req-9"))

	cov, err := tr.PoolRelease(p, []uint32{5, 1}, false)
	require.NoError(t, err)
	require.Equal(t, 100.0, cov)
	for r := 0; r < 4; r++ {
		for _, b := range []int{0, 1, 2, 3, 4, 5, 6} {
			blk := mem[(r*nb+b)*bb : (r*nb+b+1)*bb]
			require.Equal(t, b == 1 || b == 5, allZero(blk), "region %d block %d", r, b)
		}
	}
	// released blocks are clean: another tenant may take them
	require.NoError(t, tr.PoolAssign(p, []uint32{1, 5}, "tenant-b", "req-3"))

	snap := tr.Snapshot()
	require.Equal(t, uint64(1), snap.QuarantineCount)
	requireStatus(t, StatusState, tr.PoolUnregister(p, false))
	require.NoError(t, tr.PoolUnregister(p, true))
	// force scrubs assigned blocks (1, 5) and the quarantined one (3), which
	// still held tenant-a's data, in every region
	for r := 0; r < 4; r++ {
		for _, b := range []int{1, 3, 5} {
			require.True(t, allZero(mem[(r*nb+b)*bb:(r*nb+b+1)*bb]), "region %d block %d", r, b)
		}
	}
	requireStatus(t, StatusFreed, tr.PoolAssign(p, []uint32{0}, "tenant-a", "req"))
	requireStatus(t, StatusUnknownHandle, tr.PoolAssign(p+1, []uint32{0}, "tenant-a", "req"))
	requireStatus(t, StatusUnknownHandle, tr.PoolAssign(0, []uint32{0}, "tenant-a", "req"))

	rs := readLog(t, tr, path)
	require.Equal(t, []string{"pool_assign", "isolation_violation", "quarantine", "pool_release", "pool_assign", "pool_release"}, events(rs))
	require.Equal(t, []any{1.0, 3.0, 5.0}, rs[0]["blocks"])
	require.Equal(t, "tenant-b", rs[1]["attacker_tenant"])
	require.Equal(t, "tenant-a", rs[1]["target_tenant"])
	require.Equal(t, []any{3.0}, rs[2]["blocks"])
	rel := rs[3]
	require.Equal(t, []any{5.0, 1.0}, rel["blocks"])
	require.Equal(t, 100.0, rel["coverage_pct"])
	require.Equal(t, float64(2*4*bb), rel["bytes"])
	require.Equal(t, "kv", rel["pool_name"])
	require.Equal(t, []any{1.0, 3.0, 5.0}, rs[5]["blocks"], "unregister's release covers the quarantined block")
}

func TestPoolReleaseVerifyFailure(t *testing.T) {
	tr, _ := newTracer(t, nil)
	mem := region(t, 8*512, 9)
	p, err := tr.PoolRegister(PoolDesc{NumBlocks: 8, Regions: []PoolRegion{{addr(mem), 512, 512}}, Model: "m"})
	require.NoError(t, err)
	require.NoError(t, tr.PoolAssign(p, []uint32{0, 1, 2}, "a", "r"))
	target := addr(mem[512:])
	testHookAfterZero = func(b []byte) {
		if addr(b) == target {
			b[100] = 1
		}
	}
	cov, err := tr.PoolRelease(p, []uint32{0, 1, 2}, false)
	testHookAfterZero = nil
	requireStatus(t, StatusVerify, err)
	require.InDelta(t, (1-1.0/(3*512))*100, cov, 1e-9)
	require.NoError(t, tr.PoolAssign(p, []uint32{0, 2}, "b", "r2"))
	requireStatus(t, StatusQuarantined, tr.PoolAssign(p, []uint32{1}, "b", "r2"))
	require.Equal(t, cov, tr.Snapshot().MinCoveragePct)
}

// A large release takes the parallel path.
func TestPoolReleaseParallel(t *testing.T) {
	tr, _ := newTracer(t, nil)
	const nb, bb = 64, 256 << 10 // 16 MiB
	mem := region(t, nb*bb, 0x11)
	p, err := tr.PoolRegister(PoolDesc{NumBlocks: nb, Regions: []PoolRegion{{addr(mem), bb, bb}}, Model: "m", Verify: VerifySampled})
	require.NoError(t, err)
	ids := blockIDs(nb)
	require.NoError(t, tr.PoolAssign(p, ids, "a", "r"))
	cov, err := tr.PoolRelease(p, ids, false)
	require.NoError(t, err)
	require.Equal(t, 100.0, cov)
	require.True(t, allZero(mem))
}

// Every verify mode zeroes exactly the released blocks of every region,
// whether the blocks of a region are adjacent (merged into spans when not
// fully read back) or interleaved with memory that is not the pool's.
func TestPoolReleaseLayouts(t *testing.T) {
	const nb, bb = 16, 4096 + 64
	release := []uint32{9, 1, 2, 3, 15, 7, 8}
	for _, mode := range []VerifyMode{VerifyFull, VerifySampled, VerifyNone} {
		for _, stride := range []uint64{bb, 2*bb + 8} {
			t.Run(fmt.Sprintf("%s/stride%d", mode, stride), func(t *testing.T) {
				tr, _ := newTracer(t, nil)
				const nr = 3
				mem := region(t, nr*nb*int(stride), 0x5c)
				regs := make([]PoolRegion, nr)
				for r := range regs {
					regs[r] = PoolRegion{Base: addr(mem[r*nb*int(stride):]), BlockBytes: bb, Stride: stride}
				}
				p, err := tr.PoolRegister(PoolDesc{NumBlocks: nb, Regions: regs, Model: "m", Verify: mode})
				require.NoError(t, err)
				require.NoError(t, tr.PoolAssign(p, blockIDs(nb), "a", "r"))
				cov, err := tr.PoolRelease(p, release, false)
				require.NoError(t, err)
				if mode == VerifyNone {
					require.Equal(t, 0.0, cov)
				} else {
					require.Equal(t, 100.0, cov)
				}
				released := map[int]bool{}
				for _, b := range release {
					released[int(b)] = true
				}
				for r := 0; r < nr; r++ {
					for b := 0; b < nb; b++ {
						off := r*nb*int(stride) + b*int(stride)
						blk := mem[off : off+bb]
						if released[b] {
							require.True(t, allZero(blk), "region %d block %d not zeroed", r, b)
						} else {
							require.Equal(t, -1, slices.IndexFunc(blk, func(c byte) bool { return c != 0x5c }), "region %d block %d touched", r, b)
						}
						gap := mem[off+bb : off+int(stride)]
						require.Equal(t, -1, slices.IndexFunc(gap, func(c byte) bool { return c != 0x5c }), "gap after region %d block %d touched", r, b)
					}
				}
			})
		}
	}
}

// Sampled verification of a release catches a range left dirty and
// quarantines exactly its block.
func TestPoolReleaseSampledFailure(t *testing.T) {
	tr, _ := newTracer(t, nil)
	const nb, bb = 8, 32 << 10
	mem := region(t, 2*nb*bb, 7)
	p, err := tr.PoolRegister(PoolDesc{NumBlocks: nb, Model: "m", Verify: VerifySampled,
		Regions: []PoolRegion{{addr(mem), bb, bb}, {addr(mem[nb*bb:]), bb, bb}}})
	require.NoError(t, err)
	require.NoError(t, tr.PoolAssign(p, []uint32{2, 3, 4}, "a", "r"))
	target := addr(mem[nb*bb+3*bb:]) // block 3 of the second region
	testHookAfterZero = func(b []byte) {
		if addr(b) == target {
			for i := range b {
				b[i] = 1 // any sample sees it
			}
		}
	}
	cov, err := tr.PoolRelease(p, []uint32{2, 3, 4}, false)
	testHookAfterZero = nil
	requireStatus(t, StatusVerify, err)
	require.Less(t, cov, 100.0)
	require.NoError(t, tr.PoolAssign(p, []uint32{2, 4}, "b", "r2"))
	requireStatus(t, StatusQuarantined, tr.PoolAssign(p, []uint32{3}, "b", "r2"))
}

// Quarantined blocks return to service only through a full scrub that
// verifies, with a logged release_quarantine.
func TestPoolReleaseQuarantine(t *testing.T) {
	tr, path := newTracer(t, nil)
	const nb, bb = 8, 4096
	mem := region(t, 2*nb*bb, 0x33)
	p, err := tr.PoolRegister(PoolDesc{NumBlocks: nb, Model: "m", Verify: VerifySampled,
		Regions: []PoolRegion{{addr(mem), bb, bb}, {addr(mem[nb*bb:]), bb, bb}}})
	require.NoError(t, err)
	require.NoError(t, tr.PoolAssign(p, []uint32{1, 2, 3}, "a", "r"))
	// tenant b takes block 2 unsanitized: isolation violation, block quarantined
	requireStatus(t, StatusIsolation, tr.PoolAssign(p, []uint32{2}, "b", "r2"))
	requireStatus(t, StatusQuarantined, tr.PoolAssign(p, []uint32{2}, "b", "r2"))

	// bad input: nothing happens
	_, err = tr.PoolReleaseQuarantine(p, []uint32{1, 2}, "reviewed")
	requireStatus(t, StatusState, err) // block 1 is assigned, not quarantined
	_, err = tr.PoolReleaseQuarantine(p, []uint32{2}, "")
	requireStatus(t, StatusInvalidID, err)
	_, err = tr.PoolReleaseQuarantine(p, []uint32{2, 2}, "x")
	requireStatus(t, StatusInvalidArg, err)
	_, err = tr.PoolReleaseQuarantine(p, []uint32{nb}, "x")
	requireStatus(t, StatusInvalidArg, err)
	_, err = tr.PoolReleaseQuarantine(p+1, []uint32{2}, "x")
	requireStatus(t, StatusUnknownHandle, err)
	require.False(t, allZero(mem[2*bb:3*bb]), "nothing scrubbed by refused calls")

	// a scrub that does not verify keeps the block quarantined
	target := addr(mem[nb*bb+2*bb:])
	testHookAfterZero = func(b []byte) {
		if addr(b) == target {
			b[7] = 9
		}
	}
	_, err = tr.PoolReleaseQuarantine(p, []uint32{2}, "reviewed")
	testHookAfterZero = nil
	requireStatus(t, StatusVerify, err)
	requireStatus(t, StatusQuarantined, tr.PoolAssign(p, []uint32{2}, "b", "r2"))

	cov, err := tr.PoolReleaseQuarantine(p, []uint32{2}, "reviewed by oncall")
	require.NoError(t, err)
	require.Equal(t, 100.0, cov)
	require.True(t, allZero(mem[2*bb:3*bb]) && allZero(mem[nb*bb+2*bb:nb*bb+3*bb]))
	require.NoError(t, tr.PoolAssign(p, []uint32{2}, "b", "r2"), "clean block serves another tenant")
	_, err = tr.PoolReleaseQuarantine(p, []uint32{2}, "again")
	requireStatus(t, StatusState, err)

	rs := readLog(t, tr, path)
	rq := ofEvent(rs, "release_quarantine")
	require.Len(t, rq, 1)
	require.Equal(t, []any{2.0}, rq[0]["blocks"])
	require.Equal(t, "reviewed by oncall", rq[0]["reason"])
	last := rs[len(rs)-3] // pool_release (full verify) before release_quarantine, then pool_assign
	require.Equal(t, "pool_release", last["event_type"])
	require.Equal(t, "full", last["verify"])
}

// Caller memory unmapped behind the library's back is an error for that
// buffer or pool (quarantined), not a crash, and the tracer goes on.
func TestMemoryFaultIsAnError(t *testing.T) {
	tr, path := newTracer(t, nil)
	for _, n := range []int{64, 24 << 20} { // one goroutine; split across workers
		m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		require.NoError(t, err)
		h, err := tr.Allocate(desc(m))
		require.NoError(t, err)
		require.NoError(t, unix.Mprotect(m, unix.PROT_NONE)) // the engine protects or unmaps it
		_, err = tr.Sanitize(h, SanitizeOpts{})
		requireStatus(t, StatusInvalidArg, err)
		require.Contains(t, err.Error(), "not accessible")
		require.Equal(t, StateQuarantined, mustInfo(t, tr, h).State)
		require.NoError(t, unix.Munmap(m))
	}
	// pools: a region unmapped after registration
	const nb, bb = 4, 4096
	m, err := unix.Mmap(-1, 0, nb*bb, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	require.NoError(t, err)
	p, err := tr.PoolRegister(PoolDesc{NumBlocks: nb, Model: "m", Regions: []PoolRegion{{addr(m), bb, bb}}})
	require.NoError(t, err)
	require.NoError(t, tr.PoolAssign(p, []uint32{0, 1}, "a", "r"))
	require.NoError(t, unix.Mprotect(m, unix.PROT_NONE))
	_, err = tr.PoolRelease(p, []uint32{0, 1}, false)
	requireStatus(t, StatusInvalidArg, err)
	requireStatus(t, StatusQuarantined, tr.PoolAssign(p, []uint32{1}, "b", "r"))
	require.NoError(t, unix.Munmap(m))

	// the tracer still works and the log still verifies
	good := region(t, 4096, 7)
	h, err := tr.Allocate(desc(good))
	require.NoError(t, err)
	_, err = tr.Sanitize(h, SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h))
	var faults int
	for _, r := range ofEvent(readLog(t, tr, path), "quarantine") {
		if r["reason"] == "memory_fault" {
			faults++
		}
	}
	require.Equal(t, 2, faults)
}

// An auditor with the tracer key reproduces the positions a sampled release
// checked, from the verify_nonce of its pool_release record: a byte left at
// the first such position of one range is caught (deterministically).
func TestPoolSampledPositionsReproducible(t *testing.T) {
	tr, path := newTracer(t, nil)
	const nb, bb = 8, 32 << 10
	mem := region(t, 2*nb*bb, 1)
	p, err := tr.PoolRegister(PoolDesc{NumBlocks: nb, Model: "m", Verify: VerifySampled,
		Regions: []PoolRegion{{addr(mem), bb, bb}, {addr(mem[nb*bb:]), bb, bb}}})
	require.NoError(t, err)
	ids := []uint32{6, 2, 5}
	require.NoError(t, tr.PoolAssign(p, ids, "a", "r"))
	nonce := tr.sanSeq.Load() + 1 // the release's nonce
	s := cpuzero.NewRangeSampler(tr.key[:], sampleHandle(Handle(p), nonce))
	// range index = region*len(ids) + position of the block among the sorted ids (2, 5, 6):
	// block 5 of region 1 is index 1*3 + 1
	pos := s.Positions(bb, tr.cfg.VerifySamplesDefault, 4)
	target := addr(mem[nb*bb+5*bb:])
	testHookAfterZero = func(b []byte) {
		if addr(b) == target {
			b[pos[0]] = 0x80
		}
	}
	_, err = tr.PoolRelease(p, ids, false)
	testHookAfterZero = nil
	requireStatus(t, StatusVerify, err)
	requireStatus(t, StatusQuarantined, tr.PoolAssign(p, []uint32{5}, "b", "r"))
	require.NoError(t, tr.PoolAssign(p, []uint32{2, 6}, "b", "r"))
	rel := ofEvent(readLog(t, tr, path), "pool_release")
	require.Len(t, rel, 1)
	require.Equal(t, float64(nonce), rel[0]["verify_nonce"])
	require.Equal(t, float64(tr.cfg.VerifySamplesDefault), rel[0]["verify_samples_per_region"])
	require.Equal(t, []any{5.0}, rel[0]["quarantined_blocks"])
}
