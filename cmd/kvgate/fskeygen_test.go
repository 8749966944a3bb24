package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// fsLog writes a forward-secure log in a new directory with the real clock
// and returns the directory, state path and verification key file.
func fsLog(t *testing.T, start time.Time, epoch string, maxBytes int64) (dir, state, keyFile string) {
	t.Helper()
	dir = t.TempDir()
	state = filepath.Join(t.TempDir(), "fs.state")
	keyFile = filepath.Join(t.TempDir(), "fs.key")
	args := []string{"fs-keygen", "--state", state, "--epoch", epoch, "--verify-key-out", keyFile}
	if !start.IsZero() {
		args = append(args, "--start", strconv.FormatInt(start.Unix(), 10))
	}
	r := runKvgate(t, nil, args...)
	require.Equal(t, 0, r.code, r.stderr)
	w, err := forensic.Open(forensic.Options{Path: filepath.Join(dir, "kv_cache.log"), FSStatePath: state, MaxBytes: maxBytes})
	require.NoError(t, err)
	for i := 0; i < 40; i++ {
		require.NoError(t, w.Append("free", forensic.Field{Key: "handle", Value: fmt.Sprintf("h%d", i)}, forensic.Field{Key: "tenant_id", Value: "a"}))
	}
	require.NoError(t, w.Close())
	return dir, state, keyFile
}

func TestFSKeygenCommand(t *testing.T) {
	state := filepath.Join(t.TempDir(), "fs.state")
	r := runKvgate(t, nil, "fs-keygen", "--state", state, "--epoch", "2m")
	require.Equal(t, 0, r.code, r.stderr)
	key := strings.TrimSpace(r.stdout)
	k, err := forensic.ParseFSKey(key)
	require.NoError(t, err, "stdout is exactly the verification key")
	assert.Equal(t, 2*time.Minute, k.Epoch)
	assert.WithinDuration(t, time.Now(), k.Start, time.Minute)
	st, err := os.Stat(state)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(state)
	require.NoError(t, err)
	assert.NotContains(t, string(b), key, "the state never holds the key text")

	r = runKvgate(t, nil, "fs-keygen", "--state", state)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "refusing to overwrite")
	b2, _ := os.ReadFile(state)
	assert.Equal(t, b, b2)

	dir := t.TempDir()
	existing := writeFile(t, filepath.Join(dir, "exists.key"), "x")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"fs-keygen"}, "--state is required"},
		{[]string{"fs-keygen", "--state", filepath.Join(dir, "a"), "--epoch", "1500ms"}, "whole seconds"},
		{[]string{"fs-keygen", "--state", filepath.Join(dir, "a"), "--epoch", "0s"}, "whole seconds"},
		{[]string{"fs-keygen", "--state", filepath.Join(dir, "a"), "--epoch", "soon"}, "invalid value"},
		{[]string{"fs-keygen", "--state", filepath.Join(dir, "a"), "--start", "yesterday"}, "RFC 3339"},
		{[]string{"fs-keygen", "--state", filepath.Join(dir, "a"), "--verify-key-out", existing}, "refusing to overwrite"},
		{[]string{"fs-keygen", "--state", filepath.Join(dir, "no", "such", "dir", "a")}, "no such file"},
		{[]string{"fs-keygen", "--state", filepath.Join(dir, "a"), "extra"}, "unexpected argument"},
	} {
		r := runKvgate(t, nil, tc.args...)
		assert.Equal(t, 1, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg, tc.args)
	}
	_, err = os.Stat(filepath.Join(dir, "a"))
	assert.True(t, os.IsNotExist(err), "no state left behind by failed runs")
}

func TestVerifyFSKey(t *testing.T) {
	dir, state, keyFile := fsLog(t, time.Time{}, "15m", 0)
	kb, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	st, err := os.Stat(keyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	key := strings.TrimSpace(string(kb))
	env := []string{"LOG_DIR=" + dir, "VERDICT_OUT=" + filepath.Join(t.TempDir(), "verdict.json")}

	for _, args := range [][]string{
		{"verify", "--fs-key-file", keyFile},
		{"verify", "--fs-key", key},
		{"verify", "--fs-key", key, "--fs-now", "now"},
		{"verify", "--fs-key", key, "--fs-now", time.Now().UTC().Format(time.RFC3339)},
	} {
		r := runKvgate(t, env, args...)
		assert.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "ok: 40 records")
	}
	// FORENSIC_HMAC_SECRET is a default that the explicit FS key overrides
	r := runKvgate(t, append(env, "FORENSIC_HMAC_SECRET=secret"), "verify", "--fs-key-file", keyFile)
	assert.Equal(t, 0, r.code, r.stderr)
	// a static-key verification of an FS log fails
	r = runKvgate(t, append(env, "FORENSIC_HMAC_SECRET=secret"), "verify")
	assert.Equal(t, 2, r.code, r.stderr)
	// a day later, the writer stopped: stale
	r = runKvgate(t, env, "verify", "--fs-key", key, "--fs-now", strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10))
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "fs_stale")

	// rewrite a record and recompute the hash chain (what an attacker
	// without the epoch key can do): plain verification passes, FS fails
	log := filepath.Join(dir, "kv_cache.log")
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	prev := "GENESIS"
	for i, l := range lines {
		if i == 5 {
			l = strings.Replace(l, `"handle":"h5"`, `"handle":"hX"`, 1)
		}
		cut := strings.Index(l, `,"curr_hash":"`)
		rest := l[cut+len(`,"curr_hash":"`)+64:] // ","hmac":"...."}
		body := l[:cut]
		body = body[:strings.Index(body, `"prev_hash":"`)+len(`"prev_hash":"`)] + prev + body[strings.Index(body, `"prev_hash":"`)+len(`"prev_hash":"`)+len(prevOf(body)):]
		s := sha256.Sum256([]byte(prev + body + "}"))
		prev = hex.EncodeToString(s[:])
		lines[i] = body + `,"curr_hash":"` + prev + rest
	}
	require.NoError(t, os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	r = runKvgate(t, env, "verify")
	require.Equal(t, 0, r.code, "plain chain is consistent: %s", r.stderr)
	r = runKvgate(t, env, "verify", "--fs-key-file", keyFile)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "fs_bad_mac")
	assert.Contains(t, r.stderr, "kv_cache.log:6:")

	bad := writeFile(t, filepath.Join(t.TempDir(), "bad.key"), "kvh-fs1:abc:1:60\n")
	hmacFile := writeFile(t, filepath.Join(t.TempDir(), "hmac.key"), "secret")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"verify", "--fs-key", "kvh-fs1:nothex"}, "forward-secure key"},
		{[]string{"verify", "--fs-key-file", bad}, "64 lowercase hex"},
		{[]string{"verify", "--fs-key", "PRIVATE+KEY+x"}, "does not start with"},
		{[]string{"verify", "--fs-key-file", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"verify", "--fs-key", key, "--fs-key-file", keyFile}, "exclusive"},
		{[]string{"verify", "--fs-key", key, "--hmac-key-file", hmacFile}, "exclusive"},
		{[]string{"verify", "--fs-key", key, "--fs-now", "tomorrow"}, "--fs-now"},
		{[]string{"verify", "--fs-now", "now"}, "need --fs-key"},
		{[]string{"verify", "--fs-key", key, "--max-rotated", "0"}, "--fs-state"},
	} {
		r := runKvgate(t, env, tc.args...)
		assert.Equal(t, 1, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg, tc.args)
	}
	_ = state
}

// prevOf returns the prev_hash value inside a canonical record body.
func prevOf(body string) string {
	i := strings.Index(body, `"prev_hash":"`) + len(`"prev_hash":"`)
	return body[i : i+strings.IndexByte(body[i:], '"')]
}

func TestVerifyFSRetention(t *testing.T) {
	// keygen an hour ago with 1 minute epochs: Open seals 60 empty epochs
	dir, state, keyFile := fsLog(t, time.Now().Add(-time.Hour), "1m", 1500)
	env := []string{"LOG_DIR=" + dir, "VERDICT_OUT=" + filepath.Join(t.TempDir(), "verdict.json")}
	r := runKvgate(t, env, "verify", "--fs-key-file", keyFile, "--fs-now", "now", "--max-rotated", "1", "--fs-state", state)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"removed"`)
	r = runKvgate(t, env, "verify", "--fs-key-file", keyFile, "--fs-now", "now")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"pruned"`)
}
