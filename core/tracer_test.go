package core

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// The status values must equal the header's kvh_status values.
func TestStatusValuesMatchHeader(t *testing.T) {
	h, err := os.ReadFile("../include/kvhygiene.h")
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^\s*(KVH_(?:OK|E_[A-Z_]+))\s*=\s*(\d+)`)
	ms := re.FindAllStringSubmatch(string(h), -1)
	require.Len(t, ms, len(statusNames))
	for _, m := range ms {
		v, _ := strconv.Atoi(m[2])
		require.Equal(t, m[1], Status(v).String())
	}
	require.Equal(t, "KVH_E_UNKNOWN", Status(99).String())
	require.Equal(t, StatusInternal, StatusOf(errors.New("x")))
	require.Equal(t, StatusOK, StatusOf(nil))
	require.Equal(t, StatusFreed, StatusOf(fmt.Errorf("wrap: %w", &Error{Code: StatusFreed})))
	for _, c := range []struct {
		name string
		v    any
		want int
	}{{"state in_use", int(StateInUse), 2}, {"quarantined", int(StateQuarantined), 6}, {"verify full", int(VerifyFull), 3}, {"cuda", int(DeviceCUDA), 1}, {"ttl last use", int(TTLFromLastUse), 1}} {
		require.Equal(t, c.want, c.v, c.name)
	}
}

func TestLifecycleRecords(t *testing.T) {
	tr, path := newTracer(t, nil)
	mem := region(t, 4096, 0xAB)
	d := desc(mem)
	d.Shape, d.DType = []int64{64, 32}, "float16"
	h, err := tr.Allocate(d)
	require.NoError(t, err)
	require.NoError(t, tr.Bind(h, "tenant-a", "stream-1"))
	require.NoError(t, tr.MarkInUse(h, "tenant-a"))
	info, err := tr.Info(h)
	require.NoError(t, err)
	require.Equal(t, StateInUse, info.State)
	cov, err := tr.Sanitize(h, SanitizeOpts{})
	require.NoError(t, err)
	require.Equal(t, 100.0, cov)
	require.True(t, allZero(mem))
	c2, err := tr.AttestCoverage(h)
	require.NoError(t, err)
	require.Equal(t, 100.0, c2)
	require.NoError(t, tr.Free(h))
	requireStatus(t, StatusFreed, tr.Free(h))

	rs := readLog(t, tr, path)
	require.Equal(t, []string{"allocate", "bind", "write", "sanitize_start", "sanitize_end", "free"}, events(rs))
	a := rs[0]
	require.Equal(t, h.String(), a["handle"])
	for k, v := range map[string]any{"tenant_id": "tenant-a", "request_id": "req-1", "model_id": "llama-3-8b",
		"device": "cpu", "dtype": "float16", "nbytes": 4096.0, "ptr": float64(addr(mem)), "pinned": false,
		"ttl_sec": nil, "max_reuse": 0.0, "stream_id": nil} {
		require.Contains(t, a, k)
		require.Equal(t, v, a[k], k)
	}
	require.Equal(t, []any{64.0, 32.0}, a["shape"])
	require.Equal(t, "stream-1", rs[1]["stream_id"])
	require.Equal(t, "stream-1", rs[3]["stream_id"])
	// a stream label given at allocation is recorded there, as the seed does
	d.StreamID = "stream-0"
	h2, err := tr.Allocate(d)
	require.NoError(t, err)
	rs2 := forHandle(readLog(t, tr, path), h2)
	require.Equal(t, "stream-0", rs2[0]["stream_id"])
	end := rs[4]
	require.Equal(t, 100.0, end["coverage_pct"])
	require.Contains(t, end, "duration_ms")
	require.Equal(t, []any{}, end["verify_samples"])
	for _, r := range rs {
		for _, k := range []string{"handle", "tenant_id", "request_id", "model_id"} {
			require.Contains(t, r, k, r["event_type"])
		}
	}
}

func TestHandles(t *testing.T) {
	tr, _ := newTracer(t, nil)
	other, _ := newTracer(t, nil)
	mem := region(t, 64, 1)
	h, err := tr.Allocate(desc(mem))
	require.NoError(t, err)
	ho, err := other.Allocate(desc(mem))
	require.NoError(t, err)

	requireStatus(t, StatusUnknownHandle, tr.MarkInUse(0, ""))
	requireStatus(t, StatusUnknownHandle, tr.MarkInUse(ho, ""))
	requireStatus(t, StatusUnknownHandle, tr.MarkInUse(makeHandle(tr.tag, h.gen()+1, h.idx()), ""))
	requireStatus(t, StatusUnknownHandle, tr.MarkInUse(makeHandle(tr.tag, 1, 5000), ""))
	requireStatus(t, StatusUnknownHandle, tr.MarkInUse(makeHandle(tr.tag, 1, 1<<27), ""))

	_, err = tr.Sanitize(h, SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h))
	// the slot is reused with a new generation: the old handle stays freed
	h2, err := tr.Allocate(desc(mem))
	require.NoError(t, err)
	require.Equal(t, h.idx(), h2.idx())
	require.NotEqual(t, h, h2)
	for _, err := range []error{tr.MarkInUse(h, ""), tr.Bind(h, "", ""), tr.Free(h), tr.Quarantine(h, "x")} {
		requireStatus(t, StatusFreed, err)
	}
	_, err = tr.Info(h)
	requireStatus(t, StatusFreed, err)
	require.NoError(t, tr.MarkInUse(h2, ""))
}

// Table test of the state machine: each case is a sequence of operations
// with the status expected from each.
func TestStateMachine(t *testing.T) {
	type step struct {
		op   string
		want Status
	}
	cases := []struct {
		name  string
		steps []step
		final State
	}{
		{"free without sanitize quarantines", []step{{"free", StatusCoverage}, {"free", StatusQuarantined}}, StateQuarantined},
		{"free after use without sanitize", []step{{"use", StatusOK}, {"free", StatusCoverage}}, StateQuarantined},
		{"sanitize none does not attest", []step{{"sanitize_none", StatusOK}, {"free", StatusCoverage}}, StateQuarantined},
		{"sanitized then used again must re-sanitize", []step{{"sanitize", StatusOK}, {"use", StatusOK}, {"free", StatusCoverage}}, StateQuarantined},
		{"bind from sanitized", []step{{"sanitize", StatusOK}, {"bind", StatusOK}}, StateBound},
		{"double sanitize then free", []step{{"sanitize", StatusOK}, {"sanitize_sampled", StatusOK}, {"free", StatusOK}, {"free", StatusFreed}, {"use", StatusFreed}}, StateFreed},
		{"quarantine is sticky", []step{{"quarantine", StatusOK}, {"use", StatusQuarantined}, {"bind", StatusQuarantined}, {"reuse", StatusQuarantined}, {"free", StatusQuarantined}, {"release", StatusState}}, StateQuarantined},
		{"release needs verified sanitize", []step{{"quarantine", StatusOK}, {"sanitize_none", StatusOK}, {"release", StatusState}, {"sanitize", StatusOK}, {"release", StatusOK}, {"free", StatusOK}}, StateFreed},
		{"sanitize before quarantine does not count", []step{{"sanitize", StatusOK}, {"quarantine", StatusOK}, {"release", StatusState}}, StateQuarantined},
		{"release of non-quarantined", []step{{"release", StatusState}}, StateAllocated},
		{"verification failure", []step{{"sanitize_dirty", StatusVerify}, {"free", StatusQuarantined}, {"release", StatusState}, {"sanitize", StatusOK}, {"release", StatusOK}, {"free", StatusOK}}, StateFreed},
		{"sampled verification failure", []step{{"sanitize_dirty_sampled", StatusVerify}}, StateQuarantined},
		{"wait without pending", []step{{"sanitize", StatusOK}, {"wait", StatusOK}}, StateSanitized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, _ := newTracer(t, nil)
			mem := region(t, 8192, 7)
			h, err := tr.Allocate(desc(mem))
			require.NoError(t, err)
			var last State = StateFreed
			for i, s := range c.steps {
				var err error
				switch s.op {
				case "use":
					err = tr.MarkInUse(h, "")
				case "bind":
					err = tr.Bind(h, "", "")
				case "reuse":
					err = tr.MarkReuse(h, "")
				case "sanitize":
					_, err = tr.Sanitize(h, SanitizeOpts{Verify: VerifyFull})
				case "sanitize_sampled":
					_, err = tr.Sanitize(h, SanitizeOpts{Verify: VerifySampled, Samples: 16})
				case "sanitize_none":
					_, err = tr.Sanitize(h, SanitizeOpts{Verify: VerifyNone})
				case "sanitize_dirty", "sanitize_dirty_sampled":
					testHookAfterZero = func(b []byte) {
						for i := range b {
							b[i] = 0xFF
						}
					}
					mode := VerifyFull
					if s.op == "sanitize_dirty_sampled" {
						mode = VerifySampled
					}
					var cov float64
					cov, err = tr.Sanitize(h, SanitizeOpts{Verify: mode})
					testHookAfterZero = nil
					require.Equal(t, 0.0, cov)
				case "quarantine":
					err = tr.Quarantine(h, "operator")
				case "release":
					err = tr.ReleaseQuarantine(h, "verified clean")
				case "free":
					err = tr.Free(h)
				case "wait":
					var cov float64
					cov, err = tr.Wait(h)
					require.Equal(t, 100.0, cov)
				}
				requireStatus(t, s.want, err)
				require.NotEmpty(t, fmt.Sprint(err), "step %d", i)
			}
			info, err := tr.Info(h)
			if c.final == StateFreed {
				requireStatus(t, StatusFreed, err)
			} else {
				require.NoError(t, err)
				last = info.State
				require.Equal(t, c.final, last)
			}
		})
	}
}

func TestPolicies(t *testing.T) {
	t.Run("ttl zero violates on first use", func(t *testing.T) {
		tr, path := newTracer(t, nil)
		mem := region(t, 64, 1)
		d := desc(mem)
		d.HasTTL, d.TTLSec = true, 0
		h, err := tr.Allocate(d)
		require.NoError(t, err)
		require.NoError(t, tr.Bind(h, "", "")) // binding is not a use
		requireStatus(t, StatusPolicy, tr.MarkInUse(h, ""))
		requireStatus(t, StatusPolicy, tr.MarkInUse(h, "")) // still a TTL violation
		rs := forHandle(readLog(t, tr, path), h)
		require.Equal(t, "quarantine", rs[len(rs)-1]["event_type"])
		require.Equal(t, "ttl_expired", rs[len(rs)-1]["reason"])
		require.Equal(t, 0.0, rs[0]["ttl_sec"])
	})
	t.Run("default ttl from config, from last use", func(t *testing.T) {
		tr, _ := newTracer(t, func(c *Config) { c.HasDefaultTTL, c.DefaultTTLSec, c.TTLMode = true, 3600, TTLFromLastUse })
		mem := region(t, 64, 1)
		h, err := tr.Allocate(desc(mem))
		require.NoError(t, err)
		require.NoError(t, tr.MarkInUse(h, ""))
		// age the buffer: move its TTL base into the past
		s := tr.reg.slotAt(h.idx())
		s.mu.Lock()
		require.Equal(t, int64(3600e9), s.ttl)
		s.ttlBase -= 3599e9
		s.mu.Unlock()
		require.NoError(t, tr.MarkInUse(h, "")) // refreshes the base (last-use mode)
		s.mu.Lock()
		s.ttlBase -= 3601e9
		s.mu.Unlock()
		requireStatus(t, StatusPolicy, tr.MarkReuse(h, ""))
	})
	t.Run("ttl from alloc is not refreshed by use", func(t *testing.T) {
		tr, _ := newTracer(t, func(c *Config) { c.HasDefaultTTL, c.DefaultTTLSec = true, 3600 })
		mem := region(t, 64, 1)
		h, err := tr.Allocate(desc(mem))
		require.NoError(t, err)
		s := tr.reg.slotAt(h.idx())
		s.mu.Lock()
		s.ttlBase -= 3599e9
		s.mu.Unlock()
		require.NoError(t, tr.MarkInUse(h, ""))
		s.mu.Lock()
		s.ttlBase -= 2e9
		s.mu.Unlock()
		requireStatus(t, StatusPolicy, tr.MarkInUse(h, ""))
	})
	for _, c := range []struct {
		name     string
		maxReuse int64
		has      bool
		ok       int
	}{{"default 0: first reuse violates", 0, false, 0}, {"max 2", 2, true, 2}, {"unlimited", -1, true, 50}} {
		t.Run("reuse "+c.name, func(t *testing.T) {
			tr, path := newTracer(t, nil)
			mem := region(t, 64, 1)
			d := desc(mem)
			d.HasMaxReuse, d.MaxReuse = c.has, c.maxReuse
			h, err := tr.Allocate(d)
			require.NoError(t, err)
			for i := 0; i < c.ok; i++ {
				require.NoError(t, tr.MarkReuse(h, "tenant-a"))
			}
			if c.maxReuse >= 0 {
				requireStatus(t, StatusPolicy, tr.MarkReuse(h, ""))
				rs := forHandle(readLog(t, tr, path), h)
				last, prev := rs[len(rs)-1], rs[len(rs)-2]
				require.Equal(t, "reuse_limit_exceeded", last["reason"])
				require.Equal(t, "reuse", prev["event_type"])
				require.Equal(t, float64(c.ok+1), prev["reuse_count"])
				require.Equal(t, float64(c.maxReuse), prev["max_reuse"])
			}
			info, err := tr.Info(h)
			require.NoError(t, err)
			require.Equal(t, int64(c.ok+map[bool]int{true: 1, false: 0}[c.maxReuse >= 0]), info.ReuseCount)
		})
	}
	for _, op := range []string{"bind", "mark_in_use", "mark_reuse"} {
		t.Run("isolation on "+op, func(t *testing.T) {
			tr, path := newTracer(t, nil)
			mem := region(t, 64, 1)
			h, err := tr.Allocate(desc(mem))
			require.NoError(t, err)
			var e error
			switch op {
			case "bind":
				e = tr.Bind(h, "tenant-b", "")
			case "mark_in_use":
				e = tr.MarkInUse(h, "tenant-b")
			default:
				e = tr.MarkReuse(h, "tenant-b")
			}
			requireStatus(t, StatusIsolation, e)
			require.Contains(t, e.Error(), "tenant-b")
			info, _ := tr.Info(h)
			require.Equal(t, StateQuarantined, info.State)
			rs := forHandle(readLog(t, tr, path), h)
			require.Equal(t, []string{"allocate", "isolation_violation", "quarantine"}, events(rs))
			require.Equal(t, "tenant-b", rs[1]["attacker_tenant"])
			require.Equal(t, "tenant-a", rs[1]["target_tenant"])
			require.Equal(t, op, rs[1]["operation"])
		})
	}
}

func TestZeroLength(t *testing.T) {
	tr, _ := newTracer(t, nil)
	h, err := tr.Allocate(AllocDesc{Tenant: "t", Request: "r", Model: "m"}) // library-owned, 0 bytes
	require.NoError(t, err)
	requireStatus(t, StatusCoverage, tr.Free(h))
	h, err = tr.Allocate(AllocDesc{Ptr: 4096, Tenant: "t", Request: "r", Model: "m"})
	require.NoError(t, err)
	for _, v := range []VerifyMode{VerifyNone, VerifySampled, VerifyFull} {
		cov, err := tr.Sanitize(h, SanitizeOpts{Verify: v})
		require.NoError(t, err)
		require.Equal(t, 100.0, cov)
	}
	require.NoError(t, tr.Free(h))
}

func TestSampledVerification(t *testing.T) {
	tr, path := newTracer(t, nil)
	mem := region(t, 1<<16, 3)
	h, err := tr.Allocate(desc(mem))
	require.NoError(t, err)
	_, err = tr.Sanitize(h, SanitizeOpts{Verify: VerifySampled, Samples: 12})
	require.NoError(t, err)
	_, err = tr.Sanitize(h, SanitizeOpts{Verify: VerifySampled, Samples: 12})
	require.NoError(t, err)
	rs := forHandle(readLog(t, tr, path), h)
	var ends []record
	for _, r := range rs {
		if r["event_type"] == "sanitize_end" {
			ends = append(ends, r)
		}
	}
	require.Len(t, ends, 2)
	// positions differ between sanitizes and across tracers (secret key)
	require.Len(t, ends[0]["verify_samples"], 12)
	require.NotEqual(t, ends[0]["verify_samples"], ends[1]["verify_samples"])
	require.Equal(t, "sampled", ends[0]["verify"])
	for _, p := range ends[0]["verify_samples"].([]any) {
		require.Less(t, p.(float64), float64(len(mem)))
	}
}

func TestBadInputs(t *testing.T) {
	tr, _ := newTracer(t, nil)
	mem := region(t, 64, 1)
	for _, c := range []struct {
		name string
		mut  func(*AllocDesc)
		want Status
	}{
		{"empty tenant", func(d *AllocDesc) { d.Tenant = "" }, StatusInvalidID},
		{"quote in request", func(d *AllocDesc) { d.Request = `a"b` }, StatusInvalidID},
		{"newline in model", func(d *AllocDesc) { d.Model = "a\nb" }, StatusInvalidID},
		{"bad utf8", func(d *AllocDesc) { d.Tenant = "\xff" }, StatusInvalidID},
		{"too long", func(d *AllocDesc) { d.Tenant = string(make([]byte, 257)) }, StatusInvalidID},
		{"overflow", func(d *AllocDesc) { d.Ptr, d.NBytes = ^uint64(0)-10, 100 }, StatusInvalidArg},
		{"bad device", func(d *AllocDesc) { d.Device = 7 }, StatusInvalidArg},
		{"cpu ordinal", func(d *AllocDesc) { d.Ordinal = 1 }, StatusInvalidArg},
		{"negative shape", func(d *AllocDesc) { d.Shape = []int64{-1} }, StatusInvalidArg},
		{"nan ttl", func(d *AllocDesc) { d.HasTTL, d.TTLSec = true, nan() }, StatusInvalidArg},
		{"cuda ptr 0", func(d *AllocDesc) { d.Device, d.Ptr = DeviceCUDA, 0 }, StatusInvalidArg},
		{"quote in stream_id", func(d *AllocDesc) { d.StreamID = `s"1` }, StatusInvalidID},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := desc(mem)
			c.mut(&d)
			_, err := tr.Allocate(d)
			requireStatus(t, c.want, err)
		})
	}
	h, err := tr.Allocate(desc(mem))
	require.NoError(t, err)
	_, err = tr.Sanitize(h, SanitizeOpts{Verify: 9})
	requireStatus(t, StatusInvalidArg, err)
	_, err = tr.Sanitize(h, SanitizeOpts{Samples: -1})
	requireStatus(t, StatusInvalidArg, err)
	requireStatus(t, StatusInvalidID, tr.Quarantine(h, ""))
	requireStatus(t, StatusInvalidID, tr.Bind(h, "a\x00b", ""))
	requireStatus(t, StatusInvalidArg, tr.SanitizeMany([]Handle{h, h}, SanitizeOpts{}, make([]float64, 1)))
	require.Equal(t, 0.0, mustInfo(t, tr, h).CoveragePct)
}

func nan() float64 { z := 0.0; return z / z }

func mustInfo(t *testing.T, tr *Tracer, h Handle) BufferInfo {
	t.Helper()
	i, err := tr.Info(h)
	require.NoError(t, err)
	return i
}

func TestSanitizeMany(t *testing.T) {
	tr, path := newTracer(t, nil)
	var hs []Handle
	var mems [][]byte
	for i := 0; i < 5; i++ {
		m := region(t, 1000+i, byte(i+1))
		mems = append(mems, m)
		h, err := tr.Allocate(desc(m))
		require.NoError(t, err)
		hs = append(hs, h)
	}
	requireStatus(t, StatusCoverage, tr.Free(hs[2])) // never sanitized -> quarantined
	out := make([]float64, len(hs)+1)
	bad := append(append([]Handle{}, hs...), 0)
	err := tr.SanitizeMany(bad, SanitizeOpts{}, out)
	requireStatus(t, StatusUnknownHandle, err)
	for i, m := range mems {
		require.True(t, allZero(m), i)
		require.Equal(t, 100.0, out[i])
	}
	require.Equal(t, 5, countEvents(readLog(t, tr, path))["sanitize_end"])
	// quarantined buffer sanitized inside the batch stays quarantined but may be released
	require.Equal(t, StateQuarantined, mustInfo(t, tr, hs[2]).State)
	require.NoError(t, tr.ReleaseQuarantine(hs[2], "batch-sanitized"))
}

func TestClose(t *testing.T) {
	tr, path := newTracer(t, nil)
	h, err := tr.Allocate(AllocDesc{NBytes: 5000, Tenant: "t", Request: "r", Model: "m"})
	require.NoError(t, err)
	require.NoError(t, tr.Close())
	requireStatus(t, StatusClosed, tr.Close())
	requireStatus(t, StatusClosed, tr.MarkInUse(h, ""))
	_, err = tr.Allocate(AllocDesc{NBytes: 5, Tenant: "t", Request: "r", Model: "m"})
	requireStatus(t, StatusClosed, err)
	_, err = tr.MetricsJSON()
	requireStatus(t, StatusClosed, err)
	require.Len(t, readLog(t, tr, path), 1)
	// the log is unlocked: a new tracer can open it and append
	cfg := DefaultConfig()
	cfg.LogPath, cfg.SweepIntervalMS = path, 0
	tr2, err := Open(cfg)
	require.NoError(t, err)
	_, err = tr2.Allocate(AllocDesc{Ptr: 1 << 20, Tenant: "t", Request: "r", Model: "m"})
	require.NoError(t, err)
	require.NoError(t, tr2.Close())
}

func TestSecondWriterRefused(t *testing.T) {
	_, path := newTracer(t, nil)
	cfg := DefaultConfig()
	cfg.LogPath = path
	_, err := Open(cfg)
	requireStatus(t, StatusLog, err)
}
