# kvgate: the operator CLI (cmd/kvgate), operations material (deploy/) and
# the real-Prometheus test (tests/prometheus). Their Go tests run in test-go
# (go test -race ./...); test-kvgate smoke-tests the binary `make` built
# against the seed's own logs and metrics, as an operator would run it.

COMPAT ?= $(firstword $(KVH_COMPAT_DIR) $(wildcard $(CURDIR)/tests/fixtures/compat) $(CURDIR)/../shared/compat)

.PHONY: test-kvgate bench-kvgate
test-kvgate: $(BUILD)/kvgate
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BUILD)/kvgate doctor --log-dir "$$tmp" >/dev/null; \
	if [ -d "$(COMPAT)" ]; then \
	  $(BUILD)/kvgate check "$(COMPAT)/plain/coverage.json" --out "$$tmp/verdict.json" >/dev/null; \
	  LOG_DIR="$(COMPAT)/plain" VERDICT_OUT="$$tmp/v1.json" $(BUILD)/kvgate verify >/dev/null 2>&1; \
	  FORENSIC_HMAC_SECRET=secret LOG_DIR="$(COMPAT)/hmac" VERDICT_OUT="$$tmp/v2.json" $(BUILD)/kvgate verify >/dev/null 2>&1; \
	  LOG_DIR="$(COMPAT)/rotated" VERDICT_OUT="$$tmp/v3.json" $(BUILD)/kvgate verify >/dev/null 2>&1; \
	  rc=0; FORENSIC_HMAC_SECRET=wrong LOG_DIR="$(COMPAT)/hmac" VERDICT_OUT="$$tmp/v4.json" $(BUILD)/kvgate verify >/dev/null 2>&1 || rc=$$?; \
	  test $$rc -eq 2 || { echo "test-kvgate: wrong key must be an integrity failure (exit 2), got $$rc"; exit 1; }; \
	else echo "test-kvgate: $(COMPAT) absent, seed fixtures skipped"; fi; \
	rc=0; MAX_ROTATED=abc $(BUILD)/kvgate verify --log-dir "$$tmp" >/dev/null 2>&1 || rc=$$?; \
	test $$rc -eq 1 || { echo "test-kvgate: MAX_ROTATED=abc must exit 1, got $$rc"; exit 1; }
	@echo "test-kvgate: ok"

# Host zeroization bandwidth, selected kernel vs clear(); small and quick.
bench-kvgate: $(BUILD)/kvgate
	$(BUILD)/kvgate bench --sizes 4KiB,256KiB,4MiB,64MiB --reps 15

TEST_TARGETS += test-kvgate
BENCH_TARGETS += bench-kvgate
