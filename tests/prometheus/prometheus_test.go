package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/core"
)

// findPrometheus returns the prometheus binary or skips (fails under CI).
func findPrometheus(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("PROMETHEUS_BIN"), "/usr/bin/prometheus"} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("prometheus not installed (scripts/setup.sh installs Debian's prometheus package); required when CI=true")
	}
	t.Skip("prometheus not installed; run scripts/setup.sh (this test is required when CI=true)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// queryResult is the part of /api/v1/query's answer the test reads.
type queryResult struct {
	Status string `json:"status"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
	Error string `json:"error"`
}

// query runs an instant query; ok is false while Prometheus has no sample.
func query(ctx context.Context, base, q string) (float64, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, false, nil // not listening yet; the caller's deadline bounds the wait
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, err
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		return 0, false, nil // listening, storage not ready yet (plain-text 503); same wait
	}
	var r queryResult
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, false, fmt.Errorf("query %s: %s: %w", q, b, err)
	}
	if r.Status != "success" {
		return 0, false, fmt.Errorf("query %s: %s", q, r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, false, nil
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false, fmt.Errorf("query %s: value %q: %w", q, s, err)
	}
	return v, true, nil
}

func TestPrometheusScrapesSanitizedBytes(t *testing.T) {
	promBin := findPrometheus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A tracer with its own registry, serving /metrics on loopback.
	cfg := core.DefaultConfig()
	cfg.LogPath = filepath.Join(t.TempDir(), "kv_cache.log")
	cfg.Registerer = prometheus.NewRegistry()
	cfg.SweepIntervalMS = 0
	tr, err := core.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })

	sizes := []uint64{4096, 65536, 12345, 1 << 20, 1}
	var want uint64
	for i, n := range sizes {
		h, err := tr.Allocate(core.AllocDesc{NBytes: n, Device: core.DeviceCPU, Tenant: "tenant-a",
			Request: fmt.Sprintf("req-%d", i), Model: "m"})
		require.NoError(t, err)
		require.NoError(t, tr.MarkInUse(h, "tenant-a"))
		cov, err := tr.Sanitize(h, core.SanitizeOpts{})
		require.NoError(t, err)
		require.Equal(t, 100.0, cov)
		require.NoError(t, tr.Free(h))
		want += n
	}
	addr, err := tr.ServeMetrics("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.StopMetrics() })

	dir := t.TempDir()
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kvhygiene
    metrics_path: /metrics
    static_configs:
      - targets: ["%s"]
`, addr)
	confPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, promBin,
		"--config.file="+confPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})

	// Wait for a scrape: the target is up and the counter has a sample.
	var got float64
	deadline := time.Now().Add(45 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("prometheus exited early:\n%s", logs.String())
		default:
		}
		up, okUp, err := query(ctx, base, `up{job="kvhygiene"}`)
		require.NoError(t, err)
		v, ok, err := query(ctx, base, `sum(kv_hygiene_sanitized_bytes_total{job="kvhygiene"})`)
		require.NoError(t, err)
		if okUp && up == 1 && ok {
			got = v
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrape of %s within the deadline (up=%v seen=%v); targets: %s\nprometheus log:\n%s",
				addr, up, okUp, targets(base), logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.Equal(t, float64(want), got, "kv_hygiene_sanitized_bytes_total as scraped by Prometheus")
	cpu, ok, err := query(ctx, base, `kv_hygiene_sanitized_bytes_total{job="kvhygiene",device="cpu"}`)
	require.NoError(t, err)
	require.True(t, ok, "a device=\"cpu\" series")
	require.Equal(t, float64(want), cpu, "host buffers are counted under device=cpu")

	freed, ok, err := query(ctx, base, `kv_hygiene_freed_total{job="kvhygiene"}`)
	require.NoError(t, err)
	require.True(t, ok, "seed metric kv_hygiene_freed_total scraped")
	require.Equal(t, float64(len(sizes)), freed)
}

// targets returns Prometheus's view of its scrape targets, for diagnostics.
func targets(base string) string {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/api/v1/targets")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return string(b)
}
