// Command capi is built with -buildmode=c-shared into libkvhygiene.so: the C ABI
// declared in include/kvhygiene.h. It owns argument checks, handle and tracer
// translation, status codes, the thread-local last error, panic recovery and the
// fork guard; every policy decision belongs to package core (and the forensic
// chain to package forensic).
//
// Layout:
//
//   - wrappers.c: the public kvh_* functions that need Go. Each checks the fork
//     and poison flags in C first, then calls its Go implementation kvhgo_*
//     (export_*.go). Only kvh_* symbols are global (kvhygiene.map), so kvhgo_*
//     and kvhc_* stay private to the library.
//   - status.c: kvh_status_str, kvh_version, kvh_version_number (pure C).
//   - lasterror.c: kvh_last_error, one C thread-local buffer per OS thread. cgo
//     runs an exported Go function on the calling C thread, so setting C TLS
//     inside the call is correct even though goroutines are not threads.
//   - fork.c: a pthread_atfork child handler registered by a constructor marks
//     a forked child; every status-returning kvh_* function then answers
//     KVH_E_FORKED without entering the Go runtime (which would hang there).
//   - poison.c: after a recovered panic (guard.go) every later call returns
//     KVH_E_POISONED, again checked in C. Every export also turns a memory
//     fault in Go code (a bad caller pointer, e.g. desc->shape) into such a
//     recovered panic (debug.SetPanicOnFault) instead of killing the host.
//   - registry.go: kvh_tracer* values are opaque tokens, not addresses: the
//     tag 0x4B5648 ("KVH") in the top three bytes and a never-reused 40-bit
//     sequence number below. No Go pointer ever reaches C and nothing is dereferenced, so a
//     closed tracer is reported as KVH_E_CLOSED (forever, since numbers are
//     not reused) and a random pointer as KVH_E_INVALID_ARG, never a crash.
//     The tag makes the token a non-canonical address, so a caller that
//     dereferences it faults at once instead of corrupting memory.
//   - args.go: the pure-Go validation and translation layer (C struct fields
//     already copied into Go values), fuzzed by args_fuzz_test.go.
//   - cstr.go: bounded reads of C strings and arrays.
//
// String fields written by kvh_config_init point to static storage: strings
// interned once per distinct value for the life of the process, or the
// process environment (FORENSIC_HMAC_SECRET). The Go runtime snapshots the
// environment when the library loads, so kvh_config_init and
// kvh_tracer_open(NULL, ...) first copy the seed's variables from the C
// environment (a host's later setenv / os.environ is honoured).
//
// Nullability beyond the header: kvh_wait's out_coverage and kvh_log_verify's
// opts may be NULL; kvh_metrics_json(t, NULL, 0, &len) returns
// KVH_E_BUFFER_TOO_SMALL with the size; kvh_metrics_serve(t, NULL, ...) binds
// 127.0.0.1 on an ephemeral port; kvh_sanitize_many writes every buffer's
// coverage even when it returns the first failure.
//
// Test-only panic trigger: when the environment variable KVH_TEST_PANIC holds
// exactly "poison-the-library-i-am-a-test" at load time, kvh_attest_coverage
// called with handle UINT64_MAX panics inside Go. It exists so tests can prove
// that a panic returns KVH_E_INTERNAL, poisons the library and leaves the host
// alive; both conditions together cannot happen by accident.
package main
