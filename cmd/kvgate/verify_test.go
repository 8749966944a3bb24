package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// verifyOut parses the JSON lines kvgate verify prints and the verdict file.
func verifyOut(t *testing.T, r result, out string) (payloads []map[string]any, verdict map[string]any) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		if _, ok := m["result"]; ok {
			payloads = append(payloads, m)
		}
	}
	if out != "" {
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &verdict))
	}
	return payloads, verdict
}

func TestVerifySeedLogs(t *testing.T) {
	requireCompat(t)
	tests := []struct {
		name string
		dir  string
		env  []string
		code int
		msg  string
	}{
		{"plain", "plain", nil, 0, "ok:"},
		{"hmac with key", "hmac", []string{"FORENSIC_HMAC_SECRET=secret"}, 0, "ok:"},
		{"hmac without key", "hmac", nil, 0, "ok:"},
		{"hmac wrong key", "hmac", []string{"FORENSIC_HMAC_SECRET=not-the-secret"}, 2, "bad_hmac"},
		{"plain but key required", "plain", []string{"FORENSIC_HMAC_SECRET=secret"}, 2, "missing_hmac"},
		{"rotated", "rotated", nil, 0, "ok:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "verification.json")
			env := append([]string{"LOG_DIR=" + filepath.Join(compatDir, tc.dir), "VERDICT_OUT=" + out}, tc.env...)
			r := runKvgate(t, env, "verify")
			require.Equal(t, tc.code, r.code, "stdout %s\nstderr %s", r.stdout, r.stderr)
			assert.Contains(t, r.stderr, tc.msg)
			payloads, verdict := verifyOut(t, r, out)
			require.Len(t, payloads, 2, "verified before and after retention, like the seed")
			for _, p := range payloads {
				assert.EqualValues(t, 1, p["schema"])
				assert.Equal(t, filepath.Join(compatDir, tc.dir, "kv_cache.log"), p["log"])
				assert.Equal(t, tc.code == 0, p["result"].(map[string]any)["ok"])
			}
			assert.Equal(t, tc.code == 0, verdict["ok"])
			assert.Equal(t, tc.code == 0, verdict["result"].(map[string]any)["ok"])
		})
	}
}

func TestVerifyHMACKeyFile(t *testing.T) {
	requireCompat(t)
	key := writeFile(t, filepath.Join(t.TempDir(), "hmac.key"), "secret\n")
	r := runKvgate(t, nil, "verify", "--log-dir", filepath.Join(compatDir, "hmac"), "--out", "")
	require.Equal(t, 0, r.code, r.stderr)
	r = runKvgate(t, []string{"FORENSIC_HMAC_SECRET=wrong"}, "verify", "--log-dir", filepath.Join(compatDir, "hmac"), "--hmac-key-file", key, "--out", "")
	require.Equal(t, 0, r.code, "the key file wins over the environment: %s", r.stderr)
}

func TestVerifyTamperedNamesFileLineReason(t *testing.T) {
	requireCompat(t)
	dir := copyDir(t, filepath.Join(compatDir, "plain"))
	p := filepath.Join(dir, "kv_cache.log")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	lines := strings.Split(string(b), "\n")
	require.Greater(t, len(lines), 4)
	lines[3] = strings.Replace(lines[3], `"tenant-0"`, `"tenant-X"`, 1)
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600))
	r := runKvgate(t, []string{"LOG_DIR=" + dir}, "verify", "--out", filepath.Join(dir, "v.json"))
	require.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "kv_cache.log:4: bad_hash", "file, 1-based line and reason")
	assert.Contains(t, r.stderr, "INTEGRITY FAILURE")
}

// rotatedNames lists the rotated files left next to the active log.
func rotatedNames(t *testing.T, dir string) []string {
	m, err := filepath.Glob(filepath.Join(dir, "kv_cache-*.log"))
	require.NoError(t, err)
	sort.Strings(m)
	return m
}

func TestVerifyRetentionSeedRotated(t *testing.T) {
	requireCompat(t)
	dir := copyDir(t, filepath.Join(compatDir, "rotated"))
	before := rotatedNames(t, dir)
	require.Len(t, before, 7)
	archive := filepath.Join(t.TempDir(), "archive")
	out := filepath.Join(dir, "verification.json")
	r := runKvgate(t, []string{"LOG_DIR=" + dir, "MAX_ROTATED=2", "ARCHIVE_DIR=" + archive}, "verify", "--out", out)
	require.Equal(t, 0, r.code, "stdout %s\nstderr %s", r.stdout, r.stderr)
	after := rotatedNames(t, dir)
	assert.Len(t, after, 2)
	_, verdict := verifyOut(t, r, out)
	removed := verdict["removed"].([]any)
	assert.Len(t, removed, 5)
	arch, _ := os.ReadDir(archive)
	assert.Len(t, arch, 5, "pruned files are archived, not deleted")
	// Verification after pruning passes, and the prune is in the chain.
	r = runKvgate(t, []string{"LOG_DIR=" + dir}, "verify", "--out", "")
	require.Equal(t, 0, r.code, r.stderr)
	all := ""
	for _, f := range append(rotatedNames(t, dir), filepath.Join(dir, "kv_cache.log")) {
		b, _ := os.ReadFile(f)
		all += string(b)
	}
	assert.Contains(t, all, `"prune"`, "a prune record names what was removed")
}

// TestVerifyOwnWriter writes a chain with the real forensic writer (HMAC
// and signed checkpoints), verifies it with kvgate, then tampers with it.
func TestVerifyOwnWriter(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(t.TempDir(), "keys")
	r := runKvgate(t, nil, "keygen", "--name", "test-host", "--out-dir", keys)
	require.Equal(t, 0, r.code, r.stderr)
	cpDir := filepath.Join(t.TempDir(), "checkpoints")
	require.NoError(t, os.MkdirAll(cpDir, 0o700))
	logPath := filepath.Join(dir, "kv_cache.log")
	w, err := forensic.Open(forensic.Options{
		Path: logPath, HMACKey: []byte("k3y"), Fsync: forensic.FsyncNone,
		CheckpointDir: cpDir, CheckpointKeyPath: filepath.Join(keys, "test-host.key"), CheckpointEvery: 50,
	})
	require.NoError(t, err)
	for i := 0; i < 120; i++ {
		require.NoError(t, w.Append("allocate", forensic.Field{Key: "handle", Value: "h"}, forensic.Field{Key: "nbytes", Value: int64(i)}))
	}
	require.NoError(t, w.Checkpoint())
	require.NoError(t, w.Close())

	env := []string{"LOG_DIR=" + dir, "FORENSIC_HMAC_SECRET=k3y"}
	args := []string{"verify", "--out", "", "--checkpoint-dir", cpDir, "--public-key", filepath.Join(keys, "test-host.pub")}
	r = runKvgate(t, env, args...)
	require.Equal(t, 0, r.code, "stdout %s\nstderr %s", r.stdout, r.stderr)
	payloads, _ := verifyOut(t, r, "")
	assert.EqualValues(t, 120, payloads[1]["result"].(map[string]any)["records"])

	// Truncating the tail is caught by the checkpoint, not by the chain.
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	require.NoError(t, os.WriteFile(logPath, []byte(strings.Join(lines[:len(lines)-11], "")), 0o600))
	r = runKvgate(t, env, args...)
	assert.Equal(t, 2, r.code, "stdout %s\nstderr %s", r.stdout, r.stderr)
	assert.Contains(t, r.stderr, "kv_cache.log")
}

// TestVerifyRetentionWhileWriterRuns: pruning needs the writer's lock; with
// a running writer kvgate still verifies, says retention was skipped and
// records that in the verdict.
func TestVerifyRetentionWhileWriterRuns(t *testing.T) {
	dir := t.TempDir()
	w, err := forensic.Open(forensic.Options{Path: filepath.Join(dir, "kv_cache.log"), Fsync: forensic.FsyncNone})
	require.NoError(t, err)
	defer w.Close()
	for i := 0; i < 5; i++ {
		require.NoError(t, w.Append("write", forensic.Field{Key: "handle", Value: "h"}))
	}
	require.NoError(t, w.Flush())
	out := filepath.Join(dir, "v.json")
	r := runKvgate(t, []string{"LOG_DIR=" + dir, "MAX_ROTATED=0"}, "verify", "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "retention skipped")
	_, verdict := verifyOut(t, r, out)
	assert.Contains(t, verdict["retention_skipped"], "running writer")
}
