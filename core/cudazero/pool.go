package cudazero

// #include "shim.h"
import "C"

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// PoolRegion is one region of a paged pool (one layer's K or V cache, for
// instance): block b occupies [Base+b*Stride, Base+b*Stride+BlockBytes).
type PoolRegion struct{ Base, Stride, BlockBytes uint64 }

// poolEntryBytes is the size of one region entry in the device table.
const poolEntryBytes = 24

// PoolLayout is a paged pool's shape, checked once for all the releases
// that follow: no NULL base, no address arithmetic that overflows for any
// block id below NumBlocks, sizes that fit the kernels' counters. A release
// then does no region arithmetic and stages the region table with one copy.
// A PoolLayout is immutable and safe for concurrent use.
type PoolLayout struct {
	numBlocks uint64
	nregions  int
	perBlock  uint64   // bytes of one block over every region
	nchunk    uint64   // 64 KiB chunks in the largest BlockBytes
	table     []uint64 // the region table as staged: Base, Stride, BlockBytes per region
}

// NewPoolLayout checks regions for a pool of numBlocks blocks (at most
// 2^32). It does not call the driver: the caller must also check, once, that
// each region's span [Base, Base+(numBlocks-1)*Stride+BlockBytes) lies in
// one device allocation (ValidateRange), as the tracer does when a pool is
// registered. Errors wrap ErrInvalidRange.
func NewPoolLayout(regions []PoolRegion, numBlocks uint64) (*PoolLayout, error) {
	if numBlocks > 1<<32 {
		return nil, fmt.Errorf("%w: %d blocks exceeds the kernel's 32-bit block ids", ErrInvalidRange, numBlocks)
	}
	if len(regions) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: %d regions exceeds the kernel's 32-bit counts", ErrInvalidRange, len(regions))
	}
	maxID := uint64(0)
	if numBlocks > 0 {
		maxID = numBlocks - 1
	}
	l := &PoolLayout{numBlocks: numBlocks, nregions: len(regions), table: make([]uint64, 0, 3*len(regions))}
	var maxBB uint64
	for i, r := range regions {
		l.table = append(l.table, r.Base, r.Stride, r.BlockBytes)
		if r.BlockBytes == 0 {
			continue
		}
		if r.Base == 0 {
			return nil, fmt.Errorf("%w: pool region %d has a NULL base", ErrInvalidRange, i)
		}
		hi, off := bits.Mul64(maxID, r.Stride)
		end, c1 := bits.Add64(r.Base, off, 0)
		_, c2 := bits.Add64(end, r.BlockBytes, 0)
		if hi != 0 || c1 != 0 || c2 != 0 {
			return nil, fmt.Errorf("%w: pool region %d: block %d at %#x+%d*%d+%d overflows the address space", ErrInvalidRange, i, maxID, r.Base, maxID, r.Stride, r.BlockBytes)
		}
		var c uint64
		l.perBlock, c = bits.Add64(l.perBlock, r.BlockBytes, 0)
		if c != 0 {
			return nil, fmt.Errorf("%w: pool block size overflows", ErrInvalidRange)
		}
		maxBB = max(maxBB, r.BlockBytes)
	}
	l.nchunk = (maxBB + chunkBytes - 1) / chunkBytes
	if l.nchunk > math.MaxUint32 {
		return nil, fmt.Errorf("%w: block_bytes %d is too large (max %d)", ErrInvalidRange, maxBB, uint64(math.MaxUint32)*chunkBytes)
	}
	return l, nil
}

// NumBlocks is the block count the layout was checked for.
func (l *PoolLayout) NumBlocks() uint64 { return l.numBlocks }

// Regions returns a copy of the layout's regions.
func (l *PoolLayout) Regions() []PoolRegion {
	rs := make([]PoolRegion, l.nregions)
	for i := range rs {
		rs[i] = PoolRegion{l.table[3*i], l.table[3*i+1], l.table[3*i+2]}
	}
	return rs
}

// BlockBytes is the bytes of one block over every region.
func (l *PoolLayout) BlockBytes() uint64 { return l.perBlock }

// ZeroPoolAsync zeroizes the listed blocks in every region of a paged pool on
// stream, in stream order, without ever synchronizing the host. Unlike
// ZeroAsync it takes the pool's shape instead of one range per (block,
// region): the region table (24 bytes per region) and the block ids (4 bytes
// per block) are staged together in pinned memory (read there by the kernel,
// or copied with one cuMemcpyHtoDAsync; see ZeroAsync), then ONE launch
// covers every (region, block) pair: kvh_pool_zero, or with verify
// kvh_pool_zero_verify, which reads each chunk back right after zeroing it
// and counts the non-zero bytes (same rule and same Op.Wait result as
// ZeroAsync); an event is recorded last. The host cost is therefore
// O(regions + blocks), not O(regions * blocks), and one launch.
//
// ZeroPoolAsync checks the regions for the largest listed block id on every
// call; a caller that releases the same pool repeatedly checks them once with
// NewPoolLayout and calls ZeroPoolLayoutAsync.
//
// The layout is NOT re-validated with cuPointerGetAttributes here: the
// caller must have checked once (e.g. with ValidateRange over each region's
// full span when the pool was registered). ZeroPoolAsync still refuses NULL
// bases and address arithmetic that overflows (ErrInvalidRange) and a
// capturing stream (ErrCapturing), with no device work enqueued.
func (d *Driver) ZeroPoolAsync(ordinal int, stream uint64, regions []PoolRegion, blocks []uint32, verify bool) (*Op, error) {
	l, err := layoutFor(regions, blocks)
	if err != nil {
		return nil, err
	}
	return d.zeroPoolAsync(ordinal, stream, l, blocks, true, verify)
}

// layoutFor is the layout of regions for the largest id in blocks.
func layoutFor(regions []PoolRegion, blocks []uint32) (*PoolLayout, error) {
	if len(blocks) == 0 {
		return NewPoolLayout(regions, 0)
	}
	return NewPoolLayout(regions, uint64(maxID(blocks))+1)
}

// ZeroPoolLayoutAsync is ZeroPoolAsync over a layout checked once by
// NewPoolLayout. Every block id must be below l.NumBlocks(): one that is not
// is ErrInvalidRange, found while the ids are staged, before any device work.
func (d *Driver) ZeroPoolLayoutAsync(ordinal int, stream uint64, l *PoolLayout, blocks []uint32, verify bool) (*Op, error) {
	return d.zeroPoolAsync(ordinal, stream, l, blocks, true, verify)
}

// zeroPoolAsync is ZeroPoolLayoutAsync; zero false only verifies (tests, benchmarks).
func (d *Driver) zeroPoolAsync(ordinal int, stream uint64, l *PoolLayout, blocks []uint32, zero, verify bool) (*Op, error) {
	if ordinal < 0 {
		return nil, fmt.Errorf("%w: device ordinal %d is negative", ErrInvalidRange, ordinal)
	}
	if len(blocks) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: %d blocks exceeds the kernel's 32-bit counts", ErrInvalidRange, len(blocks))
	}
	hi, total := bits.Mul64(l.perBlock, uint64(len(blocks)))
	if hi != 0 {
		return nil, fmt.Errorf("%w: pool release of %d blocks x %d bytes overflows", ErrInvalidRange, len(blocks), l.perBlock)
	}
	// nregions and nchunk are below 2^32 each: their product fits.
	hi, work := bits.Mul64(uint64(l.nregions)*l.nchunk, uint64(len(blocks)))
	if hi != 0 || work > math.MaxInt64 {
		return nil, fmt.Errorf("%w: pool release of %d regions x %d blocks x %d chunks is too large", ErrInvalidRange, l.nregions, len(blocks), l.nchunk)
	}
	op := &Op{d: d, ordinal: ordinal, verify: verify, total: total}
	err := d.withContext(ordinal, func(ctx C.kvh_CUcontext) error {
		if err := d.checkStream(stream); err != nil {
			return err
		}
		if total == 0 || !(zero || verify) {
			op.done = true
			return nil
		}
		cs, err := d.state(ctx, ordinal)
		if err != nil {
			return err
		}
		op.cs = cs
		return op.enqueuePool(stream, l, blocks, work, zero)
	})
	if err != nil {
		return nil, err
	}
	return op, nil
}

// poolStaging returns where a pool staging buffer [counter, pad][region
// table][block ids] puts the region table and the ids, and its size.
func poolStaging(nregions, nblocks int) (regOff, idsOff, size uintptr) {
	regOff = headerBytes
	idsOff = regOff + uintptr(nregions)*poolEntryBytes
	return regOff, idsOff, idsOff + uintptr(nblocks)*4
}

// stagePool writes the staging buffer of poolStaging into s.host, which holds
// at least its size: the layout's region table, then the block ids. It
// refuses an id at or above the layout's block count; nothing has been
// enqueued then, so the caller may put the slot back.
func stagePool(s *slot, l *PoolLayout, blocks []uint32) error {
	_, idsOff, _ := poolStaging(l.nregions, len(blocks))
	hdr := unsafe.Slice((*uint64)(s.host), idsOff/8)
	hdr[0], hdr[1] = 0, 0
	copy(hdr[2:], l.table)
	copy(unsafe.Slice((*uint32)(unsafe.Add(s.host, idsOff)), len(blocks)), blocks)
	if hi := maxID(blocks); len(blocks) > 0 && uint64(hi) >= l.numBlocks {
		return fmt.Errorf("%w: block id %d is out of range (the pool layout has %d blocks)", ErrInvalidRange, hi, l.numBlocks)
	}
	return nil
}

// maxID is the largest of ids (0 if none), with four independent running
// maxima: twice as fast as one on 1024 ids.
func maxID(ids []uint32) uint32 {
	var a, b, c, d uint32
	i := 0
	for ; i+4 <= len(ids); i += 4 {
		s := ids[i : i+4 : i+4]
		a, b, c, d = max(a, s[0]), max(b, s[1]), max(c, s[2]), max(d, s[3])
	}
	for ; i < len(ids); i++ {
		a = max(a, ids[i])
	}
	return max(a, b, c, d)
}

// enqueuePool stages the pool's region table and the block ids in one pinned
// buffer, places it (placeTable) and launches one pool kernel.
func (op *Op) enqueuePool(stream uint64, l *PoolLayout, blocks []uint32, work uint64, zero bool) error {
	d, cs := op.d, op.cs
	st := C.uintptr_t(stream)
	regOff, idsOff, need := poolStaging(l.nregions, len(blocks))
	s, err := cs.get(d, need)
	if err != nil {
		return err
	}
	if err := stagePool(s, l, blocks); err != nil {
		cs.put(s) // nothing enqueued yet: the slot is free again
		return err
	}
	// From here on an error may leave work in flight reading the slot's
	// buffers: the slot is abandoned (leaked), never reused.
	base, err := op.placeTable(s, need, st, "pool table")
	if err != nil {
		return err
	}
	grid := uint64(cs.grid)
	if grid > work {
		grid = work
	}
	regs, ids := base+C.kvh_CUdeviceptr(regOff), base+C.kvh_CUdeviceptr(idsOff)
	nr, nb, nchunk := C.uint(l.nregions), C.uint(len(blocks)), uint32(l.nchunk)
	if zero && !op.verify {
		return op.launchPool(poolZeroKernel, cs.poolZeroFn, s, st, grid, regs, nr, ids, nb, nchunk, 0, 0)
	}
	ctr, result, err := op.counter(s, st)
	if err != nil {
		return err
	}
	if zero {
		// One pass: each CTA zeroes a chunk, then reads it back.
		return op.launchPool(poolZeroVerifyKernel, cs.poolZeroVerifyFn, s, st, grid, regs, nr, ids, nb, nchunk, ctr, result)
	}
	return op.launchPool(poolVerifyKernel, cs.poolVerifyFn, s, st, grid, regs, nr, ids, nb, nchunk, ctr, result)
}

// launchPool launches one pool kernel and finishes the enqueue.
func (op *Op) launchPool(name string, fn C.kvh_CUfunction, s *slot, st C.uintptr_t, grid uint64, regs C.kvh_CUdeviceptr, nr C.uint, ids C.kvh_CUdeviceptr, nb C.uint, nchunk uint32, ctr, result C.kvh_CUdeviceptr) error {
	if err := op.d.check("cuLaunchKernel("+name+")", C.kvhcu_pool_launch(op.d.cu, fn, C.uint(grid), blockDim, st, regs, nr, ids, nb, C.uint(nchunk), ctr, result)); err != nil {
		return err
	}
	return op.finishEnqueue(s, st)
}
