// Package cpuzero owns host-memory zeroization and verification for kvhygiene.
//
// It provides:
//
//   - Zero: vector-store zeroization (AVX-512 or AVX2 Go assembly on amd64, a pure-Go
//     kernel elsewhere). Ranges of at least NTThreshold bytes use non-temporal stores
//     (VMOVNTDQ, destination aligned to 64 bytes) followed by SFENCE, so a scrub of a large
//     KV region does not evict the working set of the serving engine. On CPUs with ERMS
//     where it was measured faster (Intel from 64 KiB, AMD Zen 5 and later from the L2
//     size), ranges in [ERMSThreshold, NTThreshold) use REP STOSB, whose no-RFO
//     fast-string protocol glibc memset and Go's clear use too. Ranges of at
//     least ParallelThreshold bytes are split across runtime.GOMAXPROCS(0) goroutines on
//     4 KiB boundaries. Assembly runs in pieces of at most 1 MiB so that the goroutine
//     stays preemptible (assembly is not asynchronously preemptible).
//   - ZeroStream: non-temporal zeroization from 512 bytes on, for ranges that are verified by
//     sampling and so need not stay in cache: no read-for-ownership of the old contents.
//   - IsZero / NonZeroBytes: a full read-back OR-reduce in the same instruction sets.
//   - SampleVerify / SamplePositions: sampled verification at positions that cannot be
//     predicted without the per-tracer secret key, but that an auditor who is given the
//     key reproduces exactly.
//   - Guard / GoGuarded / FaultSlot: a memory fault taken by a kernel on memory that is not
//     mapped (caller memory unmapped behind the library's back), in the calling goroutine or
//     in a worker of a split range, becomes a *FaultError instead of a crash of the host.
//   - Ptr: the one sanctioned conversion of a C address into an unsafe.Pointer.
//
// # Kernel dispatch
//
// The kernel is chosen once, at package initialisation, with github.com/klauspost/cpuid/v2
// (which also checks that the OS saves the YMM/ZMM/opmask state via XCR0): "avx512" needs
// AVX512F and AVX2, "avx2" needs AVX2, "generic" runs everywhere. The environment variable
// KVH_CPU_KERNEL=generic|avx2|avx512 forces a kernel; if the CPU cannot run it (or the value
// is unknown) the best available kernel is used instead and ForcedKernelError says why.
// Builds for other architectures, or with the build tag purego, contain the generic kernel
// only.
//
// # Sampled verification (the auditor's specification)
//
// A buffer of size bytes is viewed as W = ceil(size/8) words; word w covers the bytes
// [8w, min(8w+8, size)) of the buffer (offsets relative to the buffer start, so the
// positions do not depend on where the buffer lives). A sample checks one such word; checked
// and nonzero count bytes. For n samples:
//
//   - n <= 0 or size == 0: nothing is sampled.
//   - n >= W: every word is checked (positions 0, 8, 16, ...).
//   - otherwise n distinct words are drawn without replacement by a sparse Fisher-Yates
//     shuffle: seed = HMAC-SHA256(key, "kvhygiene/cpuzero/sample/v1" || 0x00 ||
//     LE64(handle) || LE64(size)); the random stream is AES-256-CTR keyed with seed and a
//     zero 16-byte IV; draw i (0-based) reads the next 8 bytes r (little-endian) and picks
//     j = i + floor(r * (W-i) / 2^64), swaps perm[i] and perm[j] (perm starts as the
//     identity permutation of 0..W-1) and samples word perm[i], i.e. byte offset 8*perm[i].
//
// SampleVerify reads the whole buffer instead (checked == size) once n >= W/8, where
// sampling would touch almost every cache line anyway.
//
// # Sampled verification of many ranges (pool releases)
//
// A RangeSampler verifies the ranges of one pool release (the range index is assigned by
// the caller: the tracer numbers the (region, block) pairs region by region over the
// release's block ids in increasing order, index = region*len(blocks) + rank, and uses as
// handle the pool handle XOR (n * 0x9E3779B97F4A7C15) for the verify_nonce n that the
// pool_release record carries) from one keystream: seed = HMAC-SHA256(key, "kvhygiene/cpuzero/sample-ranges/v1" || 0x00 ||
// LE64(handle)); the stream is AES-256-CTR keyed with seed, a zero IV and a 128-bit
// big-endian counter; with n samples per range, range index reads its n draws (8 bytes
// each, little-endian) from the stream bytes [8n*index, 8n*(index+1)). The shuffle, the word
// view and the full-read rule are those of SampleVerify above.
//
// Without the key the positions are unpredictable (HMAC-SHA256 and AES are PRFs); with it
// they are reproducible bit for bit (SamplePositions).
package cpuzero
