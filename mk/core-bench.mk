# core (tracer) benchmarks: the Go 4 KiB lifecycle and the per-live-buffer
# memory. Raw output: build/bench-core.txt; the report is
# benchmarks/results/core.md (figures copied from that output by hand).
# The tracer's tests run in test-go (go test -race ./...).
.PHONY: bench-core
bench-core:
	@mkdir -p $(BUILD)
	$(GO) test -run '^$$' -bench 'Lifecycle4KiB' -benchtime 30000x -count 3 ./core/ | tee $(BUILD)/bench-core.txt
	$(GO) test -run '^$$' -bench 'LiveBufferMemory' -benchtime 1x -count 1 ./core/ | tee -a $(BUILD)/bench-core.txt

BENCH_TARGETS += bench-core
