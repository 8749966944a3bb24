package main

/*
#include "kvh_internal.h"
*/
import "C"

import (
	"unsafe"

	"github.com/kvhygiene/kvhygiene/core"
)

// allocFromC copies kvh_alloc_desc into allocArgs (struct_size already checked).
func allocFromC(d *C.kvh_alloc_desc) allocArgs {
	a := allocArgs{
		flags: uint32(d.flags), ptr: uint64(d.ptr), nbytes: uint64(d.nbytes),
		device: int32(d.device), ordinal: int32(d.device_ordinal), stream: uint64(d.stream),
		tenant: readID(d.tenant_id), request: readID(d.request_id), model: readID(d.model_id),
		framework: readID(d.framework), dtype: readID(d.dtype), streamID: readID(d.stream_id),
		shapeNull: d.shape == nil, shapeLen: uint64(d.shape_len),
		ttlSec: float64(d.ttl_sec), maxReuse: int64(d.max_reuse),
	}
	if d.shape != nil && a.shapeLen <= maxShape {
		src := unsafe.Slice((*int64)(unsafe.Pointer(d.shape)), int(a.shapeLen))
		a.shape = append(make([]int64, 0, len(src)), src...)
	}
	return a
}

//export kvhgo_allocate
func kvhgo_allocate(tracer C.uint64_t, desc *C.kvh_alloc_desc, out *C.uint64_t) (st C.kvh_status) {
	const fn = "kvh_allocate"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	switch {
	case desc == nil:
		return ret(fn, argErr(stNullArg, "desc is NULL"))
	case out == nil:
		return ret(fn, argErr(stNullArg, "out_handle is NULL"))
	case desc.struct_size != C.uint32_t(unsafe.Sizeof(*desc)):
		return ret(fn, argErr(stStructSize, "desc->struct_size is %d; this library knows %d (sizeof(kvh_alloc_desc))",
			uint32(desc.struct_size), unsafe.Sizeof(*desc)))
	}
	d, err := buildAlloc(allocFromC(desc))
	if err != nil {
		return ret(fn, err)
	}
	h, err := t.Allocate(d)
	if err != nil {
		return ret(fn, err)
	}
	*out = C.uint64_t(h)
	return statusC(stOK)
}

// idOp translates (tracer, handle, identifier) and runs op: the tenant_id
// of Bind/MarkInUse/MarkReuse (optional) and the reason of
// Quarantine/ReleaseQuarantine (required).
func idOp(fn, what string, required bool, tracer, handle C.uint64_t, id *C.char, op func(*core.Tracer, core.Handle, string) error) C.kvh_status {
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	if err := handleArg("handle", uint64(handle)); err != nil {
		return ret(fn, err)
	}
	v, err := idArg(what, readID(id), required)
	if err != nil {
		return ret(fn, err)
	}
	return ret(fn, op(t, core.Handle(handle), v))
}

//export kvhgo_bind
func kvhgo_bind(tracer, handle C.uint64_t, tenant, stream *C.char) (st C.kvh_status) {
	const fn = "kvh_bind"
	defer recoverPanic(fn, &st, faultsPanic())
	sid, err := idArg("stream_id", readID(stream), false)
	if err != nil {
		if _, terr := tracerOf(tracer); terr != nil {
			return ret(fn, terr)
		}
		return ret(fn, err)
	}
	return idOp(fn, "tenant_id", false, tracer, handle, tenant, func(t *core.Tracer, h core.Handle, ten string) error {
		return t.Bind(h, ten, sid)
	})
}

//export kvhgo_mark_in_use
func kvhgo_mark_in_use(tracer, handle C.uint64_t, tenant *C.char) (st C.kvh_status) {
	const fn = "kvh_mark_in_use"
	defer recoverPanic(fn, &st, faultsPanic())
	return idOp(fn, "tenant_id", false, tracer, handle, tenant, (*core.Tracer).MarkInUse)
}

//export kvhgo_mark_reuse
func kvhgo_mark_reuse(tracer, handle C.uint64_t, tenant *C.char) (st C.kvh_status) {
	const fn = "kvh_mark_reuse"
	defer recoverPanic(fn, &st, faultsPanic())
	return idOp(fn, "tenant_id", false, tracer, handle, tenant, (*core.Tracer).MarkReuse)
}

// sanitizeOptsFromC reads kvh_sanitize_opts; NULL gives the defaults.
func sanitizeOptsFromC(o *C.kvh_sanitize_opts) (core.SanitizeOpts, error) {
	if o == nil {
		return buildSanitize(sanitizeArgs{})
	}
	if o.struct_size != C.uint32_t(unsafe.Sizeof(*o)) {
		return core.SanitizeOpts{}, argErr(stStructSize, "opts->struct_size is %d; this library knows %d (sizeof(kvh_sanitize_opts))",
			uint32(o.struct_size), unsafe.Sizeof(*o))
	}
	return buildSanitize(sanitizeArgs{flags: uint32(o.flags), verify: int32(o.verify), samples: uint32(o.samples), stream: uint64(o.stream)})
}

//export kvhgo_sanitize
func kvhgo_sanitize(tracer, handle C.uint64_t, opts *C.kvh_sanitize_opts, out *C.double) (st C.kvh_status) {
	const fn = "kvh_sanitize"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	if err := handleArg("handle", uint64(handle)); err != nil {
		return ret(fn, err)
	}
	o, err := sanitizeOptsFromC(opts)
	if err != nil {
		return ret(fn, err)
	}
	cov, err := t.Sanitize(core.Handle(handle), o)
	if err == nil && out != nil {
		*out = C.double(cov)
	}
	return ret(fn, err)
}

//export kvhgo_sanitize_many
func kvhgo_sanitize_many(tracer C.uint64_t, handles *C.uint64_t, n C.size_t, opts *C.kvh_sanitize_opts, out *C.double) (st C.kvh_status) {
	const fn = "kvh_sanitize_many"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	if err := countArg("handles", handles == nil, uint64(n), maxHandles); err != nil {
		return ret(fn, err)
	}
	o, err := sanitizeOptsFromC(opts)
	if err != nil {
		return ret(fn, err)
	}
	hs := make([]core.Handle, int(n))
	if n > 0 {
		copy(hs, unsafe.Slice((*core.Handle)(unsafe.Pointer(handles)), int(n)))
	}
	covs := make([]float64, int(n))
	err = t.SanitizeMany(hs, o, covs)
	if out != nil && n > 0 {
		// Every buffer is attempted, so its coverage is written even when
		// the call reports the first failure.
		copy(unsafe.Slice((*float64)(unsafe.Pointer(out)), int(n)), covs)
	}
	return ret(fn, err)
}

// coverageOp runs a call that returns a coverage into out (NULL allowed
// unless required).
func coverageOp(fn string, tracer, handle C.uint64_t, out *C.double, required bool, op func(*core.Tracer, core.Handle) (float64, error)) C.kvh_status {
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	if err := handleArg("handle", uint64(handle)); err != nil {
		return ret(fn, err)
	}
	if required && out == nil {
		return ret(fn, argErr(stNullArg, "out_coverage is NULL"))
	}
	cov, err := op(t, core.Handle(handle))
	if err == nil && out != nil {
		*out = C.double(cov)
	}
	return ret(fn, err)
}

//export kvhgo_wait
func kvhgo_wait(tracer, handle C.uint64_t, out *C.double) (st C.kvh_status) {
	const fn = "kvh_wait"
	defer recoverPanic(fn, &st, faultsPanic())
	return coverageOp(fn, tracer, handle, out, false, (*core.Tracer).Wait)
}

//export kvhgo_attest_coverage
func kvhgo_attest_coverage(tracer, handle C.uint64_t, out *C.double) (st C.kvh_status) {
	const fn = "kvh_attest_coverage"
	defer recoverPanic(fn, &st, faultsPanic())
	testPanic(uint64(handle))
	return coverageOp(fn, tracer, handle, out, true, (*core.Tracer).AttestCoverage)
}

//export kvhgo_quarantine
func kvhgo_quarantine(tracer, handle C.uint64_t, reason *C.char) (st C.kvh_status) {
	const fn = "kvh_quarantine"
	defer recoverPanic(fn, &st, faultsPanic())
	return idOp(fn, "reason", true, tracer, handle, reason, (*core.Tracer).Quarantine)
}

//export kvhgo_release_quarantine
func kvhgo_release_quarantine(tracer, handle C.uint64_t, reason *C.char) (st C.kvh_status) {
	const fn = "kvh_release_quarantine"
	defer recoverPanic(fn, &st, faultsPanic())
	return idOp(fn, "reason", true, tracer, handle, reason, (*core.Tracer).ReleaseQuarantine)
}

//export kvhgo_free
func kvhgo_free(tracer, handle C.uint64_t) (st C.kvh_status) {
	const fn = "kvh_free"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	if err := handleArg("handle", uint64(handle)); err != nil {
		return ret(fn, err)
	}
	return ret(fn, t.Free(core.Handle(handle)))
}

// copyID writes an identifier into a char[KVH_MAX_ID_LEN+1] field.
func copyID(dst *[C.KVH_MAX_ID_LEN + 1]C.char, s string) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), len(dst))
	n := copy(b[:len(b)-1], s)
	b[n] = 0
}

//export kvhgo_buffer_info_get
func kvhgo_buffer_info_get(tracer, handle C.uint64_t, out *C.kvh_buffer_info) (st C.kvh_status) {
	const fn = "kvh_buffer_info_get"
	defer recoverPanic(fn, &st, faultsPanic())
	t, err := tracerOf(tracer)
	if err != nil {
		return ret(fn, err)
	}
	switch {
	case out == nil:
		return ret(fn, argErr(stNullArg, "out is NULL"))
	case out.struct_size != C.uint32_t(unsafe.Sizeof(*out)):
		return ret(fn, argErr(stStructSize, "out->struct_size is %d; this library knows %d (sizeof(kvh_buffer_info))",
			uint32(out.struct_size), unsafe.Sizeof(*out)))
	}
	if err := handleArg("handle", uint64(handle)); err != nil {
		return ret(fn, err)
	}
	info, err := t.Info(core.Handle(handle))
	if err != nil {
		return ret(fn, err)
	}
	fillInfo(out, info)
	return statusC(stOK)
}
