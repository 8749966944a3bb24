package main

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/core"
)

func id(s string) cstr { return cstr{s: s} }

func goodAlloc() allocArgs {
	return allocArgs{ptr: 0x1000, nbytes: 4096, tenant: id("tenantA"), request: id("r1"), model: id("m"),
		framework: cstr{null: true}, dtype: cstr{null: true}, streamID: cstr{null: true}, shapeNull: true}
}

func TestBuildAlloc(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*allocArgs)
		want   core.Status
		inMsg  string
	}{
		{"ok", func(*allocArgs) {}, stOK, ""},
		{"overflow", func(a *allocArgs) { a.ptr, a.nbytes = math.MaxUint64-10, 100 }, stInvalidArg, "overflows"},
		{"max without overflow", func(a *allocArgs) { a.ptr, a.nbytes = math.MaxUint64-100, 100 }, stOK, ""},
		{"unknown flags", func(a *allocArgs) { a.flags = 0x100 }, stInvalidArg, "flags"},
		{"unknown device", func(a *allocArgs) { a.device = 2 }, stInvalidArg, "device"},
		{"negative device", func(a *allocArgs) { a.device = -1 }, stInvalidArg, "device"},
		{"cpu ordinal", func(a *allocArgs) { a.ordinal = 1 }, stInvalidArg, "device_ordinal"},
		{"cuda negative ordinal", func(a *allocArgs) { a.device, a.ordinal = 1, -1 }, stInvalidArg, "device_ordinal"},
		{"cuda ptr 0", func(a *allocArgs) { a.device, a.ptr = 1, 0 }, stInvalidArg, "ptr"},
		{"tenant NULL", func(a *allocArgs) { a.tenant = cstr{null: true} }, stNullArg, "tenant_id"},
		{"request NULL", func(a *allocArgs) { a.request = cstr{null: true} }, stNullArg, "request_id"},
		{"model NULL", func(a *allocArgs) { a.model = cstr{null: true} }, stNullArg, "model_id"},
		{"tenant too long", func(a *allocArgs) { a.tenant = cstr{tooLong: true} }, stInvalidID, "tenant_id"},
		{"tenant newline", func(a *allocArgs) { a.tenant = id("a\nb") }, stInvalidID, "tenant_id"},
		{"tenant quote", func(a *allocArgs) { a.tenant = id(`a"b`) }, stInvalidID, "tenant_id"},
		{"tenant not utf8", func(a *allocArgs) { a.tenant = id("\xff") }, stInvalidID, "tenant_id"},
		{"tenant 257", func(a *allocArgs) { a.tenant = id(strings.Repeat("x", 257)) }, stInvalidID, "tenant_id"},
		{"tenant 256", func(a *allocArgs) { a.tenant = id(strings.Repeat("x", 256)) }, stOK, ""},
		{"dtype bad", func(a *allocArgs) { a.dtype = id("f\x01") }, stInvalidID, "dtype"},
		{"shape NULL with len", func(a *allocArgs) { a.shapeLen = 2 }, stNullArg, "shape"},
		{"shape too long", func(a *allocArgs) { a.shapeNull, a.shapeLen = false, 65 }, stInvalidArg, "shape_len"},
		{"shape negative", func(a *allocArgs) { a.shapeNull, a.shapeLen, a.shape = false, 1, []int64{-1} }, stInvalidArg, "shape[0]"},
		{"ttl NaN", func(a *allocArgs) { a.flags, a.ttlSec = 0x1, math.NaN() }, stInvalidArg, "ttl_sec"},
		{"ttl NaN ignored without flag", func(a *allocArgs) { a.ttlSec = math.NaN() }, stOK, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := goodAlloc()
			c.mutate(&a)
			d, err := buildAlloc(a)
			assert.Equal(t, c.want, core.StatusOf(err), "err: %v", err)
			if c.want != stOK {
				assert.Contains(t, err.Error(), c.inMsg)
				return
			}
			assert.Equal(t, a.ptr, d.Ptr)
			assert.Equal(t, a.nbytes, d.NBytes)
			assert.Equal(t, a.tenant.s, d.Tenant)
		})
	}
}

func TestBuildAllocFlags(t *testing.T) {
	a := goodAlloc()
	a.flags = 0x1 | 0x2 | 0x4
	a.ttlSec, a.maxReuse = 2.5, 7
	a.shapeNull, a.shapeLen, a.shape = false, 2, []int64{4, 1024}
	a.framework, a.dtype = id("torch"), id("float16")
	d, err := buildAlloc(a)
	require.NoError(t, err)
	assert.True(t, d.HasTTL && d.HasMaxReuse && d.Pinned)
	assert.Equal(t, 2.5, d.TTLSec)
	assert.Equal(t, int64(7), d.MaxReuse)
	assert.Equal(t, []int64{4, 1024}, d.Shape)
	assert.Equal(t, "torch", d.Framework)
	assert.Equal(t, "float16", d.DType)
}

func TestBuildSanitize(t *testing.T) {
	o, err := buildSanitize(sanitizeArgs{})
	require.NoError(t, err)
	assert.Equal(t, core.SanitizeOpts{}, o)

	o, err = buildSanitize(sanitizeArgs{flags: 0x1 | 0x2 | 0x8, verify: 2, samples: 32, stream: 9})
	require.NoError(t, err)
	assert.Equal(t, core.SanitizeOpts{Async: true, DoublePass: 1, UseStream: true, Stream: 9, Verify: core.VerifySampled, Samples: 32}, o)

	o, err = buildSanitize(sanitizeArgs{flags: 0x4, verify: 3})
	require.NoError(t, err)
	assert.Equal(t, -1, o.DoublePass)
	assert.Equal(t, core.VerifyFull, o.Verify)

	for _, bad := range []sanitizeArgs{{flags: 0x6}, {flags: 0x10}, {verify: 4}, {verify: -1}, {samples: math.MaxUint32}} {
		_, err := buildSanitize(bad)
		assert.Equal(t, stInvalidArg, core.StatusOf(err), "%+v: %v", bad, err)
	}
}

func goodPool() poolArgs {
	return poolArgs{numBlocks: 4, model: id("m"), name: cstr{null: true}, verify: 3,
		regions: []core.PoolRegion{{Base: 0x10000, Stride: 256, BlockBytes: 256}, {Base: 0x20000, Stride: 512, BlockBytes: 256}}}
}

func TestBuildPool(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*poolArgs)
		want   core.Status
	}{
		{"ok", func(*poolArgs) {}, stOK},
		{"no blocks", func(p *poolArgs) { p.numBlocks = 0 }, stInvalidArg},
		{"no regions", func(p *poolArgs) { p.regions = nil }, stInvalidArg},
		{"zero block bytes", func(p *poolArgs) { p.regions[0].BlockBytes = 0 }, stInvalidArg},
		{"zero base", func(p *poolArgs) { p.regions[1].Base = 0 }, stInvalidArg},
		{"stride < block", func(p *poolArgs) { p.regions[0].Stride = 128 }, stInvalidArg},
		{"one block any stride", func(p *poolArgs) { p.numBlocks, p.regions[0].Stride = 1, 0 }, stOK},
		{"overflow", func(p *poolArgs) { p.regions[0].Base = math.MaxUint64 - 1000 }, stInvalidArg},
		{"stride overflow", func(p *poolArgs) { p.regions[0].Stride = math.MaxUint64 / 2 }, stInvalidArg},
		{"device", func(p *poolArgs) { p.device = 5 }, stInvalidArg},
		{"verify", func(p *poolArgs) { p.verify = 9 }, stInvalidArg},
		{"model NULL", func(p *poolArgs) { p.model = cstr{null: true} }, stNullArg},
		{"model bad", func(p *poolArgs) { p.model = id("a\"") }, stInvalidID},
		{"name bad", func(p *poolArgs) { p.name = id("\n") }, stInvalidID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := goodPool()
			c.mutate(&p)
			d, err := buildPool(p)
			assert.Equal(t, c.want, core.StatusOf(err), "err: %v", err)
			if c.want == stOK {
				assert.Equal(t, p.regions, d.Regions)
				assert.Equal(t, p.numBlocks, d.NumBlocks)
			}
		})
	}
}

func TestSmallArgs(t *testing.T) {
	_, err := idArg("x", cstr{null: true}, false)
	assert.NoError(t, err)
	_, err = idArg("reason", cstr{null: true}, true)
	assert.Equal(t, stNullArg, core.StatusOf(err))
	assert.Contains(t, err.Error(), "reason is NULL")

	_, err = pathArg("path", cstr{null: true})
	assert.Equal(t, stNullArg, core.StatusOf(err))
	_, err = pathArg("path", cstr{tooLong: true})
	assert.Equal(t, stInvalidArg, core.StatusOf(err))
	_, err = pathArg("path", id(""))
	assert.Equal(t, stInvalidArg, core.StatusOf(err))
	p, err := optPathArg("dir", id(""))
	assert.NoError(t, err)
	assert.Equal(t, "", p)

	assert.Equal(t, stUnknownHandle, core.StatusOf(handleArg("handle", 0)))
	assert.NoError(t, handleArg("handle", 1))

	assert.Equal(t, stNullArg, core.StatusOf(countArg("blocks", true, 1, 10)))
	assert.Equal(t, stInvalidArg, core.StatusOf(countArg("blocks", false, 11, 10)))
	assert.NoError(t, countArg("blocks", true, 0, 10))

	v, over := mulAdd(3, 4, 5)
	assert.Equal(t, uint64(17), v)
	assert.False(t, over)
	_, over = mulAdd(math.MaxUint64/2, 3, 0)
	assert.True(t, over)
	_, over = mulAdd(1, math.MaxUint64, 1)
	assert.True(t, over)

	for in, want := range map[string]string{":9100": "127.0.0.1:9100", "0.0.0.0:1": "0.0.0.0:1"} {
		got, err := serveAddr(id(in))
		assert.NoError(t, err)
		assert.Equal(t, want, got)
	}
	got, err := serveAddr(cstr{null: true})
	assert.NoError(t, err)
	assert.Equal(t, "127.0.0.1:0", got)
	for _, bad := range []string{"", "a b", "http://x:1"} {
		_, err := serveAddr(id(bad))
		assert.Equal(t, stInvalidArg, core.StatusOf(err), bad)
	}
}
