package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/cpuid/v2"
	"github.com/kvhygiene/kvhygiene/core/cpuzero"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kvgateBin is the binary built once by TestMain; every test runs it as a
// subprocess so exit codes, files and signals are real.
var kvgateBin string

// compatDir holds logs and metrics written by the seed's own code:
// $KVH_COMPAT_DIR, else tests/fixtures/compat in the repository, else the
// shared workspace copy.
var compatDir = func() string {
	for _, d := range []string{os.Getenv("KVH_COMPAT_DIR"), "../../tests/fixtures/compat", "../../../shared/compat"} {
		if d == "" {
			continue
		}
		if st, err := os.Stat(filepath.Join(d, "plain", "kv_cache.log")); err == nil && st.Mode().IsRegular() {
			abs, err := filepath.Abs(d)
			if err == nil {
				return abs
			}
		}
	}
	return "../../tests/fixtures/compat"
}()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvgate-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdtemp:", err)
		os.Exit(1)
	}
	kvgateBin = filepath.Join(dir, "kvgate")
	cmd := exec.Command("go", "build", "-o", kvgateBin, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build kvgate:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// runKvgate runs the binary with a clean kvhygiene environment plus env.
func runKvgate(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kvgateBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run kvgate %v: %v", args, err)
	}
	r := result{code, so.String(), se.String()}
	assertNoCrash(t, r)
	return r
}

func cleanEnv() []string {
	drop := map[string]bool{"LOG_DIR": true, "LOG_FILE": true, "VERDICT_OUT": true, "RETENTION_DAYS": true,
		"MAX_ROTATED": true, "ARCHIVE_DIR": true, "FORENSIC_HMAC_SECRET": true, "METRICS_FILE": true,
		"METRICS_PORT": true, "METRICS_BIND": true, "KVH_CPU_KERNEL": true}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	return env
}

// assertNoCrash: kvgate never prints a Go stack trace.
func assertNoCrash(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{r.stdout, r.stderr} {
		assert.NotContains(t, s, "goroutine ")
		assert.NotContains(t, s, "panic:")
		assert.NotContains(t, s, ".go:")
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// copyDir copies the regular files of src into a new temp dir.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600))
	}
	return dst
}

func requireCompat(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(compatDir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("seed fixtures not found (set KVH_COMPAT_DIR or add tests/fixtures/compat); required when CI=true")
		}
		t.Skip("seed fixtures not present at " + compatDir)
	}
}

const goodMetrics = `{"total_buffers": 3, "active_buffers": 0, "unsanitized_regions_count": 0, "quarantine_count": 0,
 "min_coverage_pct": 100.0, "avg_coverage_pct": 100.0, "threshold_pct": 99.9, "sanitize_duration_p50_ms": 0.1,
 "sanitize_duration_p95_ms": 0.4, "allocations": 3, "freed_total": 3, "reuse_total": 1, "reuse_rate": 0.333, "sanitized_total": 3}`

func TestCheckVerdicts(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		metrics  string
		flags    []string
		code     int
		failures []string // metric names expected in failures
		idle     bool
	}{
		{"all good", goodMetrics, nil, 0, nil, false},
		{"low coverage", strings.Replace(goodMetrics, `"min_coverage_pct": 100.0`, `"min_coverage_pct": 97.5`, 1), nil, 2, []string{"coverage_pct"}, false},
		{"coverage threshold lowered", strings.Replace(goodMetrics, `"min_coverage_pct": 100.0`, `"min_coverage_pct": 97.5`, 1), []string{"--coverage-min", "95"}, 0, nil, false},
		{"unsanitized and quarantined", strings.NewReplacer(`"unsanitized_regions_count": 0`, `"unsanitized_regions_count": 2`, `"quarantine_count": 0`, `"quarantine_count": 1`).Replace(goodMetrics), nil, 2, []string{"unsanitized_regions_count", "quarantine_count"}, false},
		{"quarantine allowed", strings.Replace(goodMetrics, `"quarantine_count": 0`, `"quarantine_count": 1`, 1), []string{"--quarantine-max=1"}, 0, nil, false},
		{"reuse rate bound", goodMetrics, []string{"--reuse-rate-max", "0.2"}, 2, []string{"reuse_rate"}, false},
		{"p95 bound", goodMetrics, []string{"--sanitize-p95-ms-max", "0.3"}, 2, []string{"sanitize_duration_p95_ms"}, false},
		{"p95 bound met", goodMetrics, []string{"--sanitize-p95-ms-max", "0.5"}, 0, nil, false},
		{"idle tracer (ours)", `{"total_buffers":0,"unsanitized_regions_count":0,"quarantine_count":0,"min_coverage_pct":0,"sanitized_total":0}`, nil, 0, nil, true},
		{"idle tracer (seed)", `{"total_buffers":0,"active_buffers":0,"unsanitized_regions_count":0,"quarantine_count":0,"min_coverage_pct":0.0,"reuse_rate":0.0}`, nil, 0, nil, true},
		{"allocated, never sanitized", `{"total_buffers":2,"unsanitized_regions_count":2,"quarantine_count":0,"min_coverage_pct":0.0}`, nil, 2, []string{"coverage_pct", "unsanitized_regions_count"}, false},
		{"sanitized but zero coverage", `{"total_buffers":1,"unsanitized_regions_count":0,"quarantine_count":0,"min_coverage_pct":0,"sanitized_total":1}`, nil, 2, []string{"coverage_pct"}, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := writeFile(t, filepath.Join(dir, fmt.Sprintf("m%d.json", i)), tc.metrics)
			out := filepath.Join(dir, fmt.Sprintf("out%d", i), "verdict.json")
			args := append([]string{"check", in, "--out", out}, tc.flags...)
			r := runKvgate(t, nil, args...)
			require.Equal(t, tc.code, r.code, "stderr: %s", r.stderr)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.stdout), "\n")+1, "verdict printed on one line")
			var printed, written map[string]any
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &printed))
			b, err := os.ReadFile(out)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &written))
			assert.Equal(t, printed, written)
			for _, k := range []string{"pass", "failures", "metrics", "thresholds", "ts", "schema"} {
				assert.Contains(t, printed, k)
			}
			assert.EqualValues(t, 1, printed["schema"])
			assert.Equal(t, tc.code == 0, printed["pass"])
			assert.Equal(t, tc.idle, printed["idle"])
			var got []string
			for _, f := range printed["failures"].([]any) {
				fm := f.(map[string]any)
				got = append(got, fm["metric"].(string))
				_, hasMin := fm["expected_min"]
				_, hasMax := fm["expected_max"]
				assert.True(t, hasMin != hasMax, "exactly one of expected_min/expected_max: %v", fm)
			}
			assert.ElementsMatch(t, tc.failures, got)
		})
	}
}

func TestCheckSeedMetricsFile(t *testing.T) {
	requireCompat(t)
	out := filepath.Join(t.TempDir(), "verdict.json")
	r := runKvgate(t, nil, "check", filepath.Join(compatDir, "plain", "coverage.json"), "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	assert.Equal(t, true, v["pass"])
	assert.EqualValues(t, 5, v["metrics"].(map[string]any)["total_buffers"])
	th := v["thresholds"].(map[string]any)
	assert.EqualValues(t, 99.9, th["coverage_pct_min"])
	assert.Nil(t, th["reuse_rate_max"])
}

func TestCheckDefaultOut(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "m.json"), goodMetrics)
	cmd := exec.Command(kvgateBin, "check", in)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	require.NoError(t, cmd.Run())
	_, err := os.Stat(filepath.Join(dir, "forensics", "verdict.json"))
	require.NoError(t, err, "default --out is forensics/verdict.json")
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.json"), goodMetrics)
	empty := writeFile(t, filepath.Join(dir, "empty.json"), "")
	blank := writeFile(t, filepath.Join(dir, "blank.json"), " \n\n")
	malformed := writeFile(t, filepath.Join(dir, "bad.json"), `{"min_coverage_pct": 100,`)
	array := writeFile(t, filepath.Join(dir, "array.json"), `[1,2]`)
	schema2 := writeFile(t, filepath.Join(dir, "schema2.json"), strings.Replace(goodMetrics, "{", `{"schema": 2,`, 1))
	missing := writeFile(t, filepath.Join(dir, "missing.json"), `{"total_buffers": 1}`)
	strnum := writeFile(t, filepath.Join(dir, "strnum.json"), strings.Replace(goodMetrics, `"quarantine_count": 0`, `"quarantine_count": "zero"`, 1))
	negcount := writeFile(t, filepath.Join(dir, "neg.json"), strings.Replace(goodMetrics, `"quarantine_count": 0`, `"quarantine_count": -1`, 1))
	verdict := writeFile(t, filepath.Join(dir, "verdict.json"), `{"pass": true, "failures": [], "metrics": {}, "schema": 1}`)
	record := `{"event_type":"allocate","schema":1,"prev_hash":"GENESIS","curr_hash":"00"}`
	logLike := writeFile(t, filepath.Join(dir, "kv_cache.log"), record+"\n"+record+"\n")
	logDir := t.TempDir()
	writeFile(t, filepath.Join(logDir, "kv_cache.log"), goodMetrics) // a metrics file where the log should be
	emptyLogDir := t.TempDir()
	writeFile(t, filepath.Join(emptyLogDir, "kv_cache.log"), "")
	dirAsLog := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dirAsLog, "kv_cache.log"), 0o700))
	promLogDir := t.TempDir()
	writeFile(t, filepath.Join(promLogDir, "kv_cache.log"), "# HELP kv_hygiene_x y\n# TYPE kv_hygiene_x gauge\nkv_hygiene_x 1\n")
	unreadable := writeFile(t, filepath.Join(dir, "unreadable.json"), goodMetrics)
	require.NoError(t, os.Chmod(unreadable, 0))
	privKey := writeFile(t, filepath.Join(dir, "signer.key"), "PRIVATE+KEY+host+abcd+AAAA\n")
	emptyKey := writeFile(t, filepath.Join(dir, "empty.key"), "")
	out := filepath.Join(dir, "out.json")

	tests := []struct {
		name string
		env  []string
		args []string
		msg  string // substring of stderr
	}{
		{"no command", nil, nil, "usage"},
		{"unknown command", nil, []string{"frobnicate"}, "unknown command"},
		{"check unknown flag", nil, []string{"check", "--bogus", good}, "not defined: -bogus"},
		{"check no file", nil, []string{"check"}, "exactly one metrics file"},
		{"check two files", nil, []string{"check", good, good}, "exactly one metrics file"},
		{"check missing file", nil, []string{"check", filepath.Join(dir, "nope.json"), "--out", out}, "no such file"},
		{"check directory", nil, []string{"check", dir, "--out", out}, "is a directory"},
		{"check empty file", nil, []string{"check", empty, "--out", out}, "empty"},
		{"check blank file", nil, []string{"check", blank, "--out", out}, "empty"},
		{"check malformed", nil, []string{"check", malformed, "--out", out}, "malformed JSON"},
		{"check array", nil, []string{"check", array, "--out", out}, "not a JSON object"},
		{"check wrong schema", nil, []string{"check", schema2, "--out", out}, "unsupported schema"},
		{"check missing keys", nil, []string{"check", missing, "--out", out}, `missing "min_coverage_pct"`},
		{"check string number", nil, []string{"check", strnum, "--out", out}, `"quarantine_count" is "zero"`},
		{"check negative count", nil, []string{"check", negcount, "--out", out}, "non-negative integer"},
		{"check verdict as metrics", nil, []string{"check", verdict, "--out", out}, "verdict"},
		{"check log as metrics", nil, []string{"check", logLike, "--out", out}, "forensic log"},
		{"check unparsable threshold", nil, []string{"check", good, "--coverage-min", "abc"}, "invalid value"},
		{"check threshold out of range", nil, []string{"check", good, "--coverage-min", "120", "--out", out}, "between 0 and 100"},
		{"check reuse max without metric", nil, []string{"check", missingReuse(t, dir), "--reuse-rate-max", "1", "--out", out}, "no reuse_rate"},
		{"check out is a directory", nil, []string{"check", good, "--out", dir}, "is a directory"},
		{"verify unknown flag", nil, []string{"verify", "--nope"}, "not defined: -nope"},
		{"verify positional", nil, []string{"verify", "x"}, "unexpected argument"},
		{"verify missing dir", nil, []string{"verify", "--log-dir", filepath.Join(dir, "none")}, "no such file"},
		{"verify dir is a file", nil, []string{"verify", "--log-dir", good}, "not a directory"},
		{"verify missing log", nil, []string{"verify", "--log-dir", dir, "--log-file", "absent.log"}, "no such file"},
		{"verify log is a directory", nil, []string{"verify", "--log-dir", dirAsLog, "--out", out}, "is a directory"},
		{"verify empty log", nil, []string{"verify", "--log-dir", emptyLogDir, "--out", out}, "empty"},
		{"verify metrics as log", nil, []string{"verify", "--log-dir", logDir, "--out", out}, "metrics JSON file, not a forensic log"},
		{"verify prom as log", nil, []string{"verify", "--log-dir", promLogDir, "--out", out}, "Prometheus"},
		{"verify MAX_ROTATED=abc", []string{"MAX_ROTATED=abc"}, []string{"verify", "--log-dir", dir}, "MAX_ROTATED"},
		{"verify RETENTION_DAYS=1x", []string{"RETENTION_DAYS=1x"}, []string{"verify", "--log-dir", dir}, "RETENTION_DAYS"},
		{"verify RETENTION_DAYS negative", []string{"RETENTION_DAYS=-3"}, []string{"verify", "--log-dir", dir}, "must be >= 0"},
		{"verify --max-rotated abc", nil, []string{"verify", "--log-dir", dir, "--max-rotated", "abc"}, "invalid value"},
		{"verify missing key file", nil, []string{"verify", "--log-dir", dir, "--hmac-key-file", filepath.Join(dir, "no.key")}, "no such file"},
		{"verify empty key file", nil, []string{"verify", "--log-dir", dir, "--hmac-key-file", emptyKey}, "empty"},
		{"verify private key as public key", nil, []string{"verify", "--log-dir", dir, "--checkpoint-dir", dir, "--public-key", privKey}, "signer (private) key"},
		{"verify public key without dir", nil, []string{"verify", "--log-dir", dir, "--public-key", privKey}, "go together"},
		{"serve METRICS_PORT=abc", []string{"METRICS_PORT=abc"}, []string{"serve"}, "METRICS_PORT"},
		{"serve port out of range", nil, []string{"serve", "--port", "70000"}, "not a port number"},
		{"serve file is a directory", nil, []string{"serve", "--metrics-file", dir, "--port", "0"}, "not a regular file"},
		{"serve bad bind", []string{"METRICS_BIND=not-an-ip"}, []string{"serve", "--port", "0"}, "not an IP address"},
		{"keygen missing name", nil, []string{"keygen", "--out-dir", dir}, "required"},
		{"keygen bad name", nil, []string{"keygen", "--name", "../x", "--out-dir", dir}, "must not contain"},
		{"keygen out-dir is a file", nil, []string{"keygen", "--name", "h", "--out-dir", good}, "not a directory"},
		{"bench bad size", nil, []string{"bench", "--sizes", "4KiB,lots"}, "not a positive size"},
		{"bench bad reps", nil, []string{"bench", "--reps", "0"}, "--reps"},
		{"doctor unknown flag", nil, []string{"doctor", "--frob"}, "not defined"},
	}
	if os.Geteuid() != 0 { // root reads mode-0 files
		tests = append(tests, struct {
			name string
			env  []string
			args []string
			msg  string
		}{"check unreadable", nil, []string{"check", unreadable, "--out", out}, "permission denied"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runKvgate(t, tc.env, tc.args...)
			assert.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.Contains(t, r.stderr, tc.msg)
			assert.LessOrEqual(t, strings.Count(strings.TrimSpace(r.stderr), "\n"), 12, "short message")
		})
	}
}

func missingReuse(t *testing.T, dir string) string {
	return writeFile(t, filepath.Join(dir, "noreuse.json"), `{"min_coverage_pct":100,"unsanitized_regions_count":0,"quarantine_count":0}`)
}

func TestHelpExitsZero(t *testing.T) {
	for _, c := range []string{"check", "verify", "serve", "doctor", "keygen", "bench"} {
		r := runKvgate(t, nil, c, "-h")
		assert.Equal(t, 0, r.code, c)
		assert.Contains(t, r.stdout, "usage: kvgate "+c)
	}
	r := runKvgate(t, nil, "help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "verify")
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe starts `kvgate serve` on port 0 and returns its base URL.
func startServe(t *testing.T, env []string, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(kvgateBin, append([]string{"serve", "--port", "0"}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		require.True(t, ok, "serve printed nothing; stderr: %s", stderr.String())
		i := strings.Index(line, " on ")
		j := strings.Index(line, " at /metrics")
		require.True(t, i > 0 && j > i, "unexpected banner %q", line)
		return cmd, "http://" + line[i+4:j], stderr
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start; stderr: %s", stderr.String())
	}
	return nil, "", nil
}

func httpGet(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	mf := filepath.Join(dir, "metrics.prom")
	content := "# TYPE kv_hygiene_quarantine_count gauge\nkv_hygiene_quarantine_count 3\n"
	writeFile(t, mf, content)
	// The file comes from the environment, as in the seed; the bind default is loopback.
	cmd, base, stderr := startServe(t, []string{"METRICS_FILE=" + mf})
	assert.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)

	code, body, hdr := httpGet(t, http.MethodGet, base+"/metrics")
	assert.Equal(t, 200, code)
	assert.Equal(t, content, body)
	assert.Equal(t, promContentType, hdr.Get("Content-Type"))

	code, _, _ = httpGet(t, http.MethodGet, base+"/")
	assert.Equal(t, 404, code)
	code, _, _ = httpGet(t, http.MethodGet, base+"/metricsx")
	assert.Equal(t, 404, code)
	code, _, _ = httpGet(t, http.MethodPost, base+"/metrics")
	assert.Equal(t, 405, code)

	// The file is re-read per request.
	writeFile(t, mf, content+"kv_hygiene_freed_total 9\n")
	var wg sync.WaitGroup
	errs := make(chan string, 32)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/metrics")
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), "kv_hygiene_freed_total 9") {
				errs <- fmt.Sprintf("status %d body %q", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	// No file: 200 with an empty body (the exporter has not written yet).
	require.NoError(t, os.Remove(mf))
	code, body, _ = httpGet(t, http.MethodGet, base+"/metrics")
	assert.Equal(t, 200, code)
	assert.Empty(t, body)

	// Graceful shutdown on SIGTERM: exit 0.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "stderr: %s", stderr.String())
		assert.Equal(t, 0, cmd.ProcessState.ExitCode())
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

func TestServeSIGINT(t *testing.T) {
	cmd, base, _ := startServe(t, nil, "--metrics-file", filepath.Join(t.TempDir(), "none.prom"))
	code, body, _ := httpGet(t, http.MethodGet, base+"/metrics")
	assert.Equal(t, 200, code)
	assert.Empty(t, body)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop on SIGINT")
	}
}

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	r := runKvgate(t, nil, "keygen", "--name", "host-a", "--out-dir", dir)
	require.Equal(t, 0, r.code, r.stderr)
	st, err := os.Stat(filepath.Join(dir, "host-a.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	key, err := os.ReadFile(filepath.Join(dir, "host-a.key"))
	require.NoError(t, err)
	pub, err := os.ReadFile(filepath.Join(dir, "host-a.pub"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(key), "PRIVATE+KEY+host-a+"), "signer key in note format")
	assert.True(t, strings.HasPrefix(string(pub), "host-a+"), "verifier key in note format")
	assert.NotContains(t, r.stdout, strings.TrimSpace(string(key)), "the signer key is never printed")

	r = runKvgate(t, nil, "keygen", "--name", "host-a", "--out-dir", dir)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "refusing to overwrite")
	key2, _ := os.ReadFile(filepath.Join(dir, "host-a.key"))
	assert.Equal(t, key, key2)
}

func TestDoctor(t *testing.T) {
	safe := t.TempDir()
	require.NoError(t, os.Chmod(safe, 0o700))
	writeFile(t, filepath.Join(safe, "kv_cache.log"), "x\n")
	r := runKvgate(t, []string{"FORENSIC_HMAC_SECRET=secret"}, "doctor", "--json", "--log-dir", safe)
	require.Equal(t, 0, r.code, r.stderr)
	var rep doctorReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.NotEmpty(t, rep.CPU.Kernel)
	assert.Contains(t, rep.CPU.Kernels, rep.CPU.Kernel)
	assert.Positive(t, rep.CPU.NTThreshold)
	assert.Equal(t, cpuzero.ERMSThreshold(), rep.CPU.ERMSThreshold)
	assert.Equal(t, cpuid.CPU.Family, rep.CPU.Family)
	assert.Equal(t, runtime.NumCPU(), rep.CPU.LogicalCores)
	assert.True(t, rep.Logs.Safe, "%v", rep.Logs.Issues)
	assert.Equal(t, 1, rep.Logs.Files)
	assert.True(t, rep.HMAC.Configured)
	assert.Equal(t, keyID([]byte("secret")), rep.HMAC.KeyID)
	assert.NotContains(t, r.stdout, `"secret"`)
	if !rep.NVML.Available {
		assert.NotEmpty(t, rep.NVML.Detail, "no driver is said plainly")
	}
	if !rep.CUDA.Driver {
		assert.NotEmpty(t, rep.CUDA.Detail)
	}

	unsafe := t.TempDir()
	require.NoError(t, os.Chmod(unsafe, 0o755))
	f := writeFile(t, filepath.Join(unsafe, "kv_cache.log"), "x\n")
	require.NoError(t, os.Chmod(f, 0o644))
	r = runKvgate(t, nil, "doctor", "--json", "--log-dir", unsafe)
	require.Equal(t, 0, r.code)
	rep = doctorReport{}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.False(t, rep.Logs.Safe)
	assert.Len(t, rep.Logs.Issues, 2, "%v", rep.Logs.Issues)
	assert.False(t, rep.HMAC.Configured)
	assert.NotEmpty(t, rep.Warnings)

	r = runKvgate(t, nil, "doctor", "--log-dir", unsafe)
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "UNSAFE")
	assert.Contains(t, r.stdout, "zeroization kernel: "+rep.CPU.Kernel)
}

func TestBench(t *testing.T) {
	r := runKvgate(t, nil, "bench", "--sizes", "4KiB,64KiB", "--reps", "3", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var out struct {
		Kernel  string     `json:"kernel"`
		Results []benchRow `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	assert.NotEmpty(t, out.Kernel)
	require.Len(t, out.Results, 2)
	assert.Equal(t, 4096, out.Results[0].Bytes)
	assert.Equal(t, 65536, out.Results[1].Bytes)
	for _, row := range out.Results {
		assert.Positive(t, row.KernelGBps)
		assert.Positive(t, row.ClearGBps)
	}
	r = runKvgate(t, nil, "bench", "--sizes", "4KiB", "--reps", "1")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "kernel")
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "4KiB": 4096, "1MiB": 1 << 20, "2M": 2 << 20, "1GiB": 1 << 30, " 8K ": 8192} {
		got, err := parseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0", "-1", "abc", "2GiB", "1.5MiB"} {
		_, err := parseSize(in)
		assert.Error(t, err, in)
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte(goodMetrics))
	f.Add([]byte(`{"min_coverage_pct":0,"unsanitized_regions_count":0,"quarantine_count":0}`))
	f.Add([]byte(`{"schema":"1"}`))
	f.Add([]byte("{}\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMetrics(b, "fuzz.json")
		if err != nil {
			return
		}
		if m.minCoverage < 0 || m.minCoverage > 100 || m.unsanitized < 0 || m.quarantine < 0 {
			t.Fatalf("accepted out-of-range metrics: %+v", m)
		}
		v := evaluate(m, checkThresholds{CoveragePctMin: 99.9}, time.Unix(0, 0))
		if v.Pass != (len(v.Failures) == 0) {
			t.Fatal("pass disagrees with failures")
		}
	})
}
