# C ABI suites: the C test program against the real .so, the dlopen test and
# the exported-symbol check. See tests/c/.
CAPI_CC     ?= cc
CAPI_CFLAGS := -std=c11 -Wall -Wextra -Werror -O1 -g -D_GNU_SOURCE -I$(CURDIR)/include
CAPI_TESTS  := $(BUILD)/tests/c

$(CAPI_TESTS)/test_capi: tests/c/test_capi.c tests/c/check.h include/kvhygiene.h $(LIB)
	@mkdir -p $(dir $@)
	$(CAPI_CC) $(CAPI_CFLAGS) -o $@ $< -L$(BUILD) -lkvhygiene -Wl,-rpath,$(BUILD) -lpthread -lm

# CUDA half: skips (exit 0, "skipped") when no CUDA driver is present.
$(CAPI_TESTS)/test_cuda: tests/c/test_cuda.c tests/c/check.h include/kvhygiene.h $(LIB)
	@mkdir -p $(dir $@)
	$(CAPI_CC) $(CAPI_CFLAGS) -o $@ $< -L$(BUILD) -lkvhygiene -Wl,-rpath,$(BUILD) -ldl

$(CAPI_TESTS)/test_dlopen: tests/c/test_dlopen.c include/kvhygiene.h
	@mkdir -p $(dir $@)
	$(CAPI_CC) $(CAPI_CFLAGS) -o $@ $< -ldl

.PHONY: test-c test-abi
test-c: $(CAPI_TESTS)/test_capi $(CAPI_TESTS)/test_cuda $(BUILD)/kvgate
	$(CAPI_TESTS)/test_cuda
	KVH_KVGATE=$(BUILD)/kvgate $(CAPI_TESTS)/test_capi

test-abi: $(LIB) $(CAPI_TESTS)/test_dlopen
	bash tests/c/check_abi.sh $(LIB) include/kvhygiene.h
	$(CAPI_TESTS)/test_dlopen $(LIB)
	python3 -c 'import ctypes, sys; l = ctypes.CDLL(sys.argv[1]); l.kvh_version.restype = ctypes.c_char_p; assert l.kvh_version() == b"1.0.0", l.kvh_version(); print("ctypes.CDLL: OK")' $(LIB)

TEST_TARGETS += test-c test-abi

$(CAPI_TESTS)/bench_capi: tests/c/bench_capi.c include/kvhygiene.h $(LIB)
	@mkdir -p $(dir $@)
	$(CAPI_CC) $(CAPI_CFLAGS) -O2 -o $@ $< -L$(BUILD) -lkvhygiene -Wl,-rpath,$(BUILD)

.PHONY: bench-capi
# ABI call overhead and the per-buffer lifecycle (fsync none, then the default interval).
bench-capi: $(CAPI_TESTS)/bench_capi
	$(CAPI_TESTS)/bench_capi 1
	$(CAPI_TESTS)/bench_capi 0

BENCH_TARGETS += bench-capi
