// Package core is the kvhygiene tracer: the buffer registry, the lifecycle
// state machine, the policies (TTL, max reuse, tenant binding), paged KV
// pools, library-owned hygienic host memory and the library's metrics. The
// C ABI (package capi) is a thin translation layer over this package; the
// numeric Status values equal the header's kvh_status values.
//
// # Lifecycle
//
// allocated → bound → in_use → sanitizing → sanitized → freed, plus
// quarantined. Free succeeds only from sanitized with attested coverage ≥
// the threshold; otherwise the buffer is quarantined (StatusCoverage).
// Quarantine is sticky: only a sanitize with passing verification *after*
// the quarantine followed by ReleaseQuarantine (logged with a reason) leaves
// it. Freed handles are StatusFreed forever and a second free logs nothing.
//
// Coverage is verified-zero bytes / bytes in percent. VerifyFull reads
// every byte back; VerifySampled checks positions drawn from a per-tracer
// random key mixed with the handle and a per-sanitize nonce (the PRF input
// is handle XOR (verify_nonce × 0x9E3779B97F4A7C15); the nonce and the
// positions are logged in sanitize_end so an auditor given the key can
// reproduce them with cpuzero.SamplePositions) and attests 100 when all are
// zero; on a sampled miss the buffer is counted exactly. VerifyNone proves
// nothing and attests 0, so such a buffer cannot be freed. A zero-length
// buffer attests 100 after any sanitize; free without sanitize still fails.
// CPU sanitizes are synchronous even when Async is requested.
//
// # Policies
//
// TTL counts from allocation or from the last MarkInUse/MarkReuse
// (Config.TTLMode). A sweeper goroutine (Config.SweepIntervalMS) quarantines
// expired buffers that still hold data (allocated, bound, in_use) with
// reason "ttl_expired", even when nobody touches them; a TTL <= 0 is a
// violation on first use (MarkInUse/MarkReuse), not a sweeper target. A use
// of a buffer quarantined for TTL reports StatusPolicy. max_reuse < 0 is
// unlimited; 0 means the first reuse violates ("reuse_limit_exceeded").
// An operation naming a tenant other than the owner fails with
// StatusIsolation, quarantines the buffer and logs isolation_violation
// (attacker_tenant, target_tenant, operation).
//
// # Handles and registry
//
// Handle = tracer tag (16 bits, unique per live tracer) | generation (20
// bits) | slot index (28 bits). The registry is a slot array grown by
// fixed-size segments whose directory is published atomically; each slot
// has its own mutex, and a short global lock guards only the free list. A
// slot whose generation is exhausted is retired, so a stale handle can
// never alias a newer buffer. In the forensic log a handle is written as
// its decimal value ("handle": "1234..."). A live buffer costs about 180
// bytes (a 160-byte slot + its boxed request id; tenant and model ids are
// interned; see benchmarks/results/core.md).
//
// # Library-owned memory
//
// AllocDesc.Ptr == 0 on the CPU maps [guard PROT_NONE][data][guard
// PROT_NONE] with MADV_DONTDUMP, MADV_WIPEONFORK (best effort) and mlock
// when RLIMIT_MEMLOCK allows; otherwise the allocate record carries
// "mlock": false and "mlock_error". Free zeroizes, verifies and unmaps it;
// Close zeroizes and unmaps what is left.
//
// # Pools
//
// PoolRegister validates a paged layout (no two entries' blocks intersect,
// block_bytes ≤ stride unless one block, no overflow; CUDA extents inside
// one allocation). PoolAssign is all-or-nothing; a block still assigned to
// another tenant is an isolation violation (quarantined). PoolRelease
// zeroizes every region of every listed block in one pass (parallel above
// 8 MiB on the CPU, one pool-shaped launch that zeroes and reads back on
// CUDA), verifies (full by default) and
// writes one pool_release record. Quarantined pool blocks count in
// quarantine_count.
//
// # Metrics
//
// Each tracer has its own prometheus.Registry (Config.Registerer optionally
// receives the same collectors). The seed's JSON keys and Prometheus names
// are kept; min/avg coverage are over the latest coverage of every
// sanitized buffer (live or freed) and every pool release. An idle tracer
// reports min/avg 100.0 with "sanitized_total": 0 (the seed reports 0.0,
// which fails every gate), so a gate can tell "idle" from "clean".
// total_buffers counts every buffer ever allocated, as the seed does.
//
// # CUDA
//
// All device integration is in device_cuda.go through core/cudazero; the
// driver is loaded on first use. No driver → StatusUnsupported ("no CUDA
// driver: ..."), an invalid range → StatusInvalidArg, stream capture →
// StatusState, other CUDA errors → StatusDevice with the CUDA error name.
// A failed wait attests nothing and quarantines the buffer. SanitizeMany
// zeroizes synchronous CUDA buffers with one launch per (device, stream)
// group; if that launch reports non-zero bytes, each buffer of the group is
// zeroized and verified again on its own to attribute the failure.
package core
