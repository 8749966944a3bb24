package core

import (
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
	"github.com/kvhygiene/kvhygiene/forensic"
)

// The host pool release path: zeroize every region of every released block,
// verify, and hand the outcome to completeRelease (one forensic record).
//
// Full verification zeroes each (block, region) range with regular stores and
// reads it back while it is still in cache. Sampled verification (and none)
// never reads a range back in full, so the ranges are streamed instead: runs
// of consecutive blocks of a region are merged into spans and zeroed with
// non-temporal stores, which skip the read-for-ownership of the previous
// tenant's data, and each span piece is sampled right after it is zeroed,
// while its page translations are still in the TLB
// (benchmarks/results/pool.md has the measurements behind both choices).

// spanPiece bounds a streamed piece: small enough that its page translations
// stay in the second-level TLB for its samples, large enough to stream at
// full bandwidth, and many pieces for the workers to share.
const spanPiece = 4 << 20

// releaseCPU zeroizes blocks ids of host pool p (locked) and verifies them
// with mode.
func (t *Tracer) releaseCPU(p *pool, ids []uint32, start int64, mode VerifyMode) (float64, error) {
	nr := len(p.regions)
	var total uint64
	for _, r := range p.regions {
		total += r.BlockBytes * uint64(len(ids))
	}
	nz := make([]uint64, len(ids)*nr) // non-zero bytes per range, block-major: k*nr + r
	var extra []forensic.Field
	ferr := cpuzero.Guard(func() {
		if mode == VerifyFull {
			t.releaseFull(p, ids, nz, total)
			return
		}
		var nonce uint64
		if mode == VerifySampled {
			// the auditor's key to the positions: with the tracer key, the
			// pool handle and this nonce, cpuzero.RangeSampler reproduces them
			nonce = t.sanSeq.Add(1)
			extra = append(extra, forensic.Field{Key: "verify_nonce", Value: nonce},
				forensic.Field{Key: "verify_samples_per_region", Value: p.samples})
		}
		t.releaseStreamed(p, ids, nz, total, mode == VerifySampled, nonce)
	})
	if ferr != nil {
		// A region was unmapped after registration: nothing is proven, every
		// block is quarantined.
		if _, err := t.completeRelease(p, ids, ids, total, total, mode, t.now()-start); err != nil && StatusOf(err) != StatusVerify {
			return 0, err
		}
		return 0, errorf(StatusInvalidArg, "pool_release: pool %d: a region is no longer accessible (%v); was it unmapped after kvh_pool_register? %d block(s) quarantined", uint64(p.h), ferr, len(ids))
	}
	var bad []uint32
	var nonzero uint64
	for k, b := range ids {
		var s uint64
		for _, x := range nz[k*nr : (k+1)*nr] {
			s += x
		}
		if s != 0 {
			bad = append(bad, b)
			nonzero += s
		}
	}
	return t.completeRelease(p, ids, bad, total, nonzero, mode, t.now()-start, extra...)
}

// blockRange is the memory of block b in region r.
func blockRange(r PoolRegion, b uint32) []byte {
	return unsafe.Slice((*byte)(cpuzero.Ptr(uintptr(r.Base+uint64(b)*r.Stride))), r.BlockBytes)
}

// releaseFull zeroes each range with regular stores and reads it back while
// it is still in cache.
func (t *Tracer) releaseFull(p *pool, ids []uint32, nz []uint64, total uint64) {
	nr := len(p.regions)
	parallelChunks(len(nz), total, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			b := blockRange(p.regions[i%nr], ids[i/nr])
			cpuzero.Zero(b)
			if testHookAfterZero != nil {
				testHookAfterZero(b)
			}
			nz[i] = cpuzero.NonZeroBytes(b)
		}
	})
}

// streamPiece is a run of blocks of one region zeroed as one span: region r,
// the sorted block positions [lo, hi).
type streamPiece struct{ r, lo, hi int }

// releaseStreamed zeroes merged spans with non-temporal stores and, for
// sampled verification, samples each piece right after zeroing it. The
// sampler numbers the ranges region by region over the sorted block ids:
// range index r*len(ids) + s for the s-th smallest block of the release.
func (t *Tracer) releaseStreamed(p *pool, ids []uint32, nz []uint64, total uint64, sampled bool, nonce uint64) {
	nb, nr := len(ids), len(p.regions)
	order := make([]int, nb) // positions in ids, by increasing block id
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(ids[a]) - int(ids[b]) })
	sorted := make([]uint32, nb)
	for s, i := range order {
		sorted[s] = ids[i]
	}
	var pieces []streamPiece
	for r, reg := range p.regions {
		adjacent := reg.Stride == reg.BlockBytes
		maxBlocks := max(1, int(spanPiece/reg.BlockBytes))
		for lo := 0; lo < nb; {
			hi := lo + 1
			for adjacent && hi < nb && hi-lo < maxBlocks && sorted[hi] == sorted[hi-1]+1 {
				hi++
			}
			pieces = append(pieces, streamPiece{r, lo, hi})
			lo = hi
		}
	}
	var sampler *cpuzero.RangeSampler
	if sampled {
		sampler = cpuzero.NewRangeSampler(t.key[:], sampleHandle(Handle(p.h), nonce))
	}
	res := make([]uint64, nb*nr) // sampled non-zero bytes by range index
	parallelChunks(len(pieces), total, func(plo, phi int) {
		var rb [][]byte
		for _, pc := range pieces[plo:phi] {
			reg := p.regions[pc.r]
			first := blockRange(reg, sorted[pc.lo])
			cpuzero.ZeroStream(unsafe.Slice(unsafe.SliceData(first), uint64(pc.hi-pc.lo)*reg.BlockBytes))
			rb = rb[:0]
			for s := pc.lo; s < pc.hi; s++ {
				rb = append(rb, blockRange(reg, sorted[s]))
			}
			if testHookAfterZero != nil {
				for _, b := range rb {
					testHookAfterZero(b)
				}
			}
			if sampler != nil {
				j := pc.r*nb + pc.lo
				sampler.VerifyMany(rb, uint64(j), p.samples, res[j:j+len(rb)])
			}
		}
	})
	for j, bad := range res {
		if bad != 0 { // count the failed range in full
			r, s := j/nb, j%nb
			k := order[s]
			nz[k*nr+r] = cpuzero.NonZeroBytes(blockRange(p.regions[r], ids[k]))
		}
	}
}

// parallelChunks runs fn over [0, n) cut into one contiguous share per
// worker when total (bytes) is large, else over the whole range at once.
func parallelChunks(n int, total uint64, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), 8, n)
	if total < parallelBytes || workers < 2 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	var fault cpuzero.FaultSlot
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		wg.Add(1)
		cpuzero.GoGuarded(&fault, func() { fn(lo, min(lo+per, n)) }, wg.Done)
	}
	wg.Wait()
	fault.Raise() // a worker's memory fault surfaces in the caller's Guard
}
