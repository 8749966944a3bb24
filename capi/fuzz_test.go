package main

import (
	"math"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/core"
)

// argStatuses are the only statuses the argument layer may produce.
func argStatus(t *testing.T, err error) {
	t.Helper()
	switch st := core.StatusOf(err); st {
	case stInvalidArg, stNullArg, stInvalidID:
	default:
		t.Fatalf("argument error with status %s: %v", st, err)
	}
	if err.Error() == "" {
		t.Fatal("empty message")
	}
}

func FuzzIDArg(f *testing.F) {
	for _, s := range []string{"tenantA", "", "a\nb", `a"b`, "\xff", "t\u00e9nant", "\u2028", "\x7f", string(make([]byte, 300))} {
		f.Add(s, false)
	}
	f.Add("x", true)
	f.Fuzz(func(t *testing.T, s string, tooLong bool) {
		c := cstr{s: s, tooLong: tooLong}
		if tooLong {
			c.s = ""
		}
		got, err := idArg("tenant_id", c, true)
		if err != nil {
			if core.StatusOf(err) != stInvalidID {
				t.Fatalf("status %s for %q: %v", core.StatusOf(err), s, err)
			}
			return
		}
		// accepted: exactly what the header promises
		if tooLong || got != s || len(s) == 0 || len(s) > maxIDLen || !utf8.ValidString(s) {
			t.Fatalf("accepted %q (tooLong=%v)", s, tooLong)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '"' {
				t.Fatalf("accepted control/quote %U in %q", r, s)
			}
		}
	})
}

func FuzzBuildAlloc(f *testing.F) {
	f.Add(uint32(0), uint64(0x1000), uint64(4096), int32(0), int32(0), "tenantA", "r", "m", uint64(0), 0.0, int64(-1))
	f.Add(uint32(3), uint64(math.MaxUint64-5), uint64(10), int32(1), int32(2), "a\nb", "", "m", uint64(3), math.NaN(), int64(0))
	f.Add(uint32(0xff), uint64(0), uint64(0), int32(-7), int32(-1), "\xff", "r", "\"", uint64(100), math.Inf(1), int64(5))
	f.Fuzz(func(t *testing.T, flags uint32, ptr, nbytes uint64, device, ordinal int32, tenant, request, model string,
		shapeLen uint64, ttl float64, maxReuse int64) {
		a := allocArgs{flags: flags, ptr: ptr, nbytes: nbytes, device: device, ordinal: ordinal,
			tenant: cstr{s: tenant}, request: cstr{s: request}, model: cstr{s: model},
			framework: cstr{null: true}, dtype: cstr{null: true}, streamID: cstr{null: true},
			shapeNull: shapeLen%2 == 0, shapeLen: shapeLen, ttlSec: ttl, maxReuse: maxReuse}
		if !a.shapeNull && shapeLen <= maxShape {
			a.shape = make([]int64, shapeLen)
		}
		d, err := buildAlloc(a)
		if err != nil {
			argStatus(t, err)
			return
		}
		if d.Ptr > math.MaxUint64-d.NBytes {
			t.Fatalf("accepted overflowing range %#x+%d", d.Ptr, d.NBytes)
		}
		if (d.Device != core.DeviceCPU && d.Device != core.DeviceCUDA) || d.Ordinal < 0 ||
			(d.Device == core.DeviceCPU && d.Ordinal != 0) {
			t.Fatalf("accepted device %d ordinal %d", d.Device, d.Ordinal)
		}
		if flags&^allocFlagsKnown != 0 || (d.HasTTL && math.IsNaN(d.TTLSec)) || len(d.Shape) > maxShape {
			t.Fatalf("accepted flags %#x ttl %v shape %d", flags, d.TTLSec, len(d.Shape))
		}
		for _, s := range []string{d.Tenant, d.Request, d.Model} {
			require.NoError(t, core.ValidateID("id", s))
		}
	})
}

func FuzzBuildSanitize(f *testing.F) {
	f.Add(uint32(0), int32(0), uint32(0), uint64(0))
	f.Add(uint32(6), int32(3), uint32(8), uint64(1))
	f.Add(uint32(0xffffffff), int32(-1), uint32(math.MaxUint32), uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, flags uint32, verify int32, samples uint32, stream uint64) {
		o, err := buildSanitize(sanitizeArgs{flags: flags, verify: verify, samples: samples, stream: stream})
		if err != nil {
			argStatus(t, err)
			return
		}
		if flags&^sanitizeFlagsKnown != 0 || flags&6 == 6 || verify < 0 || verify > 3 || o.Samples < 0 {
			t.Fatalf("accepted flags %#x verify %d samples %d", flags, verify, samples)
		}
		if o.Async != (flags&1 != 0) || o.UseStream != (flags&8 != 0) {
			t.Fatalf("flags %#x translated to %+v", flags, o)
		}
	})
}

func FuzzBuildPool(f *testing.F) {
	f.Add(int32(0), uint32(4), uint64(0x10000), uint64(256), uint64(256), uint64(0x20000), uint64(512), uint64(256))
	f.Add(int32(1), uint32(0), uint64(0), uint64(0), uint64(0), uint64(1), uint64(1), uint64(1))
	f.Add(int32(0), uint32(math.MaxUint32), uint64(math.MaxUint64-100), uint64(1), uint64(1), uint64(1), uint64(1<<63), uint64(1))
	f.Fuzz(func(t *testing.T, device int32, blocks uint32, b0, s0, n0, b1, s1, n1 uint64) {
		p := poolArgs{device: device, numBlocks: blocks, model: cstr{s: "m"}, name: cstr{null: true}, verify: 3,
			regions: []core.PoolRegion{{Base: b0, Stride: s0, BlockBytes: n0}, {Base: b1, Stride: s1, BlockBytes: n1}}}
		d, err := buildPool(p)
		if err != nil {
			argStatus(t, err)
			return
		}
		for i, r := range d.Regions {
			end, over := mulAdd(uint64(d.NumBlocks-1), r.Stride, r.BlockBytes)
			if over || r.Base > math.MaxUint64-end || r.BlockBytes == 0 || d.NumBlocks == 0 {
				t.Fatalf("accepted region %d %+v with %d blocks", i, r, d.NumBlocks)
			}
		}
	})
}

// FuzzAllocateLifecycle drives the same path as kvh_allocate and the rest of
// the lifecycle through a real tracer: any descriptor the argument layer
// accepts (library-owned memory, so no caller address is ever written) must
// be handled by core without a panic, and a successful allocation must go
// through sanitize and free.
func FuzzAllocateLifecycle(f *testing.F) {
	f.Add(uint32(2), uint64(4096), "tenantA", "req", "model", int64(-1), "tenantA")
	f.Add(uint32(0), uint64(0), "t", "r", "m", int64(0), "")
	f.Add(uint32(1), uint64(1), "t\u00e9", "r", "m", int64(3), "other")
	f.Add(uint32(4), uint64(70000), "a\"b", "r", "m", int64(1), "x\n")
	cfg := core.DefaultConfig()
	cfg.LogPath = filepath.Join(f.TempDir(), "fuzz.log")
	cfg.FsyncPolicy = core.FsyncNone
	cfg.SweepIntervalMS = 0
	tr, err := core.Open(cfg)
	require.NoError(f, err)
	f.Cleanup(func() { _ = tr.Close() })
	f.Fuzz(func(t *testing.T, flags uint32, nbytes uint64, tenant, request, model string, maxReuse int64, user string) {
		a := allocArgs{flags: flags, nbytes: nbytes % (1 << 17), tenant: cstr{s: tenant}, request: cstr{s: request},
			model: cstr{s: model}, framework: cstr{null: true}, dtype: cstr{null: true}, streamID: cstr{null: true}, shapeNull: true,
			ttlSec: 3600, maxReuse: maxReuse}
		d, err := buildAlloc(a)
		if err != nil {
			argStatus(t, err)
			return
		}
		h, err := tr.Allocate(d)
		if err != nil {
			t.Fatalf("Allocate of a validated descriptor %+v: %v", d, err)
		}
		ten, idErr := idArg("tenant_id", cstr{s: user}, false)
		if idErr != nil {
			argStatus(t, idErr)
			ten = ""
		}
		useErr := tr.MarkInUse(h, ten)
		if ten != "" && ten != tenant && core.StatusOf(useErr) != core.StatusIsolation {
			t.Fatalf("tenant %q used buffer of %q: %v", ten, tenant, useErr)
		}
		cov, err := tr.Sanitize(h, core.SanitizeOpts{Verify: core.VerifyFull})
		require.NoError(t, err)
		require.Equal(t, 100.0, cov)
		if useErr != nil {
			require.Equal(t, core.StatusQuarantined, core.StatusOf(tr.Free(h)))
			require.NoError(t, tr.ReleaseQuarantine(h, "fuzz"))
		}
		require.NoError(t, tr.Free(h))
		require.Equal(t, core.StatusFreed, core.StatusOf(tr.Free(h)))
	})
}
