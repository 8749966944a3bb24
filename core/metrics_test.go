package core

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestMetricsIdle(t *testing.T) {
	tr, _ := newTracer(t, nil)
	b, err := tr.MetricsJSON()
	require.NoError(t, err)
	want := `{
  "total_buffers": 0,
  "active_buffers": 0,
  "unsanitized_regions_count": 0,
  "quarantine_count": 0,
  "min_coverage_pct": 100.0,
  "avg_coverage_pct": 100.0,
  "threshold_pct": 99.9,
  "sanitize_duration_p50_ms": 0.0,
  "sanitize_duration_p95_ms": 0.0,
  "allocations": 0,
  "freed_total": 0,
  "reuse_total": 0,
  "reuse_rate": 0.0,
  "sanitized_total": 0
}`
	require.Equal(t, want, string(b))
}

func TestMetricsJSONKeysMatchSeed(t *testing.T) {
	seed, err := os.ReadFile("../tests/fixtures/compat/plain/coverage.json")
	require.NoError(t, err, "seed fixture")
	tr, _ := newTracer(t, nil)
	b, err := tr.MetricsJSON()
	require.NoError(t, err)
	var ours, theirs map[string]any
	require.NoError(t, json.Unmarshal(b, &ours))
	require.NoError(t, json.Unmarshal(seed, &theirs))
	for k := range theirs {
		require.Contains(t, ours, k)
	}
}

func TestMetricsValues(t *testing.T) {
	tr, _ := newTracer(t, nil)
	mems := [][]byte{region(t, 100, 1), region(t, 100, 1), region(t, 100, 1), region(t, 100, 1)}
	var hs []Handle
	for _, m := range mems {
		d := desc(m)
		d.HasMaxReuse, d.MaxReuse = true, -1
		h, err := tr.Allocate(d)
		require.NoError(t, err)
		hs = append(hs, h)
	}
	// h0: sanitized + freed; h1: sanitized (verify none -> 0 attested);
	// h2: quarantined; h3: in use, reused 3 times
	_, err := tr.Sanitize(hs[0], SanitizeOpts{})
	require.NoError(t, err)
	require.NoError(t, tr.Free(hs[0]))
	_, err = tr.Sanitize(hs[1], SanitizeOpts{Verify: VerifyNone})
	require.NoError(t, err)
	require.NoError(t, tr.Quarantine(hs[2], "test"))
	for i := 0; i < 3; i++ {
		require.NoError(t, tr.MarkReuse(hs[3], ""))
	}
	s := tr.Snapshot()
	require.Equal(t, uint64(4), s.TotalBuffers)
	require.Equal(t, uint64(4), s.Allocations)
	require.Equal(t, uint64(2), s.ActiveBuffers) // h1 sanitized, h3 in use
	require.Equal(t, uint64(1), s.Unsanitized)
	require.Equal(t, uint64(1), s.QuarantineCount)
	require.Equal(t, 0.0, s.MinCoveragePct)
	require.Equal(t, 50.0, s.AvgCoveragePct)
	require.Equal(t, uint64(2), s.SanitizedTotal)
	require.Equal(t, uint64(1), s.FreedTotal)
	require.Equal(t, uint64(3), s.ReuseTotal)
	require.Equal(t, 0.75, s.ReuseRate)
	require.Greater(t, s.SanitizeP95MS, 0.0)
	require.GreaterOrEqual(t, s.SanitizeP95MS, s.SanitizeP50MS)

	text, err := tr.PrometheusText()
	require.NoError(t, err)
	out := string(text)
	for _, line := range []string{
		"kv_hygiene_total_buffers 4", "kv_hygiene_allocations_total 4", "kv_hygiene_freed_total 1",
		"kv_hygiene_reuse_total 3", "kv_hygiene_reuse_rate 0.75", "kv_hygiene_quarantine_count 1",
		"kv_hygiene_min_coverage_pct 0", "kv_hygiene_avg_coverage_pct 50",
		`kv_hygiene_quarantines_total{reason="manual"} 1`, `kv_hygiene_sanitized_bytes_total{device="cpu"} 200`,
		`kv_hygiene_sanitize_duration_seconds_count{device="cpu"} 2`, "kv_hygiene_isolation_violations_total 0",
		"# TYPE kv_hygiene_log_fsync_duration_seconds histogram",
	} {
		require.Contains(t, out, line+"\n")
	}
	require.NoError(t, tr.Flush())
	require.Contains(t, out, "kv_hygiene_log_records_total ")
}

// Every HELP/TYPE line the seed writes is present verbatim.
func TestPrometheusSeedNames(t *testing.T) {
	f, err := os.Open("../tests/fixtures/compat/plain/metrics.prom")
	require.NoError(t, err, "seed fixture")
	defer f.Close()
	tr, _ := newTracer(t, nil)
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "metrics.prom")
	require.NoError(t, tr.ExportPrometheus(p))
	ours, err := os.ReadFile(p)
	require.NoError(t, err)
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			require.Contains(t, string(ours), sc.Text()+"\n")
			n++
		}
	}
	require.Equal(t, 26, n)
	ents, err := os.ReadDir(filepath.Dir(p))
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temp files left behind")

	jp := filepath.Join(dir, "coverage.json")
	require.NoError(t, tr.ExportMetrics(jp))
	var m map[string]any
	b, err := os.ReadFile(jp)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, 99.9, m["threshold_pct"])
	requireStatus(t, StatusIO, tr.ExportMetrics(filepath.Join(jp, "x")))
}

func TestServeMetrics(t *testing.T) {
	tr, _ := newTracer(t, nil)
	addr, err := tr.ServeMetrics(":0")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)
	_, err = tr.ServeMetrics("")
	requireStatus(t, StatusBusy, err)
	_, err = tr.Allocate(AllocDesc{Ptr: 4096, NBytes: 0, Tenant: "t", Request: "r", Model: "m"})
	require.NoError(t, err)
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(body), "kv_hygiene_allocations_total 1\n")
	require.NoError(t, tr.StopMetrics())
	_, err = c.Get("http://" + addr + "/metrics")
	require.Error(t, err)
	_, err = tr.ServeMetrics("bad address")
	requireStatus(t, StatusInvalidArg, err)
	addr2, err := tr.ServeMetrics("127.0.0.1:0")
	require.NoError(t, err)
	require.NotEmpty(t, addr2)
	require.NoError(t, tr.Close()) // stops the server
	_, err = c.Get("http://" + addr2 + "/metrics")
	require.Error(t, err)
}

func TestExternalRegistererAndTenantLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, _ := newTracer(t, func(c *Config) { c.Registerer = reg; c.MetricsTenantLabels = true })
	_, err := tr.Allocate(AllocDesc{Ptr: 4096, Tenant: "acme", Request: "r", Model: "m"})
	require.NoError(t, err)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	require.True(t, names["kv_hygiene_allocations_total"])
	require.True(t, names["kv_hygiene_tenant_allocations_total"])
	// a second tracer on the same registerer collides: clear config error
	cfg := DefaultConfig()
	cfg.LogPath = filepath.Join(t.TempDir(), "x.log")
	cfg.Registerer = reg
	_, err = Open(cfg)
	requireStatus(t, StatusConfig, err)
	require.NoError(t, tr.Close())
	// after close the collectors are unregistered
	tr2, err := Open(cfg)
	require.NoError(t, err)
	require.NoError(t, tr2.Close())
}

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{100: "100.0", 99.9: "99.9", 0: "0.0", 0.5: "0.5", 1e-5: "1e-05", 1e16: "1e+16", 123456.25: "123456.25", -2: "-2.0"} {
		require.Equal(t, want, pyFloat(f))
	}
}
