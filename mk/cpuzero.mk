# core/cpuzero: host zeroize/verify kernels (Go assembly, AVX2/AVX-512, generic fallback).
#   make test-cpuzero    what test-go does not cover: the generic-only build (-tags purego, the
#                        code every non-amd64 CPU runs), an arm64 cross-build + vet, and a short
#                        fuzz run of FuzzZero (every kernel against the generic one)
#   make bench-cpuzero   bandwidth vs glibc memset / clear() / a C OR-reduce -> benchmarks/results/cpuzero.md
# The package's own tests (every length 0..4097 x offset 0..63, canaries, guard pages, NT
# and parallel paths, KVH_CPU_KERNEL, sampling) run in test-go under -race.
# A count, not a duration: with a duration, Go's fuzzing coordinator can fail the run with a bare
# "context deadline exceeded" when the time runs out while a worker is mid-input (golang/go#75804;
# seen here on a fresh clone). ~150k inputs is about 10 s on the development VM.
CPUZERO_FUZZTIME ?= 150000x

.PHONY: test-cpuzero bench-cpuzero
test-cpuzero:
	$(GO) test -count=1 -tags purego ./core/cpuzero
	GOARCH=arm64 CGO_ENABLED=0 $(GO) vet ./core/cpuzero
	GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./core/cpuzero
	$(GO) test -count=1 -run '^$$' -fuzz '^FuzzZero$$' -fuzztime $(CPUZERO_FUZZTIME) -parallel 1 ./core/cpuzero

bench-cpuzero:
	@mkdir -p benchmarks/results
	CGO_ENABLED=1 $(GO) run ./benchmarks/cpuzero/report -out benchmarks/results/cpuzero.md
	@echo "wrote benchmarks/results/cpuzero.md"

TEST_TARGETS  += test-cpuzero
BENCH_TARGETS += bench-cpuzero
