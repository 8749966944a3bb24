package core

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSweeperQuarantinesUntouched(t *testing.T) {
	tr, path := newTracer(t, func(c *Config) { c.SweepIntervalMS = 5 })
	mem := region(t, 64, 1)
	d := desc(mem)
	d.HasTTL, d.TTLSec = true, 0.02
	h, err := tr.Allocate(d)
	require.NoError(t, err)
	d.HasTTL, d.TTLSec = true, 3600
	long, err := tr.Allocate(d)
	require.NoError(t, err)
	d.TTLSec = 0 // <= 0: reported on first use, not by the sweeper
	zero, err := tr.Allocate(d)
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for mustInfo(t, tr, h).State != StateQuarantined {
		require.True(t, time.Now().Before(deadline), "sweeper did not quarantine the expired buffer")
		time.Sleep(5 * time.Millisecond)
	}
	require.Equal(t, StateAllocated, mustInfo(t, tr, long).State)
	require.Equal(t, StateAllocated, mustInfo(t, tr, zero).State)
	requireStatus(t, StatusPolicy, tr.MarkInUse(h, "")) // still reported as a TTL violation
	rs := forHandle(readLog(t, tr, path), h)
	require.Equal(t, []string{"allocate", "quarantine"}, events(rs))
	require.Equal(t, "ttl_expired", rs[1]["reason"])
}

func TestSweepOnceSkipsSanitized(t *testing.T) {
	tr, _ := newTracer(t, nil)
	mem := region(t, 64, 1)
	d := desc(mem)
	d.HasTTL, d.TTLSec = true, 1e-9
	h, err := tr.Allocate(d)
	require.NoError(t, err)
	_, err = tr.Sanitize(h, SanitizeOpts{})
	require.NoError(t, err)
	h2, err := tr.Allocate(d)
	require.NoError(t, err)
	time.Sleep(time.Millisecond)
	require.Equal(t, 1, tr.sweepOnce())
	require.Equal(t, StateSanitized, mustInfo(t, tr, h).State)
	require.Equal(t, StateQuarantined, mustInfo(t, tr, h2).State)
	require.NoError(t, tr.Free(h))
}

// 8 goroutines of mixed operations; afterwards every counter agrees with
// the (verified) log.
func TestStressCountersAgreeWithLog(t *testing.T) {
	tr, path := newTracer(t, func(c *Config) { c.FsyncPolicy = FsyncInterval; c.SweepIntervalMS = 2; c.MaxLogBytes = 1 << 20 })
	const workers, iters = 8, 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	var shared []Handle
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			mem := region(t, 4096, byte(w+1))
			tenant := []string{"tenant-a", "tenant-b"}[w%2]
			for i := 0; i < iters; i++ {
				d := AllocDesc{Ptr: addr(mem), NBytes: uint64(rng.IntN(4096)), Tenant: tenant, Request: "r", Model: "m",
					HasMaxReuse: true, MaxReuse: int64(rng.IntN(3)) - 1}
				if rng.IntN(4) == 0 {
					d.Ptr = 0 // library-owned
				}
				if rng.IntN(8) == 0 {
					d.HasTTL, d.TTLSec = true, 0.001
				}
				h, err := tr.Allocate(d)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				shared = append(shared, h)
				other := shared[rng.IntN(len(shared))]
				mu.Unlock()
				_ = tr.Bind(h, tenant, "s")
				_ = tr.MarkInUse(h, "")
				for k := rng.IntN(3); k > 0; k-- {
					_ = tr.MarkReuse(h, tenant)
				}
				switch rng.IntN(6) {
				case 0:
					_ = tr.Quarantine(h, "stress")
				case 1:
					_ = tr.MarkInUse(other, "tenant-c") // isolation (or freed / quarantined)
				case 2:
					_, _ = tr.Sanitize(other, SanitizeOpts{Verify: VerifySampled})
				}
				_, _ = tr.Sanitize(h, SanitizeOpts{Verify: VerifyMode(1 + rng.IntN(3))})
				if err := tr.Free(h); err != nil && StatusOf(err) == StatusQuarantined {
					if _, err := tr.Sanitize(h, SanitizeOpts{}); err == nil {
						_ = tr.ReleaseQuarantine(h, "stress-release")
						_ = tr.Free(h)
					}
				}
				_ = tr.Free(h) // double free: StatusFreed, nothing logged
				_ = tr.Free(other)
				if i%50 == 0 {
					_, _ = tr.MetricsJSON()
				}
			}
		}(w)
	}
	wg.Wait()
	s := tr.Snapshot()
	require.NoError(t, tr.Close())
	rs := readLog(t, tr, path)
	c := countEvents(rs)
	require.Equal(t, int(s.Allocations), c["allocate"])
	require.Equal(t, workers*iters, c["allocate"])
	require.Equal(t, int(s.FreedTotal), c["free"])
	require.Equal(t, int(s.ReuseTotal), c["reuse"])
	require.Equal(t, c["sanitize_start"], c["sanitize_end"])
	q := 0.0
	for _, r := range qReasonLabels[1:] {
		q += testCounterValue(t, tr, "kv_hygiene_quarantines_total", r)
	}
	require.Equal(t, float64(c["quarantine"]), q)
	require.Equal(t, float64(c["isolation_violation"]), testCounterValue(t, tr, "kv_hygiene_isolation_violations_total", ""))
	require.Greater(t, c["isolation_violation"], 0)
	require.Greater(t, c["release_quarantine"], 0)
	require.Greater(t, c["rotate"], 0)
	// each handle has exactly one allocate and at most one free, free last
	seen := map[string]string{}
	for _, r := range rs {
		h, ok := r["handle"].(string)
		if !ok {
			require.Equal(t, "rotate", r["event_type"])
			continue
		}
		require.NotEqual(t, "free", seen[h], "record after free for %s", h)
		seen[h] = r["event_type"].(string)
	}
	// live buffers: allocations - frees
	require.Equal(t, s.Allocations-s.FreedTotal, s.ActiveBuffers+s.QuarantineCount)
}

func testCounterValue(t *testing.T, tr *Tracer, name, reason string) float64 {
	t.Helper()
	mfs, err := tr.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
