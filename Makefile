# kvhygiene — the one entry point.
#   make          build build/libkvhygiene.so, build/include/kvhygiene.h, build/kvgate
#   make demo     set up, build, run a demo lifecycle that writes a real log, verify it
#   make test     set up and run every test suite (Go with -race, C, Python, C++, CUDA double, Prometheus)
#   make bench    benchmarks; reports go to benchmarks/results/
# Each area adds its own targets in mk/<area>.mk (TEST_TARGETS, BENCH_TARGETS).

GO       ?= go
BUILD    := $(CURDIR)/build
VERSION  := 1.0.0
SOMAJOR  := 1
LIBREAL  := $(BUILD)/libkvhygiene.so.$(VERSION)
LIB      := $(BUILD)/libkvhygiene.so
VENV     := $(CURDIR)/.venv
PYTHON   := $(VENV)/bin/python
export GOFLAGS := -buildvcs=false

GO_SRC := $(shell find capi core forensic cmd -type f \( -name '*.go' -o -name '*.s' -o -name '*.c' -o -name '*.h' -o -name '*.map' -o -name '*.ptx' \) 2>/dev/null) go.mod go.sum

TEST_TARGETS  :=
BENCH_TARGETS :=

.PHONY: all setup demo test bench clean lib kvgate test-go lint
all: lib $(BUILD)/include/kvhygiene.h $(BUILD)/kvgate

lib: $(LIB)

$(LIBREAL): $(GO_SRC)
	@mkdir -p $(BUILD)/obj
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath \
	  -ldflags "-extldflags '-Wl,-soname,libkvhygiene.so.$(SOMAJOR) -Wl,--version-script=$(CURDIR)/capi/kvhygiene.map -Wl,-z,now'" \
	  -o $(BUILD)/obj/libkvhygiene.so ./capi
	@rm -f $(BUILD)/obj/libkvhygiene.h   # the cgo header is not the API; include/kvhygiene.h is
	mv $(BUILD)/obj/libkvhygiene.so $@

$(LIB): $(LIBREAL)
	ln -sf libkvhygiene.so.$(VERSION) $(BUILD)/libkvhygiene.so.$(SOMAJOR)
	ln -sf libkvhygiene.so.$(VERSION) $@

$(BUILD)/include/kvhygiene.h: include/kvhygiene.h
	@mkdir -p $(dir $@)
	cp $< $@

kvgate: $(BUILD)/kvgate
$(BUILD)/kvgate: $(GO_SRC)
	$(GO) build -trimpath -o $@ ./cmd/kvgate

# Installs what the tests and the demo need (apt + a Python venv). Idempotent.
setup:
	bash scripts/setup.sh

# The venv's interpreter. Targets that run it take it as an order-only prerequisite, so that
# running one of them alone on a fresh checkout (make test-python) sets up first instead of
# failing on a missing .venv.
$(PYTHON):
	bash scripts/setup.sh

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

test-go: lint
	$(GO) test -race -count=1 ./...

TEST_TARGETS += test-go

-include $(sort $(wildcard mk/*.mk))

demo: setup all
	bash scripts/demo.sh

test: setup all
	$(MAKE) --no-print-directory $(TEST_TARGETS)
	@echo "make test: all suites passed ($(TEST_TARGETS))"

bench: setup all
	$(MAKE) --no-print-directory $(BENCH_TARGETS)

clean:
	rm -rf $(BUILD)
