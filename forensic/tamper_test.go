package forensic

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// verifyBytes runs the file verifier over data held in memory.
func verifyBytes(data []byte, key []byte) *Result {
	v := newVerifier(VerifyOptions{HMACKey: key})
	v.verifyReader(bytes.NewReader(data), 4096, "mem", "mem", 0, "GENESIS")
	v.res.OK = len(v.res.Failures) == 0
	return v.res
}

// sampleLog writes n records (HMAC) and returns the file bytes.
func sampleLog(t testing.TB, n int) (string, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: testKey})
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		require.NoError(t, w.Append("sanitize_end", Field{"handle", "h"}, Field{"coverage_pct", 99.95}, Field{"tiny", 1e-7},
			Field{"tenant_id", "tén"}, Field{"details", map[string]any{"seq": i, "k": []any{"x\u2028"}}}))
	}
	require.NoError(t, w.Close())
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return p, b
}

func firstFailure(t testing.TB, r *Result) Failure {
	t.Helper()
	require.False(t, r.OK, "tamper not detected")
	require.NotEmpty(t, r.Failures)
	return r.Failures[0]
}

// TestTamperEveryBitFlip flips every bit of a small log: each flip is
// detected at the line holding the flipped byte.
func TestTamperEveryBitFlip(t *testing.T) {
	_, data := sampleLog(t, 3)
	requireEveryBitFlipDetected(t, data)
}

// requireEveryBitFlipDetected flips every bit of a log that verifies and
// requires a failure at the line holding the flipped byte.
func requireEveryBitFlipDetected(t *testing.T, data []byte) {
	t.Helper()
	require.True(t, verifyBytes(data, testKey).OK)
	buf := make([]byte, len(data))
	for i := range data {
		want := bytes.Count(data[:i], []byte{'\n'})
		for bit := 0; bit < 8; bit++ {
			copy(buf, data)
			buf[i] ^= 1 << bit
			f := firstFailure(t, verifyBytes(buf, testKey))
			require.Equal(t, want, f.Line, "byte %d bit %d (%q): %+v", i, bit, data[i], f)
		}
	}
}

// TestTamperEveryBitFlipSeedLayout is the same on the seed's layout, which
// the verifier projects before hashing (transcode.go) and hands to the
// parser when the projection does not hash right.
func TestTamperEveryBitFlipSeedLayout(t *testing.T) {
	p, _ := sampleLog(t, 3)
	seed := filepath.Join(t.TempDir(), "seed.log")
	require.NoError(t, toSeedLayout(p, seed))
	data, err := os.ReadFile(seed)
	require.NoError(t, err)
	requireEveryBitFlipDetected(t, data)
}

func TestTamperTruncation(t *testing.T) {
	e := newCPEnv(t)
	w, err := Open(e.opts(0))
	require.NoError(t, err)
	writeN(t, w, 8)
	require.NoError(t, w.Close())
	data, err := os.ReadFile(e.log)
	require.NoError(t, err)
	ends := []int{0}
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	for k := 0; k < len(ends)-1; k++ {
		// at a line boundary: only the checkpoint can tell
		require.NoError(t, os.WriteFile(e.log, data[:ends[k]], 0o600))
		res, err := VerifyAll(e.log, VerifyOptions{HMACKey: testKey})
		require.NoError(t, err)
		require.True(t, res.OK, "a prefix of a chain is a valid chain")
		res, err = VerifyAll(e.log, e.vopts())
		require.NoError(t, err)
		f := firstFailure(t, res)
		require.Equal(t, ReasonTruncated, f.Reason)
		require.Equal(t, k, f.Line)
		// mid-line
		mid := ends[k] + (ends[k+1]-ends[k])/2
		require.NoError(t, os.WriteFile(e.log, data[:mid], 0o600))
		res, err = VerifyAll(e.log, VerifyOptions{HMACKey: testKey})
		require.NoError(t, err)
		f = firstFailure(t, res)
		require.Equal(t, ReasonMalformed, f.Reason)
		require.Equal(t, k, f.Line)
	}
}

func TestTamperLines(t *testing.T) {
	_, data := sampleLog(t, 6)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }
	for i := range lines {
		del := append(append([]string{}, lines[:i]...), lines[i+1:]...)
		if i < len(lines)-1 { // deleting the last line is a truncation
			f := firstFailure(t, verifyBytes(join(del), testKey))
			require.Equal(t, i, f.Line, "delete %d", i)
		}
		dup := append(append([]string{}, lines[:i+1]...), lines[i:]...)
		f := firstFailure(t, verifyBytes(join(dup), testKey))
		require.Equal(t, i+1, f.Line, "duplicate %d", i)
		if i+1 < len(lines) {
			sw := append([]string{}, lines...)
			sw[i], sw[i+1] = sw[i+1], sw[i]
			f := firstFailure(t, verifyBytes(join(sw), testKey))
			require.Equal(t, i, f.Line, "swap %d", i)
		}
	}
}

// rechain rewrites a file's records (seed layout), applying mutate, and
// recomputes curr_hash and, when key != nil, hmac.
func rechain(t testing.TB, path string, key []byte, keepHMAC bool, mutate func(i int, m map[string]any)) {
	t.Helper()
	prev := "GENESIS"
	var out []string
	for i, l := range readLines(t, path) {
		m, err := parseLine([]byte(l))
		require.NoError(t, err)
		oldMac := m["hmac"]
		delete(m, "curr_hash")
		delete(m, "hmac")
		if _, ok := m["prev_hash"]; ok {
			m["prev_hash"] = prev
		}
		mutate(i, m)
		canon, err := Canonical(m)
		require.NoError(t, err)
		s := sha256.Sum256([]byte(prev + string(canon)))
		m["curr_hash"] = hex.EncodeToString(s[:])
		if key != nil {
			h := hmac.New(sha256.New, key)
			h.Write([]byte(prev + string(canon)))
			m["hmac"] = hex.EncodeToString(h.Sum(nil))
		} else if keepHMAC && oldMac != nil {
			m["hmac"] = oldMac
		}
		prev = m["curr_hash"].(string)
		line, err := Canonical(m)
		require.NoError(t, err)
		out = append(out, string(line))
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o600))
}

func TestTamperRechains(t *testing.T) {
	setHandle := func(target int) func(int, map[string]any) {
		return func(i int, m map[string]any) {
			if i == target {
				m["handle"] = "forged"
			}
		}
	}
	// HMACs stripped, plain chain recomputed: missing_hmac at line 0
	p, _ := sampleLog(t, 5)
	rechain(t, p, nil, false, setHandle(2))
	res, err := VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	f := firstFailure(t, res)
	require.Equal(t, ReasonMissingHMAC, f.Reason)
	require.Equal(t, 0, f.Line)
	require.True(t, seedVerify(t, p, testKey), "the seed accepts HMAC-stripped logs (the weakness we close)")

	// chain recomputed without the key, old HMACs kept: bad_hmac at the edited line
	p, _ = sampleLog(t, 5)
	rechain(t, p, nil, true, setHandle(3))
	res, err = VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	f = firstFailure(t, res)
	require.Equal(t, ReasonBadHMAC, f.Reason)
	require.Equal(t, 3, f.Line)

	// full rewrite with the HMAC key: only the signed checkpoint catches it
	e := newCPEnv(t)
	w, err := Open(e.opts(0))
	require.NoError(t, err)
	writeN(t, w, 10)
	require.NoError(t, w.Close())
	rechain(t, e.log, testKey, false, setHandle(4))
	res, err = VerifyAll(e.log, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "an HMAC key holder can rewrite the chain")
	res, err = VerifyAll(e.log, e.vopts())
	require.NoError(t, err)
	f = firstFailure(t, res)
	require.Equal(t, ReasonCheckpointMismatch, f.Reason)
	require.Equal(t, "kv_cache.log", f.File)
	require.GreaterOrEqual(t, f.Line, 4)
}

func TestTamperRotatedFiles(t *testing.T) {
	mk := func() (string, []logFile) {
		p := filepath.Join(t.TempDir(), "kv_cache.log")
		files := rotatedSet(t, Options{Path: p, HMACKey: testKey, MaxBytes: 2500}, 30)
		require.Greater(t, len(files), 4)
		return p, files
	}
	// middle rotated file deleted without prune
	p, files := mk()
	require.NoError(t, os.Remove(files[1].path))
	res, err := VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	f := firstFailure(t, res)
	require.Equal(t, files[2].name, f.File)
	require.Equal(t, 0, f.Line)
	require.Contains(t, []string{ReasonSeqGap, ReasonRotationLink}, f.Reason)
	var reasons []string
	for _, x := range res.Failures {
		reasons = append(reasons, x.Reason)
	}
	require.Contains(t, reasons, ReasonRotationLink)

	// oldest rotated file deleted without prune
	p, files = mk()
	require.NoError(t, os.Remove(files[0].path))
	res, err = VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	f = firstFailure(t, res)
	require.Equal(t, ReasonRotationLink, f.Reason)
	require.Equal(t, files[1].name, f.File)
	require.Equal(t, 0, f.Line)

	// tampered rotate record, rechained with the key: the link breaks
	p, files = mk()
	rechain(t, files[2].path, testKey, false, func(i int, m map[string]any) {
		if i == 0 {
			m["prev_file_last_hash"] = strings.Repeat("0", 64)
		}
	})
	res, err = VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	f = firstFailure(t, res)
	require.Equal(t, ReasonRotationLink, f.Reason)
	require.Equal(t, files[2].name, f.File)
	require.Equal(t, 0, f.Line)
	// ... and without the key: bad_hmac on that rotate record
	p, files = mk()
	rechain(t, files[3].path, nil, true, func(i int, m map[string]any) {
		if i == 0 {
			m["prev_file"] = "kv_cache-1-000000000001.log"
		}
	})
	res, err = VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	f = firstFailure(t, res)
	require.Equal(t, ReasonBadHMAC, f.Reason)
	require.Equal(t, files[3].name, f.File)
	require.Equal(t, 0, f.Line)

	// a rotated file renamed out of the set leaves the next file missing its link
	p, files = mk()
	require.NoError(t, os.Rename(files[len(files)-2].path, files[len(files)-2].path+".hidden"))
	res, err = VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	f = firstFailure(t, res)
	require.Equal(t, "kv_cache.log", f.File)
}

func TestMalformedLinesNeverPanic(t *testing.T) {
	for _, s := range []string{"{", "[]", "null", "{\"a\":1}x", "\xff\xfe", "{\"curr_hash\":5}", `{"a":NaN}`, strings.Repeat("[", 100000)} {
		r := verifyBytes([]byte(s+"\n"), nil)
		require.False(t, r.OK, s)
		require.Equal(t, 0, r.Failures[0].Line)
	}
}

func FuzzVerify(f *testing.F) {
	_, data := sampleLog(f, 2)
	f.Add(data)
	f.Add([]byte("{}\n"))
	// the seed's layout (projected, then parsed when the projection does not hash right)
	seed, err := os.ReadFile(filepath.Join(compatRoot(), "hmac", "kv_cache.log"))
	require.NoError(f, err)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := verifyBytes(b, testKey)
		if !bytes.Equal(b, data) && len(bytes.TrimSpace(b)) > 0 {
			require.False(t, r.OK && r.Records > 0 && !bytes.Contains(b, []byte("hmac")))
		}
	})
}
