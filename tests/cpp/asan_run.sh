#!/usr/bin/env bash
# Runs a command (ctest) under AddressSanitizer options after checking that the
# ASan runtime can start at all on this machine; see docs/cpp.md "Sanitizers".
#   tests/cpp/asan_run.sh <build-dir> <command...>
# A trivial ASan program is tried, in order:
#   1. as is (ASan + LeakSanitizer);
#   2. under `setarch -R` (ASLR off): older libasan cannot place its shadow
#      memory on kernels with high ASLR entropy (vm.mmap_rnd_bits = 32);
#   3. with detect_leaks=0: LeakSanitizer needs ptrace to stop the process's
#      threads, which some containers forbid.
# The first that works is used for the real run. If none does, the environment
# cannot run ASan at all: that is reported loudly and the run is skipped (exit 0),
# because it says nothing about this code.
set -euo pipefail
dir=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
cd "$dir"
printf 'int main(void) { return 0; }\n' > asan_preflight.c
${CC:-cc} -fsanitize=address -o asan_preflight asan_preflight.c

export LSAN_OPTIONS="suppressions=$here/lsan.supp"
asan="detect_stack_use_after_return=1:halt_on_error=1"
run=()
if ASAN_OPTIONS="detect_leaks=1:$asan" ./asan_preflight >/dev/null 2>&1; then
  export ASAN_OPTIONS="detect_leaks=1:$asan"
elif ASAN_OPTIONS="detect_leaks=1:$asan" setarch "$(uname -m)" -R ./asan_preflight >/dev/null 2>&1; then
  echo "asan_run: the ASan runtime needs ASLR off here (vm.mmap_rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo '?')): running under setarch -R"
  export ASAN_OPTIONS="detect_leaks=1:$asan"
  run=(setarch "$(uname -m)" -R)
elif ASAN_OPTIONS="detect_leaks=0:$asan" ./asan_preflight >/dev/null 2>&1; then
  echo "asan_run: WARNING: LeakSanitizer cannot run here (ptrace denied?): ASan without leak detection"
  export ASAN_OPTIONS="detect_leaks=0:$asan"
else
  echo "asan_run: ********************************************************************"
  echo "asan_run: SKIPPED: the ASan runtime cannot start on this machine even for an"
  echo "asan_run: empty program (output below). The UBSan and plain runs still ran."
  echo "asan_run: ********************************************************************"
  ./asan_preflight || true
  exit 0
fi
echo "asan_run: ASAN_OPTIONS=$ASAN_OPTIONS LSAN_OPTIONS=$LSAN_OPTIONS"
exec "${run[@]}" "$@"
