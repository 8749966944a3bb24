#!/usr/bin/env bash
# The main job: a demo lifecycle through the C ABI that writes a real forensic log,
# then verifies the log and gates on the exported metrics with kvgate.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build
out=$B/demo
rm -rf "$out" && mkdir -p "$out/forensics"
cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/demo.c -L$B -lkvhygiene -Wl,-rpath,"$PWD/$B" -o $B/demo-lifecycle
$B/demo-lifecycle "$out/forensics"

echo "--- kvgate verify: the forensic chain"
$B/kvgate verify --log-dir "$out/forensics" --out "$out/verify-verdict.json"

echo "--- kvgate check: metrics taken while 8 dirty blocks were quarantined (must fail, exit 2)"
rc=0
$B/kvgate check "$out/forensics/metrics-quarantined.json" --out "$out/check-quarantined.json" || rc=$?
if [ "$rc" -ne 2 ]; then echo "demo: expected the gate to fail with exit 2, got $rc" >&2; exit 1; fi

echo "--- kvgate check: final metrics, after the forced unregister scrubbed them (must pass)"
$B/kvgate check "$out/forensics/metrics.json" --out "$out/check-verdict.json"
echo "demo: OK — log verified, gate failed on the quarantine and passed once it was scrubbed"
echo "      log: $out/forensics/kv_cache.log   verdicts: $out/*.json"
