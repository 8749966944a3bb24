#!/usr/bin/env bash
# Real-GPU suite for a machine with an NVIDIA GPU and driver; Go is not needed.
# Needs: build/libkvhygiene.so (make lib) and python3. Optional:
#   build/gpu/cudazero.test  (make gpu-test-binary): cudazero's real-GPU Go tests
#                            and kernel benchmarks against the system libcuda
#   build/gpu/release_cost   (make gpu-test-binary): host cost of a pool release from C
#   torch (CUDA)             : the torch tests and benchmarks/gpu/bench.py
# Results: $OUT/gpu-results.md (OUT defaults to build/gpu-out). BENCH=0 skips benchmarks.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-build/gpu-out}
mkdir -p "$OUT"
R="$OUT/gpu-results.md"
PY=${PYTHON:-python3}
fail=0
{
  echo "# kvhygiene GPU results"
  echo
  echo "- date: $(date -u +%FT%TZ)"
  echo "- gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)"
  echo "- python: $($PY --version 2>&1); torch: $($PY -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null || echo absent)"
  echo
} > "$R"

if [ -x build/gpu/cudazero.test ]; then
  echo "## cudazero real-GPU Go tests" >> "$R"
  KVH_CUDAZERO_REAL=1 KVH_CUDAZERO_BENCH=${BENCH:-1} KVH_GPU_RESULTS="$OUT/cudazero-bench.md" KVH_GPU_PROBE="$OUT/cudazero-probe.md" \
    ./build/gpu/cudazero.test -test.run '^TestReal' -test.v -test.timeout 500s > "$OUT/cudazero-test.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && fail=1
  echo '```' >> "$R"; grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|cudazero_test|gpu_real_test' "$OUT/cudazero-test.log" | grep -v '=== RUN' | tail -40 >> "$R"; echo "exit $rc" >> "$R"; echo '```' >> "$R"
  [ -f "$OUT/cudazero-bench.md" ] && { echo; echo "### kernel benchmarks (cudazero, Go)"; cat "$OUT/cudazero-bench.md"; } >> "$R"
  [ -f "$OUT/cudazero-probe.md" ] && { echo; echo "### host cost per driver call (cudazero, Go)"; cat "$OUT/cudazero-probe.md"; } >> "$R"
else
  echo "build/gpu/cudazero.test missing (make gpu-test-binary): Go real-GPU tests not run" >> "$R"
fi

echo -e "\n## Python tests through libkvhygiene (ctypes)" >> "$R"
KVH_GPU_REQUIRE=test_ctypes_sanitize_and_pool $PY tests/gpu/runner.py > "$OUT/python-tests.log" 2>&1 || fail=1
echo '```' >> "$R"; tail -40 "$OUT/python-tests.log" >> "$R"; echo '```' >> "$R"

if [ "${BENCH:-1}" = 1 ] && $PY -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  echo -e "\n## benchmarks/gpu/bench.py (torch)" >> "$R"
  $PY benchmarks/gpu/bench.py --out "$OUT/bench-torch.md" > "$OUT/bench-torch.log" 2>&1 || fail=1
  cat "$OUT/bench-torch.md" >> "$R" 2>/dev/null || tail -20 "$OUT/bench-torch.log" >> "$R"
  if [ -x build/gpu/release_cost ]; then
    # its rpath finds libkvhygiene.so.1 in build/: link it when only the
    # versioned file was carried to this machine
    [ -e build/libkvhygiene.so.1 ] || ln -sf libkvhygiene.so.1.0.0 build/libkvhygiene.so.1
    echo -e "\n## benchmarks/gpu/c/release_cost.c (the same release called from C)" >> "$R"
    ./build/gpu/release_cost > "$OUT/release-cost.md" 2>&1 || fail=1
    cat "$OUT/release-cost.md" >> "$R"
  fi
  echo -e "\n## benchmarks/gpu/release_diag.py (host cost of a release, condition by condition)" >> "$R"
  $PY benchmarks/gpu/release_diag.py --out "$OUT/release-diag.md" > "$OUT/release-diag.log" 2>&1 || fail=1
  cat "$OUT/release-diag.md" >> "$R" 2>/dev/null || tail -20 "$OUT/release-diag.log" >> "$R"
fi
echo -e "\noverall: $([ $fail = 0 ] && echo PASS || echo FAIL)" >> "$R"
cat "$R"
exit $fail
