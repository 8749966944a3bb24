// Command report measures the core/cpuzero kernels side by side with glibc memset, Go's
// clear and a C OR-reduce (-O3 -march=native) in one process, and writes the results as
// Markdown (benchmarks/results/cpuzero.md through `make bench-cpuzero`).
//
// Every figure is the median of -rounds samples; the implementations are interleaved
// round by round (the order rotates each round) so that a burst of load from other
// processes hits them alike, and every ratio is computed from medians of the same run.
package main
