# forensic chain (forensic/): its Go tests run in test-go (go test -race ./...).
# bench-forensic runs the forensic benchmarks and the seed's verification
# algorithm on the same data and writes benchmarks/results/forensic.md.

.PHONY: bench-forensic
BENCH_TARGETS += bench-forensic

bench-forensic:
	GO=$(GO) PYTHON=$(if $(wildcard $(PYTHON)),$(PYTHON),python3) bash benchmarks/forensic/report.sh benchmarks/results/forensic.md
