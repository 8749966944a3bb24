// Command kvgate is the operator CLI of kvhygiene. It replaces the seed's
// tools/eviction_checker.py, tools/verify_logs.py and tools/metrics_exporter.py
// and keeps their flags, environment variables, output schemas and exit codes.
//
// Subcommands (each has its own flag set; `kvgate <cmd> -h` lists the flags):
//
//	check   CI gate over an exported metrics JSON file; writes a verdict
//	verify  verify the forensic chain (all rotated files), prune by retention, verify again
//	serve   serve a Prometheus textfile at /metrics (127.0.0.1 by default)
//	doctor  CPU kernel, CUDA driver, GPUs (NVML), log directory and key checks
//	keygen  generate a checkpoint signer/verifier key pair
//	bench   host zeroization bandwidth: selected kernel vs Go clear()
//
// Exit codes: 0 success/pass, 2 gate failure or integrity failure,
// 1 usage, input or I/O error. kvgate never prints a stack trace: every
// error is one line naming the problem. See docs/kvgate.md.
package main
