package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/cpuid/v2"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
)

// benchRow is one size of a bench run (medians over reps).
type benchRow struct {
	Bytes       int     `json:"bytes"`
	KernelGBps  float64 `json:"kernel_gbps"`
	ClearGBps   float64 `json:"clear_gbps"`
	KernelNsMed int64   `json:"kernel_ns_median"`
	ClearNsMed  int64   `json:"clear_ns_median"`
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "[flags]")
	sizesFlag := fs.String("sizes", "4KiB,256KiB,4MiB,64MiB", "comma-separated buffer sizes (B, KiB, MiB, GiB)")
	reps := fs.Int("reps", 15, "repetitions per size and method (median reported)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if _, err := parseFlagsNoPositional(fs, args, stdout); err != nil {
		return flagErrorCode(err, stderr)
	}
	if *reps < 1 || *reps > 1000 {
		fmt.Fprintf(stderr, "kvgate bench: --reps %d: must be 1..1000\n", *reps)
		return exitError
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := parseSize(s)
		if err != nil {
			fmt.Fprintln(stderr, "kvgate bench: --sizes: "+err.Error())
			return exitError
		}
		sizes = append(sizes, n)
	}
	rows := make([]benchRow, 0, len(sizes))
	for _, n := range sizes {
		buf := make([]byte, n)
		for i := range buf { // fault the pages in before timing
			buf[i] = 1
		}
		inner := max(1, (1<<22)/n) // time at least ~4 MiB per sample
		var kt, ct []int64
		for r := 0; r < *reps; r++ { // interleave the two methods
			kt = append(kt, timeIt(inner, func() { cpuzero.Zero(buf) }))
			ct = append(ct, timeIt(inner, func() { clear(buf) }))
		}
		km, cm := median(kt), median(ct)
		rows = append(rows, benchRow{Bytes: n, KernelNsMed: km, ClearNsMed: cm,
			KernelGBps: float64(n) / float64(max(km, 1)), ClearGBps: float64(n) / float64(max(cm, 1))})
	}
	nt, par := cpuzero.Thresholds()
	if *asJSON {
		b, _ := json.Marshal(map[string]any{"cpu": cpuid.CPU.BrandName, "cores": runtime.NumCPU(),
			"kernel": cpuzero.Kernel(), "nt_threshold": nt, "parallel_threshold": par, "reps": *reps, "results": rows})
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	fmt.Fprintf(stdout, "host zeroization bandwidth, median of %d (GB/s = 1e9 bytes/s)\n", *reps)
	fmt.Fprintf(stdout, "cpu: %s, %d logical cores; kernel %s; NT stores >= %s; parallel >= %s\n",
		cpuid.CPU.BrandName, runtime.NumCPU(), cpuzero.Kernel(), humanBytes(float64(nt)), humanBytes(float64(par)))
	fmt.Fprintf(stdout, "%10s  %14s  %14s  %7s\n", "size", "kernel GB/s", "clear() GB/s", "ratio")
	for _, r := range rows {
		fmt.Fprintf(stdout, "%10s  %14.2f  %14.2f  %6.2fx\n", humanBytes(float64(r.Bytes)), r.KernelGBps, r.ClearGBps, r.KernelGBps/r.ClearGBps)
	}
	return exitOK
}

// timeIt returns the nanoseconds of one call of f, averaged over inner calls.
func timeIt(inner int, f func()) int64 {
	t0 := time.Now()
	for i := 0; i < inner; i++ {
		f()
	}
	return time.Since(t0).Nanoseconds() / int64(inner)
}

func median(v []int64) int64 {
	s := append([]int64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// parseSize parses "4096", "4KiB", "64MiB", "1GiB" (also K/M/G, KB/MB/GB as binary).
func parseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	for _, u := range []struct {
		suf string
		m   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	if n > (1<<30)/mult {
		return 0, fmt.Errorf("size %d*%d exceeds the 1 GiB limit", n, mult)
	}
	return n * mult, nil
}
