package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/core"
)

// TestCheckRealTracerMetrics gates metrics exported by the real tracer
// (kvh_export_metrics): idle, clean, and with a quarantined buffer.
func TestCheckRealTracerMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := core.DefaultConfig()
	cfg.LogPath = filepath.Join(dir, "kv_cache.log")
	cfg.SweepIntervalMS = 0
	tr, err := core.Open(cfg)
	require.NoError(t, err)
	defer tr.Close()

	gate := func(name string) (int, map[string]any) {
		p := filepath.Join(dir, name+".json")
		require.NoError(t, tr.ExportMetrics(p))
		r := runKvgate(t, nil, "check", p, "--out", filepath.Join(dir, name+"-verdict.json"))
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), r.stderr)
		return r.code, v
	}

	code, v := gate("idle")
	assert.Equal(t, 0, code, "an idle tracer is not a failing gate")
	assert.Equal(t, true, v["idle"])

	alloc := func(req string) core.Handle {
		h, err := tr.Allocate(core.AllocDesc{NBytes: 8192, Device: core.DeviceCPU, Tenant: "t", Request: req, Model: "m"})
		require.NoError(t, err)
		require.NoError(t, tr.MarkInUse(h, "t"))
		return h
	}
	h := alloc("r1")
	_, err = tr.Sanitize(h, core.SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(h))
	code, v = gate("clean")
	assert.Equal(t, 0, code)
	assert.Equal(t, false, v["idle"])

	unsanitized := alloc("r2")
	code, v = gate("unsanitized")
	assert.Equal(t, 2, code)
	assert.Contains(t, failedMetrics(v), "unsanitized_regions_count")

	require.NoError(t, tr.Quarantine(unsanitized, "manual"))
	code, v = gate("quarantined")
	assert.Equal(t, 2, code)
	assert.Contains(t, failedMetrics(v), "quarantine_count")
}

func failedMetrics(v map[string]any) []string {
	var out []string
	fs, _ := v["failures"].([]any)
	for _, f := range fs {
		if m, ok := f.(map[string]any); ok {
			out = append(out, m["metric"].(string))
		}
	}
	return out
}
