// Package cpuzerobench holds the reference implementations that the core/cpuzero kernels
// are measured against: glibc memset and an OR-reduce loop in C compiled with
// -O3 -march=native, both reached through cgo with the loop inside C so that the cgo call
// overhead (tens of nanoseconds) is paid once per measurement, not once per buffer.
// The report program in ./report runs the side-by-side measurements and writes
// benchmarks/results/cpuzero.md; bench_test.go has the same comparisons as Go benchmarks.
package cpuzerobench
