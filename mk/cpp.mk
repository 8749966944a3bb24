# C++ binding (bindings/cpp, CMakeLists.txt, tests/cpp): GoogleTest suite, the
# reference paged engine, install + find_package consumer, and a UBSan build.
#   make test-cpp     all of it (part of `make test`)
#   make bench-cpp    a longer paged_engine run (figures: benchmarks/results/cpp.md)
CMAKE        ?= cmake
CTEST        ?= ctest
CPP_JOBS     ?= 2
CPP_BUILD    := $(BUILD)/cmake
CPP_UBSAN    := $(BUILD)/cmake-ubsan
CPP_ASAN     := $(BUILD)/cmake-asan
CPP_CONSUMER := $(BUILD)/cmake-consumer
CPP_UBSAN_FLAGS := -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1
CPP_ASAN_FLAGS  := -fsanitize=address -fno-omit-frame-pointer -g -O1
# ctest: "No tests were found" is a failure, not a pass.
CPP_CTEST    := $(CTEST) --no-tests=error --output-on-failure --timeout 300 -j $(CPP_JOBS)

.PHONY: test-cpp test-cpp-main test-cpp-install test-cpp-ubsan test-cpp-asan bench-cpp

test-cpp: test-cpp-main test-cpp-install test-cpp-ubsan test-cpp-asan
	@echo "test-cpp: gtest suite, paged engine, install/find_package consumer, UBSan and ASan builds passed"

# Configure + build in build/cmake (the CMake build runs `make lib` itself), run ctest.
test-cpp-main:
	$(CMAKE) -S . -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVH_BUILD_TESTS=ON -DKVH_BUILD_EXAMPLES=ON
	$(CMAKE) --build $(CPP_BUILD) -j $(CPP_JOBS)
	cd $(CPP_BUILD) && $(CPP_CTEST)

# cmake --install into a temporary prefix; a separate project finds it with
# find_package(kvhygiene CONFIG REQUIRED), builds and runs against it.
test-cpp-install: test-cpp-main
	@set -e; prefix=$$(mktemp -d "$${TMPDIR:-/tmp}/kvh-prefix-XXXXXX"); trap 'rm -rf "$$prefix"' EXIT; \
	echo "test-cpp-install: prefix $$prefix"; \
	$(CMAKE) --install $(CPP_BUILD) --prefix "$$prefix"; \
	libdir=$$(dirname "$$(find "$$prefix" -name 'libkvhygiene.so.$(VERSION)' -type f)"); \
	test -L "$$libdir/libkvhygiene.so.$(SOMAJOR)" && test -L "$$libdir/libkvhygiene.so" \
	  || { echo "test-cpp-install: SONAME links missing in $$libdir" >&2; exit 1; }; \
	readelf -d "$$libdir/libkvhygiene.so.$(VERSION)" | grep -q 'SONAME.*\[libkvhygiene\.so\.$(SOMAJOR)\]' \
	  || { echo "test-cpp-install: wrong SONAME" >&2; exit 1; }; \
	test -f "$$prefix/include/kvhygiene.h" && test -f "$$prefix/include/kvhygiene.hpp"; \
	test -f "$$libdir/cmake/kvhygiene/kvhygieneConfig.cmake" && test -f "$$libdir/cmake/kvhygiene/kvhygieneConfigVersion.cmake"; \
	rm -rf $(CPP_CONSUMER); \
	$(CMAKE) -S tests/cpp/consumer -B $(CPP_CONSUMER) -DCMAKE_PREFIX_PATH="$$prefix"; \
	$(CMAKE) --build $(CPP_CONSUMER) -j $(CPP_JOBS); \
	readelf -d $(CPP_CONSUMER)/consumer | grep -q 'NEEDED.*\[libkvhygiene\.so\.$(SOMAJOR)\]' \
	  || { echo "test-cpp-install: consumer does not need libkvhygiene.so.$(SOMAJOR)" >&2; exit 1; }; \
	readelf -d $(CPP_CONSUMER)/consumer | grep -q "R.*PATH.*$$libdir" \
	  || { echo "test-cpp-install: consumer does not resolve the installed library" >&2; exit 1; }; \
	cd $(CPP_CONSUMER) && $(CPP_CTEST)

# The same suite built with UndefinedBehaviorSanitizer; any report aborts the test.
test-cpp-ubsan: test-cpp-main
	$(CMAKE) -S . -B $(CPP_UBSAN) -DCMAKE_BUILD_TYPE=Debug -DKVH_BUILD_TESTS=ON -DKVH_BUILD_EXAMPLES=ON \
	  "-DCMAKE_CXX_FLAGS=$(CPP_UBSAN_FLAGS)"
	$(CMAKE) --build $(CPP_UBSAN) -j $(CPP_JOBS)
	cd $(CPP_UBSAN) && UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CPP_CTEST)

# The same suite built with AddressSanitizer + LeakSanitizer, against the
# uninstrumented Go library (see docs/cpp.md "Sanitizers"). asan_run.sh first
# checks that the ASan runtime can start on this machine at all.
test-cpp-asan: test-cpp-main test-cpp-ubsan
	$(CMAKE) -S . -B $(CPP_ASAN) -DCMAKE_BUILD_TYPE=Debug -DKVH_BUILD_TESTS=ON -DKVH_BUILD_EXAMPLES=ON \
	  "-DCMAKE_CXX_FLAGS=$(CPP_ASAN_FLAGS)"
	$(CMAKE) --build $(CPP_ASAN) -j $(CPP_JOBS)
	tests/cpp/asan_run.sh $(CPP_ASAN) $(CPP_CTEST)

# A longer run of the reference engine (release build from test-cpp-main).
CPP_BENCH_ARGS ?= --blocks 1024 --block-size 16 --layers 4 --heads 8 --head-dim 128 --tenants 8 \
                  --threads 2 --active 8 --max-blocks 32 --duration 10
bench-cpp: test-cpp-main
	$(CPP_BUILD)/bindings/cpp/examples/paged_engine $(CPP_BENCH_ARGS)

TEST_TARGETS  += test-cpp
BENCH_TARGETS += bench-cpp
