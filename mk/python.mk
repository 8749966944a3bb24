# Python bindings (bindings/python, package kvhygiene): install into the venv and test.
#   make test-python   pip-installs the package (bundling build/libkvhygiene.so) and runs pytest
#   make bench-python  lifecycle + paged-release benchmarks -> benchmarks/results/python.md (numbers printed)

PY_PKG := bindings/python

.PHONY: test-python bench-python python-install

# --no-build-isolation when the venv has setuptools and wheel (no network); else pip fetches them from PyPI.
python-install: $(LIB) | $(PYTHON)
	@nbi=""; $(PYTHON) -c "import setuptools, wheel" 2>/dev/null && nbi="--no-build-isolation"; \
	KVH_LIBRARY=$(LIB) $(PYTHON) -m pip install -q $$nbi --force-reinstall --no-deps ./$(PY_PKG)

test-python: python-install $(BUILD)/kvgate
	@rc=0; cd $(CURDIR) && env -u KVH_LIBRARY KVH_EXPECT_BUNDLED=1 \
	  $(PYTHON) -m pytest $(PY_PKG)/tests -q -p no:cacheprovider || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "test-python: FAILED: pytest collected no tests" >&2; exit 1; fi; \
	if [ $$rc -ne 0 ]; then echo "test-python: FAILED (pytest exit $$rc)" >&2; exit $$rc; fi

bench-python: python-install
	env -u KVH_LIBRARY $(PYTHON) benchmarks/python/bench_lifecycle.py

TEST_TARGETS  += test-python
BENCH_TARGETS += bench-python
