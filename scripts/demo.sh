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
echo "--- kvgate verify"
$B/kvgate verify --log-dir "$out/forensics" --out "$out/verify-verdict.json"
echo "--- kvgate check (coverage gate; the demo's isolation violation quarantined 8 blocks)"
$B/kvgate check "$out/forensics/metrics.json" --out "$out/check-verdict.json" || rc=$?
echo "demo: log verified; gate exit code ${rc:-0} (2 = gate failed on the recorded quarantine, as intended)"
