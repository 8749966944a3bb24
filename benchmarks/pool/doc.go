// Command pool measures a host paged-pool release against glibc memset over the same bytes.
//
// The pool is the 32-layer model: 64 regions (K and V of 32 layers) of 1024 blocks of
// 32 KiB each, 2 GiB in all, in vLLM's per-layer layout. One kvh_pool_release-equivalent call
// (core.Tracer.PoolRelease, full verification, forensic logging on) releases all 1024 blocks;
// the baseline is one glibc memset over the same 2 GiB. Both run in the same process, side by
// side, several times; the report gives medians and their ratio, single-threaded
// (GOMAXPROCS=1) and with all cores.
//
//	go run ./benchmarks/pool -out benchmarks/results/pool.md
package main
