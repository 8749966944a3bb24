package main

/*
#include "kvh_internal.h"
*/
import "C"

import (
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core"
)

// poolFromC copies kvh_pool_desc into poolArgs (struct_size already checked).
func poolFromC(d *C.kvh_pool_desc) (poolArgs, error) {
	a := poolArgs{
		device: int32(d.device), ordinal: int32(d.device_ordinal), numBlocks: uint32(d.num_blocks),
		stream: uint64(d.stream), model: readID(d.model_id), name: readID(d.name), verify: int32(d.verify),
	}
	n := uint64(d.num_regions)
	if err := countArg("desc->regions", d.regions == nil, n, maxRegions); err != nil {
		return a, err
	}
	if n > 0 {
		src := unsafe.Slice((*C.kvh_pool_region)(unsafe.Pointer(d.regions)), int(n))
		a.regions = make([]core.PoolRegion, len(src))
		for i, r := range src {
			a.regions[i] = core.PoolRegion{Base: uint64(r.base), Stride: uint64(r.block_stride), BlockBytes: uint64(r.block_bytes)}
		}
	}
	return a, nil
}

//export kvhgo_pool_register
func kvhgo_pool_register(tracer C.uint64_t, desc *C.kvh_pool_desc, out *C.uint64_t) (st C.kvh_status) {
	const fn = "kvh_pool_register"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	switch {
	case desc == nil:
		return ret(fn, argErr(stNullArg, "desc is NULL"))
	case out == nil:
		return ret(fn, argErr(stNullArg, "out_pool is NULL"))
	case desc.struct_size != C.uint32_t(unsafe.Sizeof(*desc)):
		return ret(fn, argErr(stStructSize, "desc->struct_size is %d; this library knows %d (sizeof(kvh_pool_desc))",
			uint32(desc.struct_size), unsafe.Sizeof(*desc)))
	}
	a, err := poolFromC(desc)
	if err != nil {
		return ret(fn, err)
	}
	d, err := buildPool(a)
	if err != nil {
		return ret(fn, err)
	}
	p, err := t.PoolRegister(d)
	if err != nil {
		return ret(fn, err)
	}
	*out = C.uint64_t(p)
	return statusC(stOK)
}

// blocksFromC copies a caller block list.
func blocksFromC(blocks *C.uint32_t, n C.size_t) ([]uint32, error) {
	bs, err := blocksViewC(blocks, n)
	if err != nil {
		return nil, err
	}
	return append([]uint32(nil), bs...), nil
}

// blocksViewC is a caller block list in the caller's memory, valid for the
// call only: for a callee that copies whatever it keeps (PoolRelease).
func blocksViewC(blocks *C.uint32_t, n C.size_t) ([]uint32, error) {
	if err := countArg("blocks", blocks == nil, uint64(n), maxBlocks); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, argErr(stInvalidArg, "n is 0: no blocks given")
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(blocks)), int(n)), nil
}

// poolOf resolves the tracer and checks the pool handle.
func poolOf(tracer, pool C.uint64_t) (*core.Tracer, core.PoolHandle, error) {
	t, err := tracerOf(tracer)
	if err != nil {
		return nil, 0, err
	}
	if err := handleArg("pool", uint64(pool)); err != nil {
		return nil, 0, err
	}
	return t, core.PoolHandle(pool), nil
}

// poolBlocks is poolOf plus the block-id list of the operation.
func poolBlocks(tracer, pool C.uint64_t, blocks *C.uint32_t, n C.size_t) (*core.Tracer, core.PoolHandle, []uint32, error) {
	t, p, err := poolOf(tracer, pool)
	if err != nil {
		return nil, 0, nil, err
	}
	bs, err := blocksFromC(blocks, n)
	if err != nil {
		return nil, 0, nil, err
	}
	return t, p, bs, nil
}

//export kvhgo_pool_assign
func kvhgo_pool_assign(tracer, pool C.uint64_t, blocks *C.uint32_t, n C.size_t, tenant, request *C.char) (st C.kvh_status) {
	const fn = "kvh_pool_assign"
	defer recoverPanic(fn, &st, faultsPanic())
	t, p, bs, err := poolBlocks(tracer, pool, blocks, n)
	if err != nil {
		return ret(fn, err)
	}
	ten, err := idArg("tenant_id", readID(tenant), true)
	if err != nil {
		return ret(fn, err)
	}
	req, err := idArg("request_id", readID(request), true)
	if err != nil {
		return ret(fn, err)
	}
	return ret(fn, t.PoolAssign(p, bs, ten, req))
}

//export kvhgo_pool_release
func kvhgo_pool_release(tracer, pool C.uint64_t, blocks *C.uint32_t, n C.size_t, flags C.uint32_t, out *C.double) (st C.kvh_status) {
	const fn = "kvh_pool_release"
	defer recoverPanic(fn, &st, faultsPanic())
	t, p, err := poolOf(tracer, pool)
	if err != nil {
		return ret(fn, err)
	}
	bs, err := blocksViewC(blocks, n) // PoolRelease copies the ids it keeps
	if err != nil {
		return ret(fn, err)
	}
	if uint32(flags)&^releaseFlagsKnown != 0 {
		return ret(fn, argErr(stInvalidArg, "flags has unknown bits %#x", uint32(flags)&^releaseFlagsKnown))
	}
	cov, err := t.PoolRelease(p, bs, uint32(flags)&releaseFlagsKnown != 0)
	if err == nil && out != nil {
		*out = C.double(cov)
	}
	return ret(fn, err)
}

//export kvhgo_pool_release_quarantine
func kvhgo_pool_release_quarantine(tracer, pool C.uint64_t, blocks *C.uint32_t, n C.size_t, reason *C.char, out *C.double) (st C.kvh_status) {
	const fn = "kvh_pool_release_quarantine"
	defer recoverPanic(fn, &st, faultsPanic())
	t, p, bs, err := poolBlocks(tracer, pool, blocks, n)
	if err != nil {
		return ret(fn, err)
	}
	why, err := idArg("reason", readID(reason), true)
	if err != nil {
		return ret(fn, err)
	}
	cov, err := t.PoolReleaseQuarantine(p, bs, why)
	if err == nil && out != nil {
		*out = C.double(cov)
	}
	return ret(fn, err)
}

//export kvhgo_pool_sync
func kvhgo_pool_sync(tracer, pool C.uint64_t, out *C.double) (st C.kvh_status) {
	const fn = "kvh_pool_sync"
	defer recoverPanic(fn, &st, faultsPanic())
	t, p, err := poolOf(tracer, pool)
	if err != nil {
		return ret(fn, err)
	}
	cov, err := t.PoolSync(p)
	if err == nil && out != nil {
		*out = C.double(cov)
	}
	return ret(fn, err)
}

//export kvhgo_pool_unregister
func kvhgo_pool_unregister(tracer, pool C.uint64_t, force C.int32_t) (st C.kvh_status) {
	const fn = "kvh_pool_unregister"
	defer recoverPanic(fn, &st, faultsPanic())
	t, p, err := poolOf(tracer, pool)
	if err != nil {
		return ret(fn, err)
	}
	return ret(fn, t.PoolUnregister(p, force != 0))
}
