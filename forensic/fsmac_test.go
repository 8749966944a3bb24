package forensic

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is an injectable clock for epoch tests (no sleeps).
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fsEnv is a log directory with a forward-secure key whose epoch 0 starts
// at t0 (epochs of one minute).
type fsEnv struct {
	dir, log, state, key string
	clock                *fakeClock
	t0                   time.Time
}

var fsT0 = time.Unix(1_700_000_000, 0)

func newFSEnv(t *testing.T) *fsEnv {
	t.Helper()
	dir := t.TempDir()
	e := &fsEnv{dir: dir, log: filepath.Join(dir, "kv_cache.log"), state: filepath.Join(dir, "fs.state"),
		clock: &fakeClock{t: fsT0.Add(10 * time.Second)}, t0: fsT0}
	var err error
	e.key, err = GenerateFSKey(e.state, time.Minute, fsT0)
	require.NoError(t, err)
	return e
}

func (e *fsEnv) opts() Options {
	return Options{Path: e.log, FSStatePath: e.state, FSClock: e.clock.Now, Fsync: FsyncNone}
}

func (e *fsEnv) open(t *testing.T, mod func(*Options)) *Writer {
	t.Helper()
	o := e.opts()
	if mod != nil {
		mod(&o)
	}
	w, err := Open(o)
	require.NoError(t, err)
	return w
}

func (e *fsEnv) verify(t *testing.T, now time.Time) *Result {
	t.Helper()
	r, err := VerifyAll(e.log, VerifyOptions{FSVerifyKey: e.key, FSNow: now})
	require.NoError(t, err)
	return r
}

func reasons(r *Result) []string {
	var out []string
	for _, f := range r.Failures {
		out = append(out, f.Reason)
	}
	return out
}

// allRecords returns every record of the log set, oldest first.
func allRecords(t *testing.T, log string) []map[string]any {
	t.Helper()
	files, err := listFiles(log)
	require.NoError(t, err)
	var out []map[string]any
	for _, lf := range files {
		for _, l := range readLines(t, lf.path) {
			m, err := parseLine([]byte(l))
			require.NoError(t, err)
			out = append(out, m)
		}
	}
	return out
}

func sealEpochs(t *testing.T, recs []map[string]any) []uint64 {
	var out []uint64
	for _, m := range recs {
		if getString(m, "event_type") == "seal" {
			from, ok := getUint(m, "sealed_from")
			require.True(t, ok)
			to, ok := getUint(m, "sealed_to")
			require.True(t, ok)
			for e := from; e <= to; e++ {
				out = append(out, e)
			}
		}
	}
	return out
}

func TestFSRoundTripWithEmptyEpochsAndRotation(t *testing.T) {
	e := newFSEnv(t)
	w := e.open(t, func(o *Options) { o.MaxBytes = 3000 })
	writeN(t, w, 5) // epoch 0
	require.NoError(t, w.Flush())
	e.clock.Add(time.Minute)
	writeN(t, w, 12) // epoch 1, rotates
	require.NoError(t, w.Flush())
	e.clock.Add(3 * time.Minute)
	writeN(t, w, 2) // epoch 4; epochs 2 and 3 are empty
	require.NoError(t, w.Flush())
	require.NoError(t, w.Close())
	require.Greater(t, w.Stats().Rotations, uint64(0))

	recs := allRecords(t, e.log)
	assert.Equal(t, []uint64{0, 1, 2, 3}, sealEpochs(t, recs))
	perEpoch := map[uint64]int{}
	for _, m := range recs {
		if getString(m, "event_type") == "write" {
			fse, _ := getUint(m, "fse")
			perEpoch[fse]++
		}
	}
	assert.Equal(t, map[uint64]int{0: 5, 1: 12, 4: 2}, perEpoch, "epochs 2 and 3 are empty")
	var last uint64
	for _, m := range recs {
		fse, ok := getUint(m, "fse")
		require.True(t, ok, "every record carries its epoch")
		assert.GreaterOrEqual(t, fse, last)
		last = fse
		assert.True(t, strings.HasPrefix(getString(m, "kid"), "fs:"))
		assert.NotEmpty(t, getString(m, "hmac"))
	}
	assert.Equal(t, uint64(4), last)

	r := e.verify(t, time.Time{})
	require.True(t, r.OK, "%+v", r.Failures)
	assert.Equal(t, len(recs), r.Records)
	// fresh as of now (epoch 4): epochs 0..2 must be sealed, and are
	r = e.verify(t, e.clock.Now())
	require.True(t, r.OK, "%+v", r.Failures)
	// ten minutes later with no writer running: stale
	r = e.verify(t, e.clock.Now().Add(10*time.Minute))
	require.False(t, r.OK)
	assert.Equal(t, []string{ReasonFSStale}, reasons(r))
	// the hash chain is unchanged: the seed's plain algorithm accepts it
	files, err := listFiles(e.log)
	require.NoError(t, err)
	for _, lf := range files {
		assert.True(t, seedVerify(t, lf.path, nil), lf.name)
	}
	// a wrong key fails every record
	other := filepath.Join(t.TempDir(), "other.state")
	otherKey, err := GenerateFSKey(other, time.Minute, fsT0)
	require.NoError(t, err)
	r, err = VerifyAll(e.log, VerifyOptions{FSVerifyKey: otherKey})
	require.NoError(t, err)
	require.False(t, r.OK)
	assert.Equal(t, ReasonFSBadMAC, r.Failures[0].Reason)
	assert.Contains(t, r.Failures[0].Detail, "kid fs:")
	// without the key the chain still verifies (hashes), as any log
	r, err = VerifyAll(e.log, VerifyOptions{})
	require.NoError(t, err)
	assert.True(t, r.OK)
	// VerifyChain on the active file alone: starts mid-log, OK
	r, err = VerifyChain(e.log, VerifyOptions{FSVerifyKey: e.key})
	require.NoError(t, err)
	assert.True(t, r.OK, "%+v", r.Failures)
}

func TestFSPipelineBatches(t *testing.T) {
	e := newFSEnv(t)
	w := e.open(t, func(o *Options) { o.MaxBytes = 40_000 })
	var wg sync.WaitGroup
	for round := 0; round < 3; round++ {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 300; i++ {
					require.NoError(t, w.Append("sanitize_end", Field{"handle", fmt.Sprintf("g%d-%d", g, i)}, Field{"coverage_pct", 99.5}))
				}
			}(g)
		}
		wg.Wait()
		require.NoError(t, w.Flush())
		e.clock.Add(time.Minute)
	}
	require.NoError(t, w.Close())
	require.Greater(t, w.pipelined.Load(), uint64(0), "the pipeline was not exercised")
	r := e.verify(t, e.clock.Now())
	require.True(t, r.OK, "%+v", r.Failures)
	assert.Equal(t, []uint64{0, 1, 2}, sealEpochs(t, allRecords(t, e.log)))
}

// stolenKey returns the epoch and key held by a copy of the state file.
func stolenKey(t *testing.T, copyPath string) (uint64, [32]byte) {
	b, err := os.ReadFile(copyPath)
	require.NoError(t, err)
	s, err := decodeFSState(b)
	require.NoError(t, err)
	return s.epoch, s.key
}

func keyFrom(k [32]byte, from, to uint64) [32]byte {
	for e := from; e < to; e++ {
		fsEvolve(&k, e)
	}
	return k
}

// forge rewrites the active log (a single file) as an attacker holding the
// key of epoch stolenE: it keeps records [0, keep), then appends extra,
// recomputing curr_hash for everything from the first change and an hmac
// with the stolen (evolved) key wherever the record's epoch allows it.
func forge(t *testing.T, path string, stolenE uint64, stolen [32]byte, keep int, mutate func(i int, m map[string]any), extra []map[string]any) {
	t.Helper()
	lines := readLines(t, path)
	var out []string
	prev := "GENESIS"
	dirty := false
	emit := func(m map[string]any, changed bool) {
		if !changed && !dirty {
			out = append(out, lines[len(out)])
			prev = getString(m, "curr_hash")
			return
		}
		dirty = true
		delete(m, "curr_hash")
		delete(m, "hmac")
		m["prev_hash"] = prev
		canon, err := Canonical(m)
		require.NoError(t, err)
		s := sha256.Sum256([]byte(prev + string(canon)))
		m["curr_hash"] = hex.EncodeToString(s[:])
		if fse, _ := getUint(m, "fse"); fse >= stolenE {
			k := keyFrom(stolen, stolenE, fse)
			h := hmac.New(sha256.New, k[:])
			h.Write([]byte(prev + string(canon)))
			m["hmac"] = hex.EncodeToString(h.Sum(nil))
		} else {
			m["hmac"] = strings.Repeat("0", 64) // cannot compute it
		}
		prev = m["curr_hash"].(string)
		line, err := Canonical(m)
		require.NoError(t, err)
		out = append(out, string(line))
	}
	for i := 0; i < keep; i++ {
		m, err := parseLine([]byte(lines[i]))
		require.NoError(t, err)
		changed := false
		if mutate != nil {
			before, _ := Canonical(m)
			mutate(i, m)
			after, _ := Canonical(m)
			changed = !bytes.Equal(before, after)
		}
		emit(m, changed)
	}
	seq := uint64(0)
	if keep > 0 {
		m, _ := parseLine([]byte(out[len(out)-1]))
		seq, _ = getUint(m, "seq")
		seq++
	}
	for _, m := range extra {
		m["seq"] = seq
		seq++
		emit(m, true)
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o600))
}

func fakeRecord(ev string, fse uint64, extra ...any) map[string]any {
	m := map[string]any{"event_type": ev, "fse": fse, "kid": "fs:x", "schema": 1, "ts": 1.8e9, "trace_id": "t"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

// indexOfEpoch returns the index of the first record whose epoch is >= e.
func indexOfEpoch(t *testing.T, path string, e uint64) int {
	for i, l := range readLines(t, path) {
		m, err := parseLine([]byte(l))
		require.NoError(t, err)
		if fse, _ := getUint(m, "fse"); fse >= e {
			return i
		}
	}
	return -1
}

func TestFSForwardSecurity(t *testing.T) {
	// the honest log: records in epochs 0..5, the state is copied in epoch 3
	e := newFSEnv(t)
	w := e.open(t, nil)
	stolenPath := filepath.Join(t.TempDir(), "stolen.state")
	for ep := 0; ep < 6; ep++ {
		writeN(t, w, 3)
		require.NoError(t, w.Flush())
		if ep == 3 {
			b, err := os.ReadFile(e.state)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(stolenPath, b, 0o600))
		}
		e.clock.Add(time.Minute)
	}
	require.NoError(t, w.Close())
	now := e.clock.Now()
	require.True(t, e.verify(t, now).OK)
	stolenE, stolen := stolenKey(t, stolenPath)
	require.Equal(t, uint64(3), stolenE)
	honest, err := os.ReadFile(e.log)
	require.NoError(t, err)
	restore := func() { require.NoError(t, os.WriteFile(e.log, honest, 0o600)) }
	n := len(readLines(t, e.log))
	target := indexOfEpoch(t, e.log, 1) + 1 // a write record of epoch 1

	cases := []struct {
		name   string
		keep   int
		mutate func(i int, m map[string]any)
		extra  func() []map[string]any
		now    time.Time
		want   string
	}{
		{"rewrite a record of epoch 1 and rechain", n, func(i int, m map[string]any) {
			if i == target {
				m["handle"] = "forged"
			}
		}, nil, time.Time{}, ReasonFSBadMAC},
		{"relabel a record of epoch 1 as epoch 3", n, func(i int, m map[string]any) {
			if i == target {
				m["handle"], m["fse"] = "forged", uint64(3)
			}
		}, nil, time.Time{}, ReasonFSBadMAC},
		{"truncate to epoch 1, append with the stolen key", indexOfEpoch(t, e.log, 1) + 2, nil, func() []map[string]any {
			return []map[string]any{fakeRecord("free", 3, "handle", "h"), fakeRecord("free", 3, "handle", "i")}
		}, time.Time{}, ReasonFSMissingSeal},
		{"truncate to epoch 1, forge seals 1 and 2 with the stolen key", indexOfEpoch(t, e.log, 1) + 2, nil, func() []map[string]any {
			return []map[string]any{fakeRecord("seal", 1, "sealed_from", 1, "sealed_to", 1),
				fakeRecord("seal", 2, "sealed_from", 2, "sealed_to", 2), fakeRecord("free", 3, "handle", "h")}
		}, time.Time{}, ReasonFSBadMAC},
		{"truncate to epoch 1, forge one range seal in epoch 3", indexOfEpoch(t, e.log, 1) + 2, nil, func() []map[string]any {
			return []map[string]any{fakeRecord("seal", 3, "sealed_from", 1, "sealed_to", 2), fakeRecord("free", 3, "handle", "h")}
		}, time.Time{}, ReasonFSEpochOrder},
		{"truncate to epoch 1, append nothing, verified as of now", indexOfEpoch(t, e.log, 1) + 2, nil, nil, now, ReasonFSStale},
		{"rewrite everything as epoch 3", n, func(i int, m map[string]any) { m["fse"] = uint64(3) }, nil, time.Time{}, ReasonFSMissingSeal},
		{"drop the seal of epoch 2", n, func(i int, m map[string]any) {
			if getString(m, "event_type") == "seal" && m["sealed_from"] != nil {
				if f, _ := getUint(m, "sealed_from"); f == 2 {
					m["event_type"] = "free"
				}
			}
		}, nil, time.Time{}, ReasonFSBadMAC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer restore()
			var extra []map[string]any
			if tc.extra != nil {
				extra = tc.extra()
			}
			forge(t, e.log, stolenE, stolen, tc.keep, tc.mutate, extra)
			r := e.verify(t, tc.now)
			require.False(t, r.OK, "forgery not detected")
			assert.Contains(t, reasons(r), tc.want, "%+v", r.Failures)
			// the plain hash chain alone is satisfied by the forgery
			plain, err := VerifyAll(e.log, VerifyOptions{})
			require.NoError(t, err)
			assert.True(t, plain.OK, "%+v", plain.Failures)
		})
	}
	// the same truncation without anything appended is invisible without
	// FSNow (documented): it looks like a writer that stopped in epoch 1
	forge(t, e.log, stolenE, stolen, indexOfEpoch(t, e.log, 1)+2, nil, nil)
	assert.True(t, e.verify(t, time.Time{}).OK)
	restore()
}

func TestFSOldKeyErased(t *testing.T) {
	e := newFSEnv(t)
	_, k0 := stolenKey(t, e.state)
	st0, err := os.Stat(e.state)
	require.NoError(t, err)
	w := e.open(t, nil)
	writeN(t, w, 2)
	e.clock.Add(2 * time.Minute)
	writeN(t, w, 1)
	require.NoError(t, w.Flush())

	b, err := os.ReadFile(e.state)
	require.NoError(t, err)
	require.Len(t, b, fsStateSize)
	k1 := keyFrom(k0, 0, 1)
	k2 := keyFrom(k0, 0, 2)
	assert.False(t, bytes.Contains(b, k0[:]), "k_0 still in the state file")
	assert.False(t, bytes.Contains(b, k1[:]), "k_1 still in the state file")
	assert.True(t, bytes.Contains(b, k2[:]), "k_2 is the current key")
	assert.Equal(t, k2, w.fs.key, "in-memory key is the current one")
	st1, err := os.Stat(e.state)
	require.NoError(t, err)
	assert.Equal(t, st0.Sys().(*syscall.Stat_t).Ino, st1.Sys().(*syscall.Stat_t).Ino, "the key is overwritten in place")
	assert.Equal(t, os.FileMode(0o600), st1.Mode().Perm())
	require.NoError(t, w.Close())
	assert.Equal(t, [32]byte{}, w.fs.key, "key zeroed on Close")
	assert.NotContains(t, e.key, hex.EncodeToString(k2[:]))
}

func TestFSRestartSealsSkippedEpochs(t *testing.T) {
	e := newFSEnv(t)
	w := e.open(t, nil)
	writeN(t, w, 2)
	require.NoError(t, w.Close())
	pre, err := os.ReadFile(e.state) // state at epoch 0
	require.NoError(t, err)

	e.clock.Add(5 * time.Minute) // downtime: epochs 0..4 ended
	r := e.verify(t, e.clock.Now())
	assert.Contains(t, reasons(r), ReasonFSStale, "a stopped writer is stale")

	w = e.open(t, nil)
	require.NoError(t, w.Close())
	recs := allRecords(t, e.log)
	assert.Equal(t, []uint64{0, 1, 2, 3, 4}, sealEpochs(t, recs))
	assert.Equal(t, "seal", getString(recs[len(recs)-1], "event_type"), "Open seals before anything else")
	r = e.verify(t, e.clock.Now())
	require.True(t, r.OK, "%+v", r.Failures)

	// crash after the seals were fsynced but before the state evolved:
	// Open finishes the evolution from the log's last seal
	require.NoError(t, os.WriteFile(e.state, pre, 0o600))
	w = e.open(t, nil)
	writeN(t, w, 1)
	require.NoError(t, w.Close())
	assert.Equal(t, []uint64{0, 1, 2, 3, 4}, sealEpochs(t, allRecords(t, e.log)), "no duplicate seals")
	r = e.verify(t, e.clock.Now())
	require.True(t, r.OK, "%+v", r.Failures)
	ep, _ := stolenKey(t, e.state)
	assert.Equal(t, uint64(5), ep)

	// the last record is an ordinary record of a later epoch (a crash after
	// a rotation inside the sealing): accepted when it verifies with the
	// evolved key, refused when it does not
	require.NoError(t, os.WriteFile(e.state, pre, 0o600))
	lines := readLines(t, e.log)
	last := lines[len(lines)-1]
	i := strings.Index(last, `"hmac":"`) + len(`"hmac":"`)
	forged := last[:i] + strings.Repeat("0", 64) + last[i+64:]
	require.NoError(t, os.WriteFile(e.log, []byte(strings.Join(append(lines[:len(lines)-1], forged), "\n")+"\n"), 0o600))
	_, err = Open(e.opts())
	assert.ErrorContains(t, err, "does not verify")
	require.NoError(t, os.WriteFile(e.log, []byte(strings.Join(append(lines[:len(lines)-1], last), "\n")+"\n"), 0o600))
	w = e.open(t, nil)
	require.NoError(t, w.Close())
	ep, _ = stolenKey(t, e.state)
	assert.Equal(t, uint64(5), ep)
	r = e.verify(t, e.clock.Now())
	require.True(t, r.OK, "%+v", r.Failures)
}

func TestFSLongDowntimeRangeSeal(t *testing.T) {
	e := newFSEnv(t)
	w := e.open(t, nil)
	writeN(t, w, 1)
	require.NoError(t, w.Close())
	e.clock.Add((fsSealEach + 500) * time.Minute)
	w = e.open(t, nil)
	writeN(t, w, 1)
	require.NoError(t, w.Close())
	recs := allRecords(t, e.log)
	seals := 0
	for _, m := range recs {
		if getString(m, "event_type") == "seal" {
			seals++
		}
	}
	assert.Equal(t, 1, seals, "one range seal for a long gap")
	assert.Len(t, sealEpochs(t, recs), fsSealEach+500)
	r := e.verify(t, e.clock.Now())
	require.True(t, r.OK, "%+v", r.Failures)
}

func TestFSOpenErrors(t *testing.T) {
	e := newFSEnv(t)
	_, err := Open(Options{Path: e.log, FSStatePath: e.state, HMACKey: []byte("k")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exclusive")

	_, err = Open(Options{Path: e.log, FSStatePath: filepath.Join(e.dir, "missing.state")})
	require.ErrorIs(t, err, ErrFSState)
	assert.Contains(t, err.Error(), "fs-keygen")

	good, err := os.ReadFile(e.state)
	require.NoError(t, err)
	corrupt := filepath.Join(e.dir, "corrupt.state")
	bad := append([]byte(nil), good...)
	bad[fsOffKey] ^= 1
	require.NoError(t, os.WriteFile(corrupt, bad, 0o600))
	_, err = Open(Options{Path: e.log, FSStatePath: corrupt})
	require.ErrorIs(t, err, ErrFSState)
	assert.Contains(t, err.Error(), "checksum")
	require.NoError(t, os.WriteFile(corrupt, good[:50], 0o600))
	_, err = Open(Options{Path: e.log, FSStatePath: corrupt})
	assert.ErrorContains(t, err, "size 50")
	require.NoError(t, os.WriteFile(corrupt, []byte(e.key), 0o600))
	_, err = Open(Options{Path: e.log, FSStatePath: corrupt})
	assert.ErrorContains(t, err, "verification key, not a writer state")

	link := filepath.Join(e.dir, "link.state")
	require.NoError(t, os.Symlink(e.state, link))
	_, err = Open(Options{Path: e.log, FSStatePath: link})
	assert.ErrorContains(t, err, "symbolic link")
	_, err = GenerateFSKey(link, time.Minute, time.Time{})
	assert.ErrorIs(t, err, ErrSymlink)
	_, err = GenerateFSKey(e.state, time.Minute, time.Time{})
	assert.ErrorContains(t, err, "refusing to overwrite")
	for _, d := range []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 400 * 24 * time.Hour} {
		_, err = GenerateFSKey(filepath.Join(e.dir, "x.state"), d, time.Time{})
		assert.ErrorContains(t, err, "whole seconds", "%v", d)
	}

	// a forward-secure log with a plain writer, a plain log with an FS
	// writer, the wrong state file, a state in use by another writer
	w := e.open(t, nil)
	writeN(t, w, 1)
	w2, err := Open(Options{Path: filepath.Join(e.dir, "other.log"), FSStatePath: e.state})
	if err == nil {
		w2.Close()
	}
	assert.ErrorContains(t, err, "in use")
	require.NoError(t, w.Close())
	_, err = Open(Options{Path: e.log})
	assert.ErrorContains(t, err, "forward-secure mode")
	_, err = Open(Options{Path: e.log, HMACKey: []byte("k")})
	assert.ErrorContains(t, err, "forward-secure mode")

	other := filepath.Join(e.dir, "other.state")
	_, err = GenerateFSKey(other, time.Minute, fsT0)
	require.NoError(t, err)
	_, err = Open(Options{Path: e.log, FSStatePath: other, FSClock: e.clock.Now})
	require.ErrorIs(t, err, ErrFSState)
	assert.ErrorContains(t, err, "wrong state file")

	plain := filepath.Join(e.dir, "plain.log")
	pw, err := Open(Options{Path: plain})
	require.NoError(t, err)
	writeN(t, pw, 1)
	require.NoError(t, pw.Close())
	_, err = Open(Options{Path: plain, FSStatePath: other, FSClock: e.clock.Now})
	assert.ErrorContains(t, err, "no forward-secure epoch")

	// the state file is ahead of the log (log truncated by someone): refused
	e.clock.Add(3 * time.Minute)
	w = e.open(t, nil)
	require.NoError(t, w.Close())
	lines := readLines(t, e.log)
	require.NoError(t, os.WriteFile(e.log, []byte(lines[0]+"\n"), 0o600))
	_, err = Open(e.opts())
	assert.ErrorContains(t, err, "seals for epochs")
}

func TestFSVerifyOptionErrors(t *testing.T) {
	e := newFSEnv(t)
	w := e.open(t, nil)
	writeN(t, w, 1)
	require.NoError(t, w.Close())
	for _, fn := range []func(string, VerifyOptions) (*Result, error){VerifyAll, VerifyChain} {
		_, err := fn(e.log, VerifyOptions{FSVerifyKey: e.key, HMACKey: []byte("k")})
		assert.ErrorContains(t, err, "exclusive")
		_, err = fn(e.log, VerifyOptions{FSNow: time.Now()})
		assert.ErrorContains(t, err, "without FSVerifyKey")
		_, err = fn(e.log, VerifyOptions{FSVerifyKey: "kvh-fs1:zz:1:60"})
		assert.ErrorContains(t, err, "64 lowercase hex")
	}
	_, err := VerifyIncremental(e.log, VerifyOptions{FSVerifyKey: "nope", CheckpointDir: e.dir, PublicKey: "x"})
	assert.ErrorContains(t, err, "forward-secure key")
	// a static-key verifier on an FS log: bad_hmac, not a crash
	r, err := VerifyAll(e.log, VerifyOptions{HMACKey: []byte("k")})
	require.NoError(t, err)
	assert.Contains(t, reasons(r), ReasonBadHMAC)
}

func TestFSPruneAndCheckpoints(t *testing.T) {
	e := newFSEnv(t)
	cpDir := filepath.Join(e.dir, "cp")
	signer, verifier, err := GenerateKey("host")
	require.NoError(t, err)
	keyPath := filepath.Join(e.dir, "host.key")
	require.NoError(t, os.WriteFile(keyPath, []byte(signer), 0o600))
	mod := func(o *Options) { o.MaxBytes = 2500; o.CheckpointDir = cpDir; o.CheckpointKeyPath = keyPath }
	w := e.open(t, mod)
	for ep := 0; ep < 3; ep++ {
		writeN(t, w, 8)
		e.clock.Add(time.Minute)
	}
	require.NoError(t, w.Close())
	vo := VerifyOptions{FSVerifyKey: e.key, FSNow: e.clock.Now(), CheckpointDir: cpDir, PublicKey: verifier}
	r, err := VerifyAll(e.log, vo)
	require.NoError(t, err)
	require.True(t, r.OK, "%+v", r.Failures)
	require.NotZero(t, r.CheckpointSize)

	_, err = Prune(e.log, PruneOptions{MaxRotated: 1})
	assert.ErrorContains(t, err, "forward-secure mode", "a prune record needs the FS state")
	w = e.open(t, mod)
	rep, err := w.Prune(PruneOptions{MaxRotated: 1})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Removed)
	require.NoError(t, w.Close())
	r, err = VerifyAll(e.log, vo)
	require.NoError(t, err)
	require.True(t, r.OK, "%+v", r.Failures)
	require.NotEmpty(t, r.Pruned)
	r, err = VerifyIncremental(e.log, vo)
	require.NoError(t, err)
	require.True(t, r.OK, "%+v", r.Failures)
}

func TestParseFSKey(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	good := "kvh-fs1:" + hex64 + ":1800000000:900"
	k, err := ParseFSKey("  " + good + "\n")
	require.NoError(t, err)
	assert.Equal(t, good, k.String())
	assert.Equal(t, 15*time.Minute, k.Epoch)
	assert.Equal(t, int64(1_800_000_000), k.Start.Unix())
	assert.Equal(t, uint64(0), k.EpochAt(k.Start.Add(-time.Hour)))
	assert.Equal(t, uint64(2), k.EpochAt(k.Start.Add(31*time.Minute)))
	assert.Len(t, k.ID(), 8)
	tests := []struct{ in, msg string }{
		{"", "does not start with"},
		{"KVHFSST1", "state file"},
		{"kvh-fs1:" + hex64 + ":1", "want 3 fields"},
		{"kvh-fs1:" + hex64 + ":1:2:3", "want 3 fields"},
		{"kvh-fs1:" + strings.ToUpper(hex64) + ":1:60", "lowercase hex"},
		{"kvh-fs1:" + hex64[:62] + ":1:60", "64 lowercase hex"},
		{"kvh-fs1:" + hex64 + ":-1:60", "start"},
		{"kvh-fs1:" + hex64 + ":01:60", "leading zero"},
		{"kvh-fs1:" + hex64 + ":99999999999999999999:60", "out of range"},
		{"kvh-fs1:" + hex64 + ":1:0", "at least 1"},
		{"kvh-fs1:" + hex64 + ":1:1.5", "epoch seconds"},
		{"kvh-fs1:" + hex64 + ":1:99999999", "out of range"},
		{"kvh-fs1:" + hex64 + ": 1:60", "start"},
	}
	for _, tc := range tests {
		_, err := ParseFSKey(tc.in)
		require.Error(t, err, tc.in)
		assert.Contains(t, err.Error(), tc.msg, tc.in)
	}
}

func FuzzParseFSKey(f *testing.F) {
	f.Add("kvh-fs1:" + strings.Repeat("0f", 32) + ":1800000000:900")
	f.Add("kvh-fs1:::")
	f.Add("kvh-fs1:" + strings.Repeat("0f", 32) + ":0:1")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseFSKey(s)
		if err != nil {
			return
		}
		// a parsed key round-trips and its schedule is sane
		k2, err := ParseFSKey(k.String())
		if err != nil || k2.String() != k.String() || k.Epoch < FSMinEpoch {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}

// TestFSIdleWriterSealsOnTime uses the real clock with one-second epochs:
// an idle writer (no Append, no Flush) seals the ending epoch by itself.
func TestFSIdleWriterSealsOnTime(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "fs.state")
	key, err := GenerateFSKey(state, time.Second, time.Now())
	require.NoError(t, err)
	log := filepath.Join(dir, "kv_cache.log")
	w, err := Open(Options{Path: log, FSStatePath: state})
	require.NoError(t, err)
	writeN(t, w, 1)
	require.NoError(t, w.Flush())
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(log); bytes.Contains(b, []byte(`"event_type":"seal"`)) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, w.Close())
	recs := allRecords(t, log)
	require.NotEmpty(t, sealEpochs(t, recs), "no seal written by the idle writer")
	r, err := VerifyAll(log, VerifyOptions{FSVerifyKey: key, FSNow: time.Now()})
	require.NoError(t, err)
	require.True(t, r.OK, "%+v", r.Failures)
}

// BenchmarkVerifyFS compares verification of the same number of records
// with a static HMAC key and with the forward-secure key (one epoch
// change every 1000 records), side by side.
func BenchmarkVerifyFS(b *testing.B) {
	const n = 20000
	dir := b.TempDir()
	static := filepath.Join(dir, "static", "kv_cache.log")
	w, err := Open(Options{Path: static, HMACKey: testKey, Fsync: FsyncNone, MaxBytes: 1 << 40})
	require.NoError(b, err)
	writeN(b, w, n)
	require.NoError(b, w.Close())

	state := filepath.Join(dir, "fs.state")
	key, err := GenerateFSKey(state, time.Minute, fsT0)
	require.NoError(b, err)
	clock := &fakeClock{t: fsT0}
	fsLog := filepath.Join(dir, "fs", "kv_cache.log")
	w, err = Open(Options{Path: fsLog, FSStatePath: state, FSClock: clock.Now, Fsync: FsyncNone, MaxBytes: 1 << 40})
	require.NoError(b, err)
	for i := 0; i < n/1000; i++ {
		writeN(b, w, 1000)
		require.NoError(b, w.Flush())
		clock.Add(time.Minute)
	}
	require.NoError(b, w.Close())

	for _, c := range []struct {
		name string
		path string
		o    VerifyOptions
	}{
		{"static-hmac", static, VerifyOptions{HMACKey: testKey}},
		{"forward-secure", fsLog, VerifyOptions{FSVerifyKey: key}},
	} {
		st, err := os.Stat(c.path)
		require.NoError(b, err)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(st.Size())
			for i := 0; i < b.N; i++ {
				r, err := VerifyAll(c.path, c.o)
				if err != nil || !r.OK {
					b.Fatalf("verify: %v %+v", err, r)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// rebuild rewrites a single-file log with the full key (k_0): records are
// transformed by edit, then re-chained and MACed honestly (a record whose
// "nomac" field is set gets no hmac). Only the epoch/seal structure can
// then fail.
func rebuild(t *testing.T, path string, k0 [32]byte, seq0 uint64, edit func([]map[string]any) []map[string]any) {
	t.Helper()
	var recs []map[string]any
	for _, l := range readLines(t, path) {
		m, err := parseLine([]byte(l))
		require.NoError(t, err)
		recs = append(recs, m)
	}
	recs = edit(recs)
	prev := "GENESIS"
	var out []string
	for i, m := range recs {
		delete(m, "curr_hash")
		delete(m, "hmac")
		nomac := m["nomac"] != nil
		delete(m, "nomac")
		m["prev_hash"], m["seq"] = prev, seq0+uint64(i)
		canon, err := Canonical(m)
		require.NoError(t, err)
		s := sha256.Sum256([]byte(prev + string(canon)))
		m["curr_hash"] = hex.EncodeToString(s[:])
		if fse, ok := getUint(m, "fse"); ok && !nomac && fse < 1000 {
			k := keyFrom(k0, 0, fse)
			h := hmac.New(sha256.New, k[:])
			h.Write([]byte(prev + string(canon)))
			m["hmac"] = hex.EncodeToString(h.Sum(nil))
		}
		prev = m["curr_hash"].(string)
		line, err := Canonical(m)
		require.NoError(t, err)
		out = append(out, string(line))
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o600))
}

func TestFSStructureChecks(t *testing.T) {
	e := newFSEnv(t)
	_, k0 := stolenKey(t, e.state)
	w := e.open(t, nil)
	for ep := 0; ep < 4; ep++ {
		writeN(t, w, 2)
		require.NoError(t, w.Flush())
		e.clock.Add(time.Minute)
	}
	require.NoError(t, w.Close())
	honest, err := os.ReadFile(e.log)
	require.NoError(t, err)
	// the honest rebuild verifies: the checks below fail for the edit only
	rebuild(t, e.log, k0, 0, func(r []map[string]any) []map[string]any { return r })
	require.True(t, e.verify(t, e.clock.Now()).OK)

	sealOf := func(r []map[string]any, ep uint64) int {
		for i, m := range r {
			if f, _ := getUint(m, "sealed_from"); getString(m, "event_type") == "seal" && f == ep {
				return i
			}
		}
		t.Fatalf("no seal of %d", ep)
		return -1
	}
	clone := func(m map[string]any) map[string]any {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		return c
	}
	insert := func(r []map[string]any, i int, m map[string]any) []map[string]any {
		return append(r[:i], append([]map[string]any{m}, r[i:]...)...)
	}
	cases := []struct {
		name, want, detail string
		seq0               uint64
		edit               func([]map[string]any) []map[string]any
	}{
		{"history before epoch 2 dropped, seq kept", ReasonFSMissingSeal, "cannot be checked", 7, func(r []map[string]any) []map[string]any {
			return r[sealOf(r, 1)+1:]
		}},
		{"duplicate seal", ReasonFSEpochOrder, "second seal", 0, func(r []map[string]any) []map[string]any {
			i := sealOf(r, 1)
			return insert(r, i+1, clone(r[i]))
		}},
		{"record after its epoch's seal", ReasonFSEpochOrder, "after that epoch's seal", 0, func(r []map[string]any) []map[string]any {
			i := sealOf(r, 1)
			return insert(r, i+1, clone(r[i-1]))
		}},
		{"epochs backwards", ReasonFSEpochOrder, "follows epoch", 0, func(r []map[string]any) []map[string]any {
			m := clone(r[0])
			return append(r, m)
		}},
		{"seal removed", ReasonFSMissingSeal, "have no seal", 0, func(r []map[string]any) []map[string]any {
			i := sealOf(r, 2)
			return append(r[:i], r[i+1:]...)
		}},
		{"malformed seal", ReasonFSEpochOrder, "malformed seal", 0, func(r []map[string]any) []map[string]any {
			r[sealOf(r, 1)]["sealed_to"] = uint64(0)
			return r
		}},
		{"seal of an epoch not ended", ReasonFSEpochOrder, "has not ended", 0, func(r []map[string]any) []map[string]any {
			r[sealOf(r, 3)]["sealed_to"] = uint64(999)
			return r
		}},
		{"epoch in the future", ReasonFSEpochOrder, "in the future", 0, func(r []map[string]any) []map[string]any {
			r[len(r)-1]["fse"] = uint64(1) << 40
			return r
		}},
		{"record without fse", ReasonFSBadMAC, "no forward-secure epoch", 0, func(r []map[string]any) []map[string]any {
			delete(r[1], "fse")
			return r
		}},
		{"record without hmac", ReasonFSBadMAC, "no hmac", 0, func(r []map[string]any) []map[string]any {
			r[1]["nomac"] = true
			return r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(e.log, honest, 0o600))
			rebuild(t, e.log, k0, tc.seq0, tc.edit)
			r := e.verify(t, e.clock.Now())
			require.False(t, r.OK)
			found := false
			for _, f := range r.Failures {
				if f.Reason == tc.want && strings.Contains(f.Detail, tc.detail) {
					found = true
				}
			}
			assert.True(t, found, "want %s (%s), got %+v", tc.want, tc.detail, r.Failures)
		})
	}
}
