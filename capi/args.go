package main

import (
	"fmt"
	"math"

	"github.com/kvhygiene/kvhygiene/core"
)

// This file is the pure-Go half of the argument checks: the export shims copy
// C struct fields into the plain Go values below (cstr for strings, slices for
// arrays) and these functions validate and translate them into core's types.
// Keeping them free of cgo lets the fuzz tests drive them directly.

func argErr(code core.Status, format string, a ...any) error {
	return &core.Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// idArg validates an identifier string. A NULL optional identifier gives "".
func idArg(what string, c cstr, required bool) (string, error) {
	switch {
	case c.null && required:
		return "", argErr(stNullArg, "%s is NULL", what)
	case c.null:
		return "", nil
	case c.tooLong:
		return "", argErr(stInvalidID, "%s is longer than %d bytes", what, maxIDLen)
	}
	if err := core.ValidateID(what, c.s); err != nil {
		if core.StatusOf(err) != stInvalidID {
			return "", argErr(stInvalidID, "%s: %v", what, err)
		}
		return "", err
	}
	return c.s, nil
}

// pathArg validates a required path string.
func pathArg(what string, c cstr) (string, error) {
	switch {
	case c.null:
		return "", argErr(stNullArg, "%s is NULL", what)
	case c.tooLong:
		return "", argErr(stInvalidArg, "%s is longer than %d bytes", what, maxPathLen)
	case c.s == "":
		return "", argErr(stInvalidArg, "%s is empty", what)
	}
	return c.s, nil
}

// optPathArg validates an optional path string (NULL or "" = none).
func optPathArg(what string, c cstr) (string, error) {
	if c.null || (!c.tooLong && c.s == "") {
		return "", nil
	}
	return pathArg(what, c)
}

// handleArg refuses handle 0 before it reaches core.
func handleArg(what string, h uint64) error {
	if h == 0 {
		return argErr(stUnknownHandle, "%s 0 is never valid", what)
	}
	return nil
}

// deviceArg checks a kvh_device value and its ordinal.
func deviceArg(what string, device, ordinal int32) (core.Device, error) {
	switch device {
	case 0: // KVH_DEVICE_CPU
		if ordinal != 0 {
			return 0, argErr(stInvalidArg, "%s->device_ordinal is %d; it must be 0 for KVH_DEVICE_CPU", what, ordinal)
		}
	case 1: // KVH_DEVICE_CUDA
		if ordinal < 0 {
			return 0, argErr(stInvalidArg, "%s->device_ordinal is negative (%d)", what, ordinal)
		}
	default:
		return 0, argErr(stInvalidArg, "%s->device is %d, not a kvh_device (KVH_DEVICE_CPU or KVH_DEVICE_CUDA)", what, device)
	}
	return core.Device(device), nil
}

// verifyArg checks a kvh_verify_mode value.
func verifyArg(what string, v int32) (core.VerifyMode, error) {
	if v < 0 || v > 3 {
		return 0, argErr(stInvalidArg, "%s is %d, not a kvh_verify_mode (0..3)", what, v)
	}
	return core.VerifyMode(v), nil
}

// allocArgs is kvh_alloc_desc copied into Go.
type allocArgs struct {
	flags                  uint32
	ptr, nbytes            uint64
	device, ordinal        int32
	stream                 uint64
	tenant, request, model cstr
	framework, dtype       cstr
	streamID               cstr
	shape                  []int64
	shapeNull              bool
	shapeLen               uint64
	ttlSec                 float64
	maxReuse               int64
}

const allocFlagsKnown = 0x1 | 0x2 | 0x4 // KVH_ALLOC_HAS_TTL | HAS_MAX_REUSE | PINNED

// buildAlloc validates kvh_alloc_desc fields and translates them.
func buildAlloc(a allocArgs) (core.AllocDesc, error) {
	var d core.AllocDesc
	if a.flags&^allocFlagsKnown != 0 {
		return d, argErr(stInvalidArg, "desc->flags has unknown bits %#x", a.flags&^allocFlagsKnown)
	}
	if a.ptr > math.MaxUint64-a.nbytes {
		return d, argErr(stInvalidArg, "desc->ptr %#x + desc->nbytes %d overflows the address space", a.ptr, a.nbytes)
	}
	dev, err := deviceArg("desc", a.device, a.ordinal)
	if err != nil {
		return d, err
	}
	if dev != core.Device(0) && a.ptr == 0 {
		return d, argErr(stInvalidArg, "desc->ptr is 0 for a CUDA buffer; library-owned memory exists on the CPU only")
	}
	if a.shapeLen > maxShape {
		return d, argErr(stInvalidArg, "desc->shape_len %d exceeds %d dimensions", a.shapeLen, maxShape)
	}
	if a.shapeNull && a.shapeLen > 0 {
		return d, argErr(stNullArg, "desc->shape is NULL but desc->shape_len is %d", a.shapeLen)
	}
	for i, dim := range a.shape {
		if dim < 0 {
			return d, argErr(stInvalidArg, "desc->shape[%d] is negative (%d)", i, dim)
		}
	}
	if a.flags&0x1 != 0 && math.IsNaN(a.ttlSec) {
		return d, argErr(stInvalidArg, "desc->ttl_sec is NaN")
	}
	if d.Tenant, err = idArg("desc->tenant_id", a.tenant, true); err != nil {
		return d, err
	}
	if d.Request, err = idArg("desc->request_id", a.request, true); err != nil {
		return d, err
	}
	if d.Model, err = idArg("desc->model_id", a.model, true); err != nil {
		return d, err
	}
	if d.Framework, err = idArg("desc->framework", a.framework, false); err != nil {
		return d, err
	}
	if d.DType, err = idArg("desc->dtype", a.dtype, false); err != nil {
		return d, err
	}
	if d.StreamID, err = idArg("desc->stream_id", a.streamID, false); err != nil {
		return d, err
	}
	d.Ptr, d.NBytes = a.ptr, a.nbytes
	d.Device, d.Ordinal, d.Stream = dev, int(a.ordinal), a.stream
	if !a.shapeNull {
		d.Shape = a.shape
	}
	d.HasTTL, d.TTLSec = a.flags&0x1 != 0, a.ttlSec
	d.HasMaxReuse, d.MaxReuse = a.flags&0x2 != 0, a.maxReuse
	d.Pinned = a.flags&0x4 != 0
	return d, nil
}

// sanitizeArgs is kvh_sanitize_opts copied into Go.
type sanitizeArgs struct {
	flags   uint32
	verify  int32
	samples uint32
	stream  uint64
}

const sanitizeFlagsKnown = 0x1 | 0x2 | 0x4 | 0x8

// buildSanitize validates kvh_sanitize_opts fields and translates them.
func buildSanitize(a sanitizeArgs) (core.SanitizeOpts, error) {
	var o core.SanitizeOpts
	if a.flags&^sanitizeFlagsKnown != 0 {
		return o, argErr(stInvalidArg, "opts->flags has unknown bits %#x", a.flags&^sanitizeFlagsKnown)
	}
	if a.flags&0x2 != 0 && a.flags&0x4 != 0 {
		return o, argErr(stInvalidArg, "opts->flags has both KVH_SANITIZE_DOUBLE_PASS and KVH_SANITIZE_NO_DOUBLE_PASS")
	}
	v, err := verifyArg("opts->verify", a.verify)
	if err != nil {
		return o, err
	}
	if a.samples > math.MaxInt32 {
		return o, argErr(stInvalidArg, "opts->samples %d is too large", a.samples)
	}
	o.Async = a.flags&0x1 != 0
	switch {
	case a.flags&0x2 != 0:
		o.DoublePass = 1
	case a.flags&0x4 != 0:
		o.DoublePass = -1
	}
	o.Verify = v
	o.Samples = int(a.samples)
	o.UseStream = a.flags&0x8 != 0
	o.Stream = a.stream
	return o, nil
}

// countArg checks an element count against its array pointer and a cap.
func countArg(what string, isNull bool, n uint64, max uint64) error {
	if n > max {
		return argErr(stInvalidArg, "%s count %d exceeds the limit %d", what, n, max)
	}
	if isNull && n > 0 {
		return argErr(stNullArg, "%s is NULL but its count is %d", what, n)
	}
	return nil
}

// poolArgs is kvh_pool_desc copied into Go.
type poolArgs struct {
	device, ordinal int32
	numBlocks       uint32
	stream          uint64
	regions         []core.PoolRegion
	model, name     cstr
	verify          int32
}

// buildPool validates kvh_pool_desc fields and translates them. Overlap and
// ownership checks are core's; here every block must fit in the address space.
func buildPool(a poolArgs) (core.PoolDesc, error) {
	var d core.PoolDesc
	dev, err := deviceArg("desc", a.device, a.ordinal)
	if err != nil {
		return d, err
	}
	if a.numBlocks == 0 {
		return d, argErr(stInvalidArg, "desc->num_blocks is 0")
	}
	if len(a.regions) == 0 {
		return d, argErr(stInvalidArg, "desc->num_regions is 0")
	}
	last := uint64(a.numBlocks - 1)
	for i, r := range a.regions {
		if r.BlockBytes == 0 {
			return d, argErr(stInvalidArg, "desc->regions[%d].block_bytes is 0", i)
		}
		if r.Base == 0 {
			return d, argErr(stInvalidArg, "desc->regions[%d].base is 0", i)
		}
		if a.numBlocks > 1 && r.Stride < r.BlockBytes {
			return d, argErr(stInvalidArg, "desc->regions[%d].block_stride %d is smaller than block_bytes %d (blocks would overlap)", i, r.Stride, r.BlockBytes)
		}
		hi, over := mulAdd(last, r.Stride, r.BlockBytes)
		if over || r.Base > math.MaxUint64-hi {
			return d, argErr(stInvalidArg, "desc->regions[%d]: base %#x + %d blocks overflows the address space", i, r.Base, a.numBlocks)
		}
	}
	if d.Model, err = idArg("desc->model_id", a.model, true); err != nil {
		return d, err
	}
	if d.Name, err = idArg("desc->name", a.name, false); err != nil {
		return d, err
	}
	if d.Verify, err = verifyArg("desc->verify", a.verify); err != nil {
		return d, err
	}
	d.Device, d.Ordinal, d.NumBlocks, d.Stream = dev, int(a.ordinal), a.numBlocks, a.stream
	d.Regions = a.regions
	return d, nil
}

// mulAdd returns a*b+c and whether it overflowed.
func mulAdd(a, b, c uint64) (uint64, bool) {
	if a != 0 && b > math.MaxUint64/a {
		return 0, true
	}
	p := a * b
	if p > math.MaxUint64-c {
		return 0, true
	}
	return p + c, false
}

// releaseFlagsKnown is KVH_RELEASE_ASYNC.
const releaseFlagsKnown = 0x1

// tooSmall is the KVH_E_BUFFER_TOO_SMALL error.
func tooSmall(what string, capacity uint64, n int) error {
	return argErr(stBufferTooSmall, "%s capacity %d is too small; %d bytes are needed (including the NUL)", what, capacity, n+1)
}
