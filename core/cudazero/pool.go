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
// The layout is NOT re-validated with cuPointerGetAttributes here: the
// caller must have checked once (e.g. with ValidateRange over each region's
// full span [Base, Base+(numBlocks-1)*Stride+BlockBytes) when the pool was
// registered) and must pass only block ids below the pool's block count.
// ZeroPoolAsync still refuses NULL bases and address arithmetic that
// overflows (ErrInvalidRange) and a capturing stream (ErrCapturing), with no
// device work enqueued.
func (d *Driver) ZeroPoolAsync(ordinal int, stream uint64, regions []PoolRegion, blocks []uint32, verify bool) (*Op, error) {
	return d.zeroPoolAsync(ordinal, stream, regions, blocks, true, verify)
}

// zeroPoolAsync is ZeroPoolAsync; zero false only verifies (tests, benchmarks).
func (d *Driver) zeroPoolAsync(ordinal int, stream uint64, regions []PoolRegion, blocks []uint32, zero, verify bool) (*Op, error) {
	if ordinal < 0 {
		return nil, fmt.Errorf("%w: device ordinal %d is negative", ErrInvalidRange, ordinal)
	}
	if len(regions) > math.MaxUint32 || len(blocks) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: %d regions x %d blocks exceeds the kernel's 32-bit counts", ErrInvalidRange, len(regions), len(blocks))
	}
	var maxID uint32
	for _, b := range blocks {
		maxID = max(maxID, b)
	}
	var perBlock, maxBB uint64
	for i, r := range regions {
		if r.BlockBytes == 0 {
			continue
		}
		if r.Base == 0 {
			return nil, fmt.Errorf("%w: pool region %d has a NULL base", ErrInvalidRange, i)
		}
		hi, off := bits.Mul64(uint64(maxID), r.Stride)
		end, c1 := bits.Add64(r.Base, off, 0)
		_, c2 := bits.Add64(end, r.BlockBytes, 0)
		if hi != 0 || c1 != 0 || c2 != 0 {
			return nil, fmt.Errorf("%w: pool region %d: block %d at %#x+%d*%d+%d overflows the address space", ErrInvalidRange, i, maxID, r.Base, maxID, r.Stride, r.BlockBytes)
		}
		var c uint64
		perBlock, c = bits.Add64(perBlock, r.BlockBytes, 0)
		if c != 0 {
			return nil, fmt.Errorf("%w: pool block size overflows", ErrInvalidRange)
		}
		maxBB = max(maxBB, r.BlockBytes)
	}
	hi, total := bits.Mul64(perBlock, uint64(len(blocks)))
	if hi != 0 {
		return nil, fmt.Errorf("%w: pool release of %d blocks x %d bytes overflows", ErrInvalidRange, len(blocks), perBlock)
	}
	nchunk := (maxBB + chunkBytes - 1) / chunkBytes
	if nchunk > math.MaxUint32 {
		return nil, fmt.Errorf("%w: block_bytes %d is too large (max %d)", ErrInvalidRange, maxBB, uint64(math.MaxUint32)*chunkBytes)
	}
	hi, work := bits.Mul64(uint64(len(regions))*uint64(len(blocks)), nchunk)
	if hi != 0 || work > math.MaxInt64 {
		return nil, fmt.Errorf("%w: pool release of %d regions x %d blocks x %d chunks is too large", ErrInvalidRange, len(regions), len(blocks), nchunk)
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
		return op.enqueuePool(stream, regions, blocks, uint32(nchunk), work, zero)
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
// at least its size.
func stagePool(s *slot, regions []PoolRegion, blocks []uint32) {
	_, idsOff, _ := poolStaging(len(regions), len(blocks))
	hdr := unsafe.Slice((*uint64)(s.host), idsOff/8)
	hdr[0], hdr[1] = 0, 0
	for i, r := range regions {
		e := hdr[2+3*i : 5+3*i]
		e[0], e[1], e[2] = r.Base, r.Stride, r.BlockBytes
	}
	copy(unsafe.Slice((*uint32)(unsafe.Add(s.host, idsOff)), len(blocks)), blocks)
}

// enqueuePool stages the pool's region table and the block ids in one pinned
// buffer, places it (placeTable) and launches one pool kernel.
func (op *Op) enqueuePool(stream uint64, regions []PoolRegion, blocks []uint32, nchunk uint32, work uint64, zero bool) error {
	d, cs := op.d, op.cs
	st := C.uintptr_t(stream)
	regOff, idsOff, need := poolStaging(len(regions), len(blocks))
	s, err := cs.get(d, need)
	if err != nil {
		return err
	}
	// From here on an error may leave work in flight reading the slot's
	// buffers: the slot is abandoned (leaked), never reused.
	stagePool(s, regions, blocks)
	base, err := op.placeTable(s, need, st, "pool table")
	if err != nil {
		return err
	}
	grid := uint64(cs.grid)
	if grid > work {
		grid = work
	}
	regs, ids := base+C.kvh_CUdeviceptr(regOff), base+C.kvh_CUdeviceptr(idsOff)
	nr, nb := C.uint(len(regions)), C.uint(len(blocks))
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
