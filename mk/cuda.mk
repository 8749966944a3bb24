# CUDA path without a GPU: tests/fakecuda (a C test double of libcuda) drives
#   - the Go tests of core/cudazero (built by their TestMain; part of test-go), and
#   - test-cuda: the whole ABI path, Python ctypes -> libkvhygiene -> tracer ->
#     cudazero -> fake libcuda (tests/gpu/test_driver_gpu.py must run and pass;
#     the torch tests skip).
# On a GPU machine: bash tests/gpu/run.sh (real-GPU tests + benchmarks).
FAKECUDA_CC     ?= cc
FAKECUDA_DIR    := $(BUILD)/fakecuda
FAKECUDA_LIB    := $(FAKECUDA_DIR)/libcuda.so.1
RELEASE_COST    := $(BUILD)/gpu/release_cost

$(FAKECUDA_LIB): tests/fakecuda/fakecuda.c
	@mkdir -p $(dir $@)
	$(FAKECUDA_CC) -O1 -g -Wall -Wextra -Werror -std=gnu11 -shared -fPIC -pthread -o $@ $<

.PHONY: test-cuda gpu-test-binary
test-cuda: $(LIB) $(FAKECUDA_LIB) $(RELEASE_COST) | $(PYTHON)
	$(PYTHON) tests/gpu/check_layout.py $(CURDIR)/include
	KVH_LIB=$(LIB) KVH_LIBCUDA=$(FAKECUDA_LIB) KVH_GPU_REQUIRE=test_ctypes_sanitize_and_pool \
	  $(PYTHON) tests/gpu/runner.py
	KVH_LIBCUDA=$(FAKECUDA_LIB) $(RELEASE_COST) 2 4096 > $(BUILD)/gpu/release_cost.out
	grep -q '^| floor: kvh_pool_sync' $(BUILD)/gpu/release_cost.out

# The real-GPU Go test binary and the C release-cost benchmark (run by
# tests/gpu/run.sh on a machine without Go).
gpu-test-binary: $(RELEASE_COST)
	@mkdir -p $(BUILD)/gpu
	CGO_ENABLED=1 $(GO) test -c -o $(BUILD)/gpu/cudazero.test ./core/cudazero

$(RELEASE_COST): benchmarks/gpu/c/release_cost.c include/kvhygiene.h $(LIB)
	@mkdir -p $(dir $@)
	$(FAKECUDA_CC) -O2 -Wall -Wextra -Werror -std=gnu11 -Iinclude -o $@ $< -L$(BUILD) -lkvhygiene -ldl -Wl,-rpath,'$$ORIGIN/..'

TEST_TARGETS += test-cuda
