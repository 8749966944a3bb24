package forensic

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user + system, all threads) the process has used:
// on a shared machine it shows the cost per record when the wall clock
// also counts other processes' load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchFields is a typical ~300-byte lifecycle record payload.
func benchFields(i int) []Field {
	return []Field{
		{"handle", "9f1c2b7e-4a4d-4c1e-9a51-3d2f6b7c8e90"}, {"tenant_id", "tenant-0042"}, {"request_id", "req-000123"},
		{"model_id", "llama-3-8b"}, {"device", "cuda"}, {"nbytes", int64(4096)}, {"coverage_pct", 100.0},
		{"shape", []int64{2, 16, 8, 128}}, {"dtype", "float16"}, {"block", int64(i)},
	}
}

func benchAppend(b *testing.B, pol FsyncPolicy, key []byte) {
	p := filepath.Join(b.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: key, Fsync: pol, MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	fields := benchFields(0)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		if err := w.Append("sanitize_end", fields...); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/rec")
	st := w.Stats()
	w.Close()
	b.ReportMetric(float64(b.N)/el.Seconds(), "rec/s")
	b.ReportMetric(float64(st.Bytes)/float64(st.Records), "B/rec")
}

func BenchmarkAppendHMACFsyncNone(b *testing.B)     { benchAppend(b, FsyncNone, testKey) }
func BenchmarkAppendHMACFsyncInterval(b *testing.B) { benchAppend(b, FsyncInterval, testKey) }
func BenchmarkAppendHMACFsyncAlways(b *testing.B)   { benchAppend(b, FsyncAlways, testKey) }

// BenchmarkAppendHMACFsyncAlways8 has 4*GOMAXPROCS concurrent appenders
// sharing fsyncs (group commit).
func BenchmarkAppendHMACFsyncAlways8(b *testing.B) {
	p := filepath.Join(b.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncAlways, MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(4) // 4*GOMAXPROCS goroutines
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		f := benchFields(0)
		for pb.Next() {
			if err := w.Append("sanitize_end", f...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	w.Close()
	b.ReportMetric(float64(b.N)/el.Seconds(), "rec/s")
}

// BenchmarkLifecycleAppendCost is what the core pays per 4 KiB lifecycle:
// five Appends (allocate, mark_in_use, sanitize_start, sanitize_end, free),
// caller side only; reports the median over all lifecycles.
func BenchmarkLifecycleAppendCost(b *testing.B) {
	p := filepath.Join(b.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncInterval, MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	alloc := benchFields(0)
	small := alloc[:4]
	end := []Field{{"handle", "9f1c2b7e-4a4d-4c1e-9a51-3d2f6b7c8e90"}, {"coverage_pct", 100.0}, {"duration_ms", 0.0021}, {"verify", "full"}}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		w.Append("allocate", alloc...)
		w.Append("write", small...)
		w.Append("sanitize_start", small...)
		w.Append("sanitize_end", end...)
		w.Append("free", small...)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	w.Close()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "median-ns/lifecycle")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns/lifecycle")
}

// makeBenchLog writes n records with our writer; seedLayout re-lays every
// line the way the seed writes it (json.dumps default separators, key
// order not sorted-compact) so the verifier must take the slow path.
func makeBenchLog(b *testing.B, n int, key []byte, seedLayout bool) string {
	dir := b.TempDir()
	p := filepath.Join(dir, "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: key, Fsync: FsyncNone, MaxBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		w.Append("sanitize_end", benchFields(i)...)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if !seedLayout {
		return p
	}
	out := filepath.Join(dir, "seed", "kv_cache.log")
	os.MkdirAll(filepath.Dir(out), 0o700)
	if err := toSeedLayout(p, out); err != nil {
		b.Fatal(err)
	}
	return out
}

// seedKeyOrder puts keys in an order like the seed's dict insertion order:
// event_type first, prev_hash last, the rest in a fixed order that is not
// sorted (by an FNV-1a hash of the name), the same for every record with the
// same keys, as the seed's code builds each event type's dict the same way.
func seedKeyOrder(keys []string) {
	rank := func(k string) uint32 {
		switch k {
		case "event_type":
			return 0
		case "prev_hash":
			return math.MaxUint32
		}
		h := fnv.New32a()
		h.Write([]byte(k))
		return 1 + h.Sum32()%(math.MaxUint32-2)
	}
	sort.Slice(keys, func(i, j int) bool { return rank(keys[i]) < rank(keys[j]) })
}

// toSeedLayout rewrites a log in the seed's layout: {"k": v, "k2": v2, ...}
// with curr_hash/hmac last, like Python's json.dumps(record, ensure_ascii=False).
func toSeedLayout(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(o, 1<<20)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		m, err := parseLine(sc.Bytes())
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "curr_hash" && k != "hmac" {
				keys = append(keys, k)
			}
		}
		seedKeyOrder(keys)
		keys = append(keys, "curr_hash")
		if _, ok := m["hmac"]; ok {
			keys = append(keys, "hmac")
		}
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			v, err := Canonical(m[k])
			if err != nil {
				return err
			}
			parts = append(parts, fmt.Sprintf("%q: %s", k, v))
		}
		bw.WriteString("{" + strings.Join(parts, ", ") + "}\n")
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return o.Close()
}

func benchVerify(b *testing.B, key []byte, seedLayout bool) {
	n := 100000
	if seedLayout {
		n = 20000
	}
	p := makeBenchLog(b, n, key, seedLayout)
	st, _ := os.Stat(p)
	b.SetBytes(st.Size())
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		res, err := VerifyChain(p, VerifyOptions{HMACKey: key})
		if err != nil || !res.OK || res.Records != n {
			b.Fatalf("verify: %v %+v", err, res)
		}
	}
	b.ReportMetric(float64(st.Size())*float64(b.N)/((cpuTime()-cpu0).Seconds()*1e6), "MB/cpu-s")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rec/s")
	b.ReportMetric(float64(st.Size())/float64(n), "B/rec")
}

func BenchmarkVerifyOursPlain(b *testing.B) { benchVerify(b, nil, false) }
func BenchmarkVerifyOursHMAC(b *testing.B)  { benchVerify(b, testKey, false) }
func BenchmarkVerifySeedPlain(b *testing.B) { benchVerify(b, nil, true) }
func BenchmarkVerifySeedHMAC(b *testing.B)  { benchVerify(b, testKey, true) }

// BenchmarkVerifyIncremental measures verifying 1,000 new records after a
// checkpoint that covers 10,000 or 100,000 (cost proportional to the new
// records: both should take the same time).
func BenchmarkVerifyIncremental(b *testing.B) {
	for _, hist := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("history=%d", hist), func(b *testing.B) { benchIncremental(b, hist) })
	}
}

func benchIncremental(b *testing.B, hist int) {
	e := newCPEnv(b)
	o := e.opts(1 << 40)
	o.CheckpointEvery = 1 << 30
	w, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < hist; i++ {
		w.Append("sanitize_end", benchFields(i)...)
	}
	if err := w.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		w.Append("sanitize_end", benchFields(i)...)
	}
	w.Flush()
	// close without a final checkpoint: reopen with checkpoints off
	w.mu.Lock()
	w.signer = nil
	w.mu.Unlock()
	w.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := VerifyIncremental(e.log, e.vopts())
		if err != nil || !res.OK || res.Records != 1000 {
			b.Fatalf("%v %+v", err, res)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/verify-1000-new")
}

// TestWriteBenchLogs writes a 20,000-record log in our layout and in the
// seed's layout under $KVH_FORENSIC_BENCH_DIR (used by make bench-forensic
// to time the seed's Python verification algorithm on the same data).
func TestWriteBenchLogs(t *testing.T) {
	dir := os.Getenv("KVH_FORENSIC_BENCH_DIR")
	if dir == "" {
		t.Skip("KVH_FORENSIC_BENCH_DIR not set")
	}
	for _, sub := range []string{"ours", "seed"} {
		p := filepath.Join(dir, sub, "kv_cache.log")
		os.RemoveAll(filepath.Dir(p))
		src := filepath.Join(dir, "src-"+sub, "kv_cache.log")
		os.RemoveAll(filepath.Dir(src))
		w, err := Open(Options{Path: src, HMACKey: testKey, Fsync: FsyncNone, MaxBytes: 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20000; i++ {
			w.Append("sanitize_end", benchFields(i)...)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(p), 0o700)
		if sub == "seed" {
			if err := toSeedLayout(src, p); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Rename(src, p); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Dir(src))
	}
}

// BenchmarkCheckKeys is Append's check of a typical record's keys, on the
// caller's path of every Append.
func BenchmarkCheckKeys(b *testing.B) {
	fields := benchFields(0)
	for i := 0; i < b.N; i++ {
		if err := checkKeys("sanitize_end", fields); err != nil {
			b.Fatal(err)
		}
	}
}
