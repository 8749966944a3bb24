# Host paged-pool release (1024 blocks x 64 regions x 32 KiB) vs glibc memset over the same bytes.
BENCH_TARGETS += bench-pool
.PHONY: bench-pool
bench-pool:
	@mkdir -p benchmarks/results
	CGO_ENABLED=1 $(GO) run ./benchmarks/pool -out benchmarks/results/pool.md
