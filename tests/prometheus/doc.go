// Package promtest is an end-to-end test: a real Prometheus server
// (/usr/bin/prometheus from Debian's prometheus package, installed by
// scripts/setup.sh) scrapes a core.Tracer's /metrics endpoint and the
// test checks through the Prometheus HTTP API that the scraped
// kv_hygiene_sanitized_bytes_total equals the bytes the test sanitized.
// Without prometheus the test skips locally and fails when CI=true.
package promtest
