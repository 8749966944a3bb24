// Package cudazero zeroizes and verifies device memory through the CUDA
// driver API, without any build-time CUDA dependency.
//
// It owns:
//
//   - Driver loading (driver.go, shim.c): libcuda.so.1 (or $KVH_LIBCUDA) is
//     opened with dlopen at first use and never closed; entry points are
//     resolved with cuGetProcAddress_v2 (CUDA >= 12.0, symbol versions of
//     12.0, legacy default stream semantics), else cuGetProcAddress (11.3+),
//     else dlsym of the versioned export names (cuMemAlloc_v2, ...). The
//     shared library that links this package has no unresolved CUDA symbol.
//     No driver: errors wrap ErrNoDriver; a missing entry point names it and
//     wraps ErrMissingSymbol and ErrNoDriver.
//   - Range validation (ValidateRange): cuPointerGetAttributes (memory type,
//     device ordinal, allocation start and size) must say device memory of
//     the declared device, and the range must end inside its allocation;
//     otherwise ErrInvalidRange and no device work. ZeroAsync validates every
//     range itself, so a bad pointer never reaches a kernel.
//   - Stream-ordered zeroization (ZeroAsync, Op): work is enqueued on the
//     caller's stream after whatever is pending there and the host never
//     synchronizes until Op.Wait. One contiguous range is one
//     cuMemsetD32Async (4-byte aligned) or cuMemsetD8Async; many ranges are
//     one launch of the hand-written PTX kernel kvh_scatter_zero over a
//     descriptor table staged in pinned memory. Verification is one launch
//     of kvh_verify_nonzero (every byte read back, non-zero 4-byte words
//     counted with one atomic per thread into a device counter) before an
//     event is recorded; one 16-byte-aligned range is verified by
//     kvh_pool_verify as a one-region pool, which chunks it on the device
//     (a 44-byte table whatever the size). Graph capture is refused (ErrCapturing). Errors
//     carry the CUDA error name (*Error).
//   - Host memory the device maps (unified addressing, checked per context
//     with cuDeviceGetAttribute): tables up to 64 KiB are read by the
//     kernels straight from the pinned staging buffer (no cuMemcpyHtoDAsync)
//     and the verify kernels' last CTA stores the count into pinned memory
//     itself (no cuMemcpyDtoHAsync); see ptx.go. Without it, the table is
//     copied and the count copied back, as before.
//   - Pool-shaped zeroization (ZeroPoolAsync, pool.go): a paged pool's
//     region table {base, stride, block_bytes} and the released block ids
//     are staged together, then one launch of kvh_pool_zero_verify (or
//     kvh_pool_zero without verification) covers every (region, block) pair:
//     the host cost is O(regions + blocks), one launch and one event, rather
//     than one descriptor per (block, region). The caller validates the
//     regions against device allocations once, when the pool is registered;
//     NewPoolLayout checks their arithmetic once too, and ZeroPoolLayoutAsync
//     then checks only the block ids, while it stages them.
//   - probe.go: per-driver-call timings for the real-GPU benchmarks only.
//   - Contexts: the work runs in the calling thread's current context when it
//     belongs to the requested device (engines call in on their own thread,
//     and a cgo callback runs on that thread); otherwise the device's primary
//     context, retained once per process, is pushed on a locked OS thread and
//     popped afterwards. The PTX module is loaded once per context.
//   - Identity: DeviceUUID (cuDeviceGetUuid, formatted like nvidia-smi) and
//     DriverVersion.
//
// Tests run the real code against tests/fakecuda, a C test double of libcuda
// built by TestMain; the TestReal* tests run against a real GPU
// (tests/gpu/run.sh).
package cudazero
