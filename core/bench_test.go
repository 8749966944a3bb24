package core

import (
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/kvhygiene/kvhygiene/forensic"
	"github.com/stretchr/testify/require"
)

// BenchmarkLifecycle4KiB: allocate a caller region, mark in use, sanitize
// (full verify), free — logging on, fsync interval (the default policy).
func BenchmarkLifecycle4KiB(b *testing.B) {
	for _, c := range []struct {
		name   string
		verify VerifyMode
	}{{"full", VerifyFull}, {"sampled", VerifySampled}} {
		b.Run(c.name, func(b *testing.B) {
			tr, _ := newTracer(b, func(cfg *Config) { cfg.FsyncPolicy = FsyncInterval })
			mem := region(b, 4096, 1)
			d := desc(mem)
			o := SanitizeOpts{Verify: c.verify}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.SetBytes(4096)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				h, err := tr.Allocate(d)
				if err != nil {
					b.Fatal(err)
				}
				if err := tr.MarkInUse(h, ""); err != nil {
					b.Fatal(err)
				}
				if _, err := tr.Sanitize(h, o); err != nil {
					b.Fatal(err)
				}
				if err := tr.Free(h); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "median-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			require.NoError(b, tr.Flush())
		})
	}
}

// BenchmarkParallelLifecycle4KiB runs the lifecycle from GOMAXPROCS goroutines.
func BenchmarkParallelLifecycle4KiB(b *testing.B) {
	tr, _ := newTracer(b, func(cfg *Config) { cfg.FsyncPolicy = FsyncInterval })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mem := region(b, 4096, 1)
		d := desc(mem)
		for pb.Next() {
			h, _ := tr.Allocate(d)
			_ = tr.MarkInUse(h, "")
			_, _ = tr.Sanitize(h, SanitizeOpts{})
			if err := tr.Free(h); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// liveBufferBytes measures heap bytes per live buffer with n buffers.
func liveBufferBytes(tb testing.TB, n int) float64 {
	tr, _ := newTracer(tb, nil)
	mem := region(tb, 64, 1)
	hs := make([]Handle, 0, n)
	// warm up shared structures (intern table, writer buffers)
	d := AllocDesc{Ptr: addr(mem), NBytes: 64, Tenant: "tenant-0", Model: "llama-3-8b"}
	d.Request = "warmup"
	h, err := tr.Allocate(d)
	require.NoError(tb, err)
	// The forensic writer keeps its queue capacity (bounded, not per
	// buffer): grow it to the same high-water mark before measuring.
	fs := make([]forensic.Field, 16)
	for i := range fs {
		fs[i] = fieldKV("k"+itoa(i), uint64(i))
	}
	// Flushing every 256 records keeps the writer's queue high-water mark
	// small, so its retained capacity does not depend on n.
	for i := 0; i < 4096; i++ {
		require.NoError(tb, tr.w.Append("warmup", fs...))
		if i%256 == 255 {
			require.NoError(tb, tr.Flush())
		}
	}
	require.NoError(tb, tr.Flush())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		d.Tenant = "tenant-" + string(rune('a'+i%8))
		d.Request = "req-" + itoa(i)
		h, err := tr.Allocate(d)
		require.NoError(tb, err)
		hs = append(hs, h)
		if i%256 == 255 {
			require.NoError(tb, tr.Flush())
		}
	}
	require.NoError(tb, tr.Flush())
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(hs)
	_ = h
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)-int64(cap(hs)*8)) / float64(n)
}

func itoa(i int) string {
	var b [20]byte
	p := len(b)
	for {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	return string(b[p:])
}

// BenchmarkLiveBufferMemory reports heap bytes per live buffer over 100k
// live buffers (registry slot + its strings).
func BenchmarkLiveBufferMemory(b *testing.B) {
	// measured once per run (b.Loop runs the function once): a plain
	// `go test -bench .` does not repeat the 100 000 allocations b.N times
	perBuffer := liveBufferBytes(b, 100_000)
	for b.Loop() {
	}
	b.ReportMetric(perBuffer, "bytes/buffer")
	b.ReportMetric(0, "ns/op") // the empty loop's time means nothing
}

// The per-live-buffer memory stays under 256 bytes.
func TestLiveBufferMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	got := liveBufferBytes(t, 20_000)
	t.Logf("%.1f bytes per live buffer", got)
	require.Less(t, got, 256.0)
	require.Greater(t, got, float64(unsafeSizeofSlot()/2))
}
