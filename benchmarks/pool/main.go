package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/klauspost/cpuid/v2"
	"golang.org/x/sys/unix"

	cpuzerobench "github.com/kvhygiene/kvhygiene/benchmarks/cpuzero"
	"github.com/kvhygiene/kvhygiene/core"
	kcpu "github.com/kvhygiene/kvhygiene/core/cpuzero"
)

// notesMarker starts the hand-written part of the report, kept across runs.
const notesMarker = "<!-- notes: kept when the benchmark is re-run -->"

const (
	regions    = 64
	blocks     = 1024
	blockBytes = 32 << 10
	total      = regions * blocks * blockBytes
)

func main() {
	out := flag.String("out", "", "write a markdown report here (default: stdout only)")
	reps := flag.Int("reps", 5, "repetitions per measurement (median reported)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatalf("pool bench: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("pool bench: %v", err)
		}
		defer pprof.StopCPUProfile()
	}

	mem, err := unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		log.Fatalf("pool bench: mmap %d bytes: %v", total, err)
	}
	defer func() { _ = unix.Munmap(mem) }()

	dir, err := os.MkdirTemp("", "kvh-poolbench-")
	if err != nil {
		log.Fatalf("pool bench: %v", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cfg := core.DefaultConfig()
	cfg.LogPath = filepath.Join(dir, "kv_cache.log")
	cfg.SweepIntervalMS = 0
	tr, err := core.Open(cfg)
	if err != nil {
		log.Fatalf("pool bench: open tracer: %v", err)
	}
	defer func() { _ = tr.Close() }()

	base := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	regs := make([]core.PoolRegion, regions)
	for r := range regs {
		regs[r] = core.PoolRegion{Base: base + uint64(r)*blocks*blockBytes, Stride: blockBytes, BlockBytes: blockBytes}
	}
	ids := make([]uint32, blocks)
	for i := range ids {
		ids[i] = uint32(i)
	}
	memset := func() time.Duration {
		fill(mem, 0xA5)
		t0 := time.Now()
		cpuzerobench.MemsetLoop(mem, 1)
		return time.Since(t0)
	}

	type row struct {
		verify        string
		threads       int
		rel, ms       time.Duration
		relBW, memsBW float64
	}
	var rows []row
	for _, mode := range []core.VerifyMode{core.VerifyFull, core.VerifySampled} {
		p, err := tr.PoolRegister(core.PoolDesc{NumBlocks: blocks, Regions: regs, Model: "bench-32-layer", Name: "bench", Verify: mode})
		if err != nil {
			log.Fatalf("pool bench: register: %v", err)
		}
		release := func() time.Duration {
			fill(mem, 0xA5) // the previous tenant's data (untimed)
			if err := tr.PoolAssign(p, ids, "tenant-a", "req"); err != nil {
				log.Fatalf("pool bench: assign: %v", err)
			}
			t0 := time.Now()
			cov, err := tr.PoolRelease(p, ids, false)
			d := time.Since(t0)
			if err != nil || cov != 100 {
				log.Fatalf("pool bench: release: coverage %v, %v", cov, err)
			}
			return d
		}
		for _, procs := range []int{1, runtime.NumCPU()} {
			prev := runtime.GOMAXPROCS(procs)
			var rs, ms []time.Duration
			for i := 0; i < *reps; i++ { // interleaved, so drift hits both alike
				rs = append(rs, release())
				ms = append(ms, memset())
			}
			runtime.GOMAXPROCS(prev)
			r, m := median(rs), median(ms)
			rows = append(rows, row{mode.String(), procs, r, m, gbps(r), gbps(m)})
		}
		if err := tr.PoolUnregister(p, true); err != nil {
			log.Fatalf("pool bench: unregister: %v", err)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Host pool release vs memset\n\n")
	fmt.Fprintf(&b, "`go run ./benchmarks/pool` (`make bench-pool`). Machine: %s, %d logical cores; zeroize kernel `%s`; %s.\n\n",
		cpuid.CPU.BrandName, runtime.NumCPU(), kcpu.Kernel(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "Pool: %d regions (32 layers x K/V) x %d blocks x %d KiB = %d MiB, vLLM per-layer layout. "+
		"One `PoolRelease` of all %d blocks: zeroize + verification (`full`: every byte read back; `sampled`: "+
		"the configured number of keyed positions per region) + one forensic record. Baseline: one glibc `memset` over the same bytes (write only). Medians of %d interleaved runs; "+
		"memory is dirtied (untimed) before every run. The memset baseline is single-threaded in both rows.\n\n",
		regions, blocks, blockBytes>>10, total>>20, blocks, *reps)
	fmt.Fprintf(&b, "| verify | threads | pool release | memset | release GB/s | memset GB/s | ratio (release / memset bandwidth) |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %v | %v | %.1f | %.1f | **%.2fx** |\n", r.verify, r.threads, r.rel.Round(time.Microsecond), r.ms.Round(time.Microsecond), r.relBW, r.memsBW, r.relBW/r.memsBW)
	}
	fmt.Print(b.String())
	if *out != "" {
		// Hand-written analysis below the notes marker survives a re-run.
		if prev, err := os.ReadFile(*out); err == nil {
			if i := strings.Index(string(prev), notesMarker); i >= 0 {
				b.WriteString("\n" + string(prev[i:]))
			}
		}
		if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
			log.Fatalf("pool bench: write %s: %v", *out, err)
		}
	}
}

// fill writes v over b with memset's speed, so dirtying stays cheap (untimed anyway).
func fill(b []byte, v byte) {
	b[0] = v
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func gbps(d time.Duration) float64 { return float64(total) / d.Seconds() / 1e9 }
