package main

/*
#include "kvh_internal.h"
*/
import "C"

import "github.com/kvhygiene/kvhygiene/core"

// fillInfo writes core's BufferInfo into the caller's kvh_buffer_info,
// keeping the caller's struct_size.
func fillInfo(out *C.kvh_buffer_info, in core.BufferInfo) {
	size := out.struct_size
	*out = C.kvh_buffer_info{}
	out.struct_size = size
	out.state = C.int32_t(in.State)
	out.ptr = C.uint64_t(in.Ptr)
	out.nbytes = C.uint64_t(in.NBytes)
	out.device = C.int32_t(in.Device)
	out.device_ordinal = C.int32_t(in.Ordinal)
	out.stream = C.uint64_t(in.Stream)
	out.coverage_pct = C.double(in.CoveragePct)
	out.reuse_count = C.int64_t(in.ReuseCount)
	out.max_reuse = C.int64_t(in.MaxReuse)
	out.library_owned = boolC(in.LibraryOwned)
	out.locked = boolC(in.Locked)
	copyID(&out.tenant_id, in.Tenant)
	copyID(&out.request_id, in.Request)
	copyID(&out.model_id, in.Model)
}
