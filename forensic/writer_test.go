package forensic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

var testKey = []byte("secret")

func writeN(t testing.TB, w *Writer, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		require.NoError(t, w.Append("write",
			Field{"handle", fmt.Sprintf("h%d", i)}, Field{"tenant_id", "ténänt-日本"},
			Field{"nbytes", int64(4096)}, Field{"coverage_pct", 100.0}, Field{"shape", []int64{2, 3}},
			Field{"note", "<&>\u2028\"\\\n\x01"}))
	}
}

func readLines(t testing.TB, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// seedVerify runs the seed's verification algorithm (tests/forensic/seed_verify.py).
func seedVerify(t testing.TB, path string, key []byte) bool {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	args := []string{filepath.Join(repoRoot(), "tests", "forensic", "seed_verify.py"), path}
	if key != nil {
		args = append(args, string(key))
	}
	out, err := exec.Command(py, args...).Output()
	require.NoError(t, err, "seed verifier crashed")
	var res struct{ OK bool }
	require.NoError(t, json.Unmarshal(out, &res))
	return res.OK
}

func TestWriterBasicAndSeedCompat(t *testing.T) {
	for _, key := range [][]byte{nil, testKey} {
		t.Run(fmt.Sprintf("hmac=%v", key != nil), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "logs", "kv_cache.log")
			w, err := Open(Options{Path: p, HMACKey: key, MaxBytes: 4000, Fsync: FsyncNone})
			require.NoError(t, err)
			writeN(t, w, 60)
			require.NoError(t, w.Close())
			st, err := os.Stat(p)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
			dst, _ := os.Stat(filepath.Dir(p))
			require.Equal(t, os.FileMode(0o700), dst.Mode().Perm())
			res, err := VerifyAll(p, VerifyOptions{HMACKey: key})
			require.NoError(t, err)
			require.True(t, res.OK, "%+v", res.Failures)
			require.Greater(t, len(res.Files), 3)
			require.Equal(t, 60+len(res.Files)-1, res.Records) // + one rotate record per rotation
			require.True(t, seedVerify(t, p, key), "seed verifier rejects our log")
			// every record carries kid and seq, monotonic across files
			var seqs []uint64
			files, _ := listFiles(p)
			for _, lf := range files {
				for _, l := range readLines(t, lf.path) {
					m, err := parseLine([]byte(l))
					require.NoError(t, err)
					s, ok := getUint(m, "seq")
					require.True(t, ok)
					seqs = append(seqs, s)
					require.NotEmpty(t, getString(m, "kid"))
				}
			}
			for i, s := range seqs {
				require.Equal(t, uint64(i), s)
			}
		})
	}
}

func TestSeedFixturesVerify(t *testing.T) {
	root := compatRoot()
	cases := []struct {
		path string
		key  []byte
	}{
		{"plain/kv_cache.log", nil}, {"hmac/kv_cache.log", testKey}, {"rotated/kv_cache.log", nil},
	}
	for _, c := range cases {
		res, err := VerifyAll(filepath.Join(root, c.path), VerifyOptions{HMACKey: c.key})
		require.NoError(t, err, c.path)
		require.True(t, res.OK, "%s: %+v", c.path, res.Failures)
		require.Greater(t, res.Records, 1)
	}
	// wrong key fails with bad_hmac at line 0
	res, err := VerifyChain(filepath.Join(root, "hmac/kv_cache.log"), VerifyOptions{HMACKey: []byte("nope")})
	require.NoError(t, err)
	require.False(t, res.OK)
	require.Equal(t, ReasonBadHMAC, res.Failures[0].Reason)
	require.Equal(t, 0, res.Failures[0].Line)
	// key configured on a plain log: missing_hmac
	res, err = VerifyChain(filepath.Join(root, "plain/kv_cache.log"), VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.Equal(t, ReasonMissingHMAC, res.Failures[0].Reason)
}

// TestContinueSeedLog appends with our writer to copies of the seed's logs
// (our extra event types included); both verifiers accept the result.
func TestContinueSeedLog(t *testing.T) {
	root := compatRoot()
	for _, c := range []struct {
		sub string
		key []byte
	}{{"hmac", testKey}, {"rotated", nil}} {
		dir := t.TempDir()
		ents, _ := os.ReadDir(filepath.Join(root, c.sub))
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(root, c.sub, e.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600))
		}
		p := filepath.Join(dir, "kv_cache.log")
		w, err := Open(Options{Path: p, HMACKey: c.key, MaxBytes: 3000})
		require.NoError(t, err)
		for _, ev := range []string{"isolation_violation", "pool_assign", "pool_release", "release_quarantine", "encrypt", "decrypt", "rotate_key"} {
			require.NoError(t, w.Append(ev, Field{"tenant_id", "t"}, Field{"blocks", []uint32{1, 2}}, Field{"details", map[string]any{"x": 1.5, "seq": 3}}))
		}
		require.NoError(t, w.Close())
		res, err := VerifyAll(p, VerifyOptions{HMACKey: c.key})
		require.NoError(t, err)
		require.True(t, res.OK, "%s: %+v", c.sub, res.Failures)
		require.True(t, seedVerify(t, p, c.key), c.sub)
	}
}

func TestSecondWriterLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p})
	require.NoError(t, err)
	_, err = Open(Options{Path: p})
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, w.Close())
	w2, err := Open(Options{Path: p})
	require.NoError(t, err)
	require.NoError(t, w2.Close())
	require.ErrorIs(t, w2.Append("x"), ErrClosed)
}

// TestSecondProcessLocked checks the flock against a real second process.
func TestSecondProcessLocked(t *testing.T) {
	if os.Getenv("KVH_FORENSIC_LOCK_CHILD") != "" {
		_, err := Open(Options{Path: os.Getenv("KVH_FORENSIC_LOCK_CHILD")})
		if errors.Is(err, ErrLocked) {
			fmt.Println("LOCKED")
		} else {
			fmt.Println("OPENED", err)
		}
		return
	}
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p})
	require.NoError(t, err)
	defer w.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecondProcessLocked$")
	cmd.Env = append(os.Environ(), "KVH_FORENSIC_LOCK_CHILD="+p)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "LOCKED")
}

func TestRefuseSymlinkAndBadInput(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.log")
	require.NoError(t, os.WriteFile(target, nil, 0o600))
	link := filepath.Join(dir, "kv_cache.log")
	require.NoError(t, os.Symlink(target, link))
	_, err := Open(Options{Path: link})
	require.ErrorIs(t, err, ErrSymlink)
	_, err = Open(Options{Path: ""})
	require.Error(t, err)
	_, err = Open(Options{Path: filepath.Join(dir, "a.log"), Fsync: 7})
	require.Error(t, err)

	w, err := Open(Options{Path: filepath.Join(dir, "b.log")})
	require.NoError(t, err)
	defer w.Close()
	for _, c := range []struct {
		ev string
		f  []Field
	}{
		{"", nil}, {"x", []Field{{"seq", 1}}}, {"x", []Field{{"curr_hash", "a"}}}, {"x", []Field{{"a", 1}, {"a", 2}}},
		{"x", []Field{{"a", struct{}{}}}}, {"x", []Field{{"a", "\xff"}}}, {"\xff", nil}, {"x", []Field{{"f", math.NaN()}}}, {"x", []Field{{"f", []any{math.Inf(1)}}}},
	} {
		require.Error(t, w.Append(c.ev, c.f...), "%q %v", c.ev, c.f)
	}
}

func TestRotationNamesUniqueManyPerSecond(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, MaxBytes: 1, Fsync: FsyncNone})
	require.NoError(t, err)
	writeN(t, w, 200) // one rotation per record
	require.NoError(t, w.Close())
	require.GreaterOrEqual(t, w.Stats().Rotations, uint64(199))
	res, err := VerifyAll(p, VerifyOptions{})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Equal(t, 200+int(w.Stats().Rotations), res.Records)
	require.Len(t, res.Files, int(w.Stats().Rotations)+1)
}

func TestFsyncAlwaysConcurrent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	var fsyncs int
	var mu sync.Mutex
	w, err := Open(Options{Path: p, Fsync: FsyncAlways, HMACKey: testKey, OnFsync: func(time.Duration) { mu.Lock(); fsyncs++; mu.Unlock() }})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() { defer wg.Done(); writeN(t, w, 25) }()
	}
	wg.Wait()
	st := w.Stats()
	require.Equal(t, uint64(100), st.Records)
	require.Equal(t, uint64(99), st.LastSeq)
	require.NoError(t, w.Close())
	mu.Lock()
	require.Greater(t, fsyncs, 0)
	require.LessOrEqual(t, fsyncs, 101)
	mu.Unlock()
	res, err := VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK)
	require.Equal(t, 100, res.Records)
}

func TestFsyncFailureRotatesAndReports(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	var errs []error
	var mu sync.Mutex
	w, err := Open(Options{Path: p, Fsync: FsyncAlways, OnError: func(e error) { mu.Lock(); errs = append(errs, e); mu.Unlock() }})
	require.NoError(t, err)
	writeN(t, w, 3)
	calls := 0
	w.mu.Lock()
	w.syncFn = func(f *os.File) error {
		calls++
		if calls == 1 {
			return errors.New("EIO (injected)")
		}
		return f.Sync()
	}
	w.mu.Unlock()
	err = w.Append("write", Field{"handle", "lost?"})
	require.ErrorIs(t, err, ErrFsync)
	require.Equal(t, 1, calls, "a failed fsync must not be retried on the same file")
	writeN(t, w, 2)
	require.NoError(t, w.Close())
	st := w.Stats()
	require.Equal(t, uint64(1), st.FsyncErrors)
	require.Equal(t, uint64(1), st.Rotations)
	mu.Lock()
	require.NotEmpty(t, errs)
	require.ErrorIs(t, errs[0], ErrFsync)
	mu.Unlock()
	res, err := VerifyAll(p, VerifyOptions{})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Len(t, res.Files, 2)
}

func TestTornTailRecovery(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: testKey})
	require.NoError(t, err)
	writeN(t, w, 5)
	require.NoError(t, w.Close())
	// a long torn last record (> 4 KiB, the seed's tail window)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	torn := `{"event_type":"write","note":"` + strings.Repeat("x", 10000)
	_, err = f.WriteString(torn)
	require.NoError(t, err)
	f.Close()
	res, err := VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.False(t, res.OK)
	require.Equal(t, 5, res.Failures[0].Line)

	w, err = Open(Options{Path: p, HMACKey: testKey})
	require.NoError(t, err)
	writeN(t, w, 2)
	require.NoError(t, w.Close())
	res, err = VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	lines := readLines(t, p)
	require.Len(t, lines, 8)
	m, err := parseLine([]byte(lines[5]))
	require.NoError(t, err)
	require.Equal(t, "recovery", getString(m, "event_type"))
	broken := getString(m, "broken_file")
	b, err := os.ReadFile(filepath.Join(dir, broken))
	require.NoError(t, err)
	require.Equal(t, torn, string(b))
	seq, _ := getUint(m, "seq")
	require.Equal(t, uint64(5), seq)
}

func TestEmptyActiveAfterRotationCrash(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kv_cache.log")
	w, err := Open(Options{Path: p})
	require.NoError(t, err)
	writeN(t, w, 4)
	require.NoError(t, w.Close())
	// simulate a crash right after the rename of a rotation
	require.NoError(t, os.Rename(p, filepath.Join(dir, rotatedName("kv_cache", ".log", time.Now().Unix(), 4, 0))))
	w, err = Open(Options{Path: p})
	require.NoError(t, err)
	writeN(t, w, 1)
	require.NoError(t, w.Close())
	res, err := VerifyAll(p, VerifyOptions{})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Equal(t, 6, res.Records)
}

func TestFlushMakesRecordsVisible(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, Fsync: FsyncInterval, FsyncInterval: time.Hour})
	require.NoError(t, err)
	defer w.Close()
	writeN(t, w, 10)
	require.NoError(t, w.Flush())
	require.Len(t, readLines(t, p), 10)
	res, err := VerifyChain(p, VerifyOptions{})
	require.NoError(t, err)
	require.True(t, res.OK)
}

// flushedCount flushes w, reads one of its flusher's counters and closes
// it (the flusher is gone after Close).
func flushedCount(t *testing.T, w *Writer, count func(*flusher) int) int {
	t.Helper()
	require.NoError(t, w.Flush())
	w.mu.Lock()
	n := count(w.fl)
	w.mu.Unlock()
	require.NoError(t, w.Close())
	return n
}

// compatRoot is the seed's log fixtures, copied from ../shared/compat into
// tests/fixtures/compat so a clean clone has them.
func compatRoot() string { return filepath.Join(repoRoot(), "tests", "fixtures", "compat") }

// A failed write(2) (here on the background flusher, the batch path) stops
// the writer with the error: OnError, Append, Flush and Close report it,
// and what reached the file before still verifies.
func TestWriteFailureStopsWriter(t *testing.T) {
	old := asyncMinBytes
	asyncMinBytes = 1 // every batch goes through the flusher
	t.Cleanup(func() { asyncMinBytes = old })
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	var mu sync.Mutex
	var errs []error
	w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncNone, OnError: func(e error) { mu.Lock(); errs = append(errs, e); mu.Unlock() }})
	require.NoError(t, err)
	writeN(t, w, 10)
	require.NoError(t, w.Flush())
	w.mu.Lock()
	require.Positive(t, w.fl.sent, "batches were written by the flusher")
	w.writeFn = func(f *os.File, b []byte) (int, error) { return 0, errors.New("ENOSPC (injected)") }
	w.mu.Unlock()
	var aerr error
	for i := 0; i < 5000 && aerr == nil; i++ {
		aerr = w.Append("write", Field{"handle", "h"}, Field{"i", int64(i)})
	}
	ferr := w.Flush()
	require.Error(t, ferr)
	require.Contains(t, ferr.Error(), "forensic: write")
	require.Contains(t, ferr.Error(), "ENOSPC (injected)")
	require.Error(t, w.Append("write", Field{"handle", "after"}), "a stopped writer refuses records")
	require.Error(t, w.Close())
	mu.Lock()
	require.NotEmpty(t, errs)
	require.Contains(t, errs[0].Error(), "ENOSPC (injected)")
	mu.Unlock()
	res, err := VerifyChain(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.GreaterOrEqual(t, res.Records, 10)
}

// AppendConst leaves the key checks to the writer goroutine: a field list
// that Append would refuse stops the writer with an error naming the key,
// on the one-record path and in a pipelined batch alike, and the records
// before it stay verifiable.
func TestAppendConstBadKeysStopWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		batch  int // records appended before the bad one, without waiting
		fields []Field
		want   string
	}{
		{"duplicate, one-record path", 0, []Field{{"handle", "h"}, {"handle", "again"}}, `duplicate field "handle"`},
		{"reserved, pipelined batch", 300, []Field{{"seq", int64(7)}}, `field "seq" is set by the writer`},
		{"reserved, chunk in the middle of a batch", 1000, []Field{{"kid", "x"}}, `field "kid" is set by the writer`},
		{"invalid UTF-8 key", 0, []Field{{"k\xff", 1}}, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kv_cache.log")
			var mu sync.Mutex
			var errs []error
			w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncNone, OnError: func(e error) { mu.Lock(); errs = append(errs, e); mu.Unlock() }})
			require.NoError(t, err)
			require.NoError(t, w.AppendConst("write", Field{"handle", "first"}))
			require.NoError(t, w.Flush())
			if tc.batch == 0 {
				require.NoError(t, w.AppendConst("write", tc.fields...), "the caller's path does not check keys")
			} else {
				// queue the good records and the bad one as one batch (what
				// AppendConst does, under the lock the writer takes them with)
				w.mu.Lock()
				bad := tc.batch
				if tc.batch >= 1000 {
					bad = 700 // in the sixth chunk, with good ones after it
				}
				for i := 0; i <= tc.batch; i++ {
					fs := []Field{{"handle", "queued"}}
					if i == bad {
						fs = tc.fields
					}
					w.q = append(w.q, pending{ev: "write", fi: len(w.qf), fn: len(fs)})
					w.qf = append(w.qf, fs...)
					w.tickets++
				}
				w.mu.Unlock()
				w.signal()
			}
			ferr := w.Flush()
			require.Error(t, ferr)
			require.Contains(t, ferr.Error(), tc.want)
			require.Error(t, w.AppendConst("write", Field{"handle", "after"}))
			require.Error(t, w.Close())
			mu.Lock()
			require.NotEmpty(t, errs)
			mu.Unlock()
			res, err := VerifyChain(p, VerifyOptions{HMACKey: testKey})
			require.NoError(t, err)
			require.True(t, res.OK, "%+v", res.Failures)
			require.GreaterOrEqual(t, res.Records, 1)
			if tc.batch >= 1000 {
				// the records before the bad one's chunk may be written,
				// the bad one and everything after it never are
				require.LessOrEqual(t, res.Records, 1+700)
				for _, l := range readLines(t, p) {
					require.NotContains(t, l, `"kid":"x"`)
				}
			}
			if tc.batch > 0 {
				require.GreaterOrEqual(t, w.pipelined.Load(), uint64(tc.batch+1), "the batch went through the pipeline")
			}
		})
	}
}

// Append refuses the same lists on the caller's path, and AppendConst
// checks the event type there (it is a value of the record, not a key).
func TestAppendChecksKeysUpFront(t *testing.T) {
	w, err := Open(Options{Path: filepath.Join(t.TempDir(), "kv_cache.log")})
	require.NoError(t, err)
	defer w.Close()
	require.ErrorContains(t, w.Append("write", Field{"a", 1}, Field{"a", 2}), `duplicate field "a"`)
	require.ErrorContains(t, w.Append("write", Field{"hmac", "x"}), "set by the writer")
	require.ErrorContains(t, w.AppendConst(""), "empty event type")
	require.ErrorIs(t, w.AppendConst("w\xff"), ErrUnsupported)
	require.NoError(t, w.Append("write", Field{"a", 1}))
}

// Under fsync interval the routine fsync runs on the flusher after the
// batch's write. Its failure is handled like a failed fsync on the writer
// goroutine: counted, reported, never retried on that file, which is
// rotated away; the log still verifies and Flush still works.
func TestDeferredFsyncFailureRotates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	var mu sync.Mutex
	var errs []error
	w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncInterval, FsyncInterval: time.Microsecond,
		OnError: func(e error) { mu.Lock(); errs = append(errs, e); mu.Unlock() }})
	require.NoError(t, err)
	writeN(t, w, 3)
	require.NoError(t, w.Flush())
	synced := map[*os.File]int{}
	var failedFile *os.File
	w.mu.Lock()
	w.syncFn = func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		synced[f]++
		if failedFile == nil && w.fl != nil && w.fl.syncs > 0 {
			failedFile = f
			return errors.New("EIO (injected)")
		}
		return f.Sync()
	}
	w.mu.Unlock()
	for i := 0; i < 20000; i++ {
		require.NoError(t, w.Append("write", Field{"handle", "h"}, Field{"i", int64(i)}))
	}
	deferred := flushedCount(t, w, func(fl *flusher) int { return fl.syncs })
	require.Positive(t, deferred, "some fsyncs ran on the flusher")
	mu.Lock()
	require.NotNil(t, failedFile, "the injected failure hit a deferred fsync")
	require.Equal(t, 1, synced[failedFile], "a failed fsync is never retried on the same file")
	require.NotEmpty(t, errs)
	require.ErrorIs(t, errs[0], ErrFsync)
	mu.Unlock()
	st := w.Stats()
	require.Equal(t, uint64(1), st.FsyncErrors)
	require.GreaterOrEqual(t, st.Rotations, uint64(1))
	res, err := VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Equal(t, 3+20000+int(st.Rotations), res.Records, "every record, plus one rotate record per rotation")
}

// A pipelined batch is handed to the flusher in pieces while it is chained
// (handOffEarly), and every piece gets a writeback hint for exactly the
// bytes it wrote: the ranges the hint saw hold, in the final file, the
// bytes written there, they follow one another, and the chain verifies.
func TestEarlyHandOffAndWritebackRanges(t *testing.T) {
	oldMin, oldWB := asyncMinBytes, writebackFn
	asyncMinBytes = 4096
	type span struct {
		off int64
		n   int
	}
	var mu sync.Mutex
	var spans []span
	writebackFn = func(f *os.File, off int64, n int) {
		mu.Lock()
		spans = append(spans, span{off: off, n: n})
		mu.Unlock()
		oldWB(f, off, n)
	}
	t.Cleanup(func() { asyncMinBytes, writebackFn = oldMin, oldWB })
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncNone, MaxBytes: 1 << 30})
	require.NoError(t, err)
	// record what each flusher write carried, to compare with the hints
	w.mu.Lock()
	written := map[int64][]byte{}
	w.writeFn = func(f *os.File, b []byte) (int, error) {
		n, err := f.Write(b)
		end, serr := f.Seek(0, io.SeekCurrent)
		if serr != nil {
			return n, serr
		}
		mu.Lock()
		written[end-int64(n)] = append([]byte(nil), b[:n]...)
		mu.Unlock()
		return n, err
	}
	w.mu.Unlock()
	const n = 20000
	f := benchFields(0)
	for i := 0; i < n; i++ {
		require.NoError(t, w.AppendConst("sanitize_end", f...))
	}
	early := flushedCount(t, w, func(fl *flusher) int { return fl.early })
	require.Positive(t, early, "no batch was handed over while it was chained")

	res, err := VerifyChain(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Equal(t, n, res.Records)

	file, err := os.ReadFile(p)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, spans)
	for i, s := range spans {
		b, ok := written[s.off]
		require.True(t, ok, "hint %d at offset %d: no write started there", i, s.off)
		require.Len(t, b, s.n, "hint %d: length", i)
		require.LessOrEqual(t, s.off+int64(len(b)), int64(len(file)))
		require.Equal(t, b, file[s.off:s.off+int64(len(b))], "hint %d: the file holds other bytes there", i)
		if i > 0 {
			require.Greater(t, s.off, spans[i-1].off, "hints out of order")
		}
	}
}

// checkKeys finds a duplicate key wherever it is, also among keys that
// share its length and first eight bytes and past the sixteen whose
// signatures it keeps, and only then; validUTF8 agrees with utf8.ValidString
// whatever the position of a non-ASCII or invalid byte.
func TestCheckKeysAndValidUTF8(t *testing.T) {
	keys := func(n int) []Field {
		f := make([]Field, n)
		for i := range f {
			f[i] = Field{fmt.Sprintf("request_%02d", i), i} // one 8-byte prefix, one length
		}
		return f
	}
	for _, n := range []int{1, 2, 15, 16, 17, 40} {
		require.NoError(t, checkKeys("write", keys(n)), "n=%d", n)
		for i := 0; i < n; i++ {
			for j := 0; j < i; j++ {
				f := keys(n)
				f[i].Key = f[j].Key
				require.ErrorContains(t, checkKeys("write", f), fmt.Sprintf("duplicate field %q", f[j].Key), "n=%d i=%d j=%d", n, i, j)
			}
		}
	}
	require.NoError(t, checkKeys("write", []Field{{"a", 1}, {"b", 1}, {"ab", 1}, {"", 1}}))
	require.ErrorContains(t, checkKeys("write", []Field{{"", 1}, {"x", 1}, {"", 2}}), `duplicate field ""`)

	for k := range reservedKeys {
		require.ErrorContains(t, checkKeys("write", []Field{{"a", 1}, {k, 2}}), fmt.Sprintf("field %q is set by the writer", k))
	}
	for n := 0; n <= 40; n++ {
		for i := 0; i <= n; i++ {
			base := strings.Repeat("k", n)
			for _, c := range []struct {
				ins string
				ok  bool
			}{{"é", true}, {"\xff", false}, {"\xe2\x82", false}, {"\U0001F600", true}} {
				key := base[:i] + c.ins + base[i:]
				err := checkKeys("write", []Field{{"first", 1}, {key, 2}, {"last", 3}})
				if c.ok {
					require.NoError(t, err, "%q", key)
				} else {
					require.ErrorContains(t, err, "not valid UTF-8", "%q", key)
				}
			}
		}
	}
	for n := 0; n <= 20; n++ {
		for i := 0; i < n; i++ {
			for _, bad := range []string{"é", "\xff", "\xe2\x82", "\U0001F600", "\xed\xa0\x80"} {
				b := []byte(strings.Repeat("k", n))
				s := string(b[:i]) + bad + string(b[i:])
				require.Equal(t, utf8.ValidString(s), validUTF8(s), "%q", s)
			}
		}
		require.True(t, validUTF8(strings.Repeat("k", n)))
	}
}

// Pages more than dropLag behind the end of the log leave the page cache
// once they are clean (here: after a Flush), and dropBehind never asks for
// anything within dropLag of the end or outside the file.
func TestDropBehind(t *testing.T) {
	oldMin, oldLag, oldDrop := asyncMinBytes, dropLag, dropFn
	asyncMinBytes, dropLag = 1, 1<<20
	var mu sync.Mutex
	var bad []string
	calls := 0
	dropFn = func(f *os.File, off, n int64) {
		st, err := f.Stat()
		mu.Lock()
		calls++
		if err != nil || off < 0 || n <= 0 || off+n > st.Size()-dropLag {
			bad = append(bad, fmt.Sprintf("[%d, %d) of a %d-byte file", off, off+n, st.Size()))
		}
		mu.Unlock()
		oldDrop(f, off, n)
	}
	t.Cleanup(func() { asyncMinBytes, dropLag, dropFn = oldMin, oldLag, oldDrop })
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncNone, MaxBytes: 1 << 30})
	require.NoError(t, err)
	f := benchFields(0)
	for i := 0; i < 30000; i++ {
		require.NoError(t, w.AppendConst("sanitize_end", f...))
	}
	require.NoError(t, w.Flush()) // everything so far is clean now
	for i := 0; i < 3000; i++ {
		require.NoError(t, w.AppendConst("sanitize_end", f...))
	}
	require.NoError(t, w.Flush())

	fd, err := os.Open(p)
	require.NoError(t, err)
	defer fd.Close()
	st, err := fd.Stat()
	require.NoError(t, err)
	size := int(st.Size())
	require.Greater(t, size, 16<<20)
	vec := residentPages(t, fd, size)
	behind := (size - 3<<20) / os.Getpagesize() // well behind the lag
	resident := 0
	for _, v := range vec[:behind] {
		resident += int(v & 1)
	}
	if !onTmpfs(t, fd) { // tmpfs pages are the file itself: nothing to drop
		require.LessOrEqual(t, resident, behind/100, "%d of the %d pages behind the lag are still cached", resident, behind)
	}

	require.NoError(t, w.Close())
	mu.Lock()
	require.Positive(t, calls)
	require.Empty(t, bad)
	mu.Unlock()
	res, err := VerifyChain(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Equal(t, 33000, res.Records)
}

// residentPages is mincore(2) over the first size bytes of f: bit 0 of each
// byte says whether that page is in the page cache.
func residentPages(t *testing.T, f *os.File, size int) []byte {
	t.Helper()
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(mem)
	vec := make([]byte, (size+os.Getpagesize()-1)/os.Getpagesize())
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0])))
	require.Zero(t, errno, "mincore")
	return vec
}

func onTmpfs(t *testing.T, f *os.File) bool {
	t.Helper()
	var fs unix.Statfs_t
	require.NoError(t, unix.Fstatfs(int(f.Fd()), &fs))
	return fs.Type == unix.TMPFS_MAGIC
}

// A rotated file leaves the page cache whole after its fsync, however small
// (the default MaxBytes is below dropLag), and the log still verifies.
func TestRotatedFilesDropped(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncNone, MaxBytes: 1 << 20})
	require.NoError(t, err)
	f := benchFields(0)
	for i := 0; i < 12000; i++ {
		require.NoError(t, w.AppendConst("sanitize_end", f...))
	}
	require.NoError(t, w.Close())
	files, err := listFiles(p)
	require.NoError(t, err)
	require.Greater(t, len(files), 3)
	checked := 0
	for _, lf := range files[:len(files)-1] { // the rotated ones
		fd, err := os.Open(lf.path)
		require.NoError(t, err)
		st, err := fd.Stat()
		require.NoError(t, err)
		if !onTmpfs(t, fd) {
			resident := 0
			for _, v := range residentPages(t, fd, int(st.Size())) {
				resident += int(v & 1)
			}
			require.Zero(t, resident, "%s: %d pages still cached", lf.path, resident)
			checked++
		}
		fd.Close()
	}
	res, err := VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Equal(t, 12000+len(files)-1, res.Records)
	t.Logf("%d rotated files checked", checked)
}
