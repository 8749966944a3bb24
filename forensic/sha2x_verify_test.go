package forensic

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// verifyBytesDual runs verifyReader over data with the interleaved hashing
// on (when the CPU has it) or off.
func verifyBytesDual(data, key []byte, dual bool) *Result {
	return verifyBytesBuf(data, key, dual, 4096)
}

// verifyBytesBuf verifies data through a line reader of bufSize bytes: a
// small one overwrites each line soon after returning it, which catches a
// line kept for pairing without a copy.
func verifyBytesBuf(data, key []byte, dual bool, bufSize int) *Result {
	v := newVerifier(VerifyOptions{HMACKey: key})
	if !dual {
		v.dual = nil
	}
	v.verifyReader(bytes.NewReader(data), bufSize, "mem", "mem", 0, "GENESIS")
	v.res.OK = len(v.res.Failures) == 0
	return v.res
}

// verifyBytesPairs is verifyBytesDual with the sixteen-lane batches off:
// lines are hashed two at a time.
func verifyBytesPairs(data, key []byte) *Result {
	v := newVerifier(VerifyOptions{HMACKey: key})
	if v.dual != nil {
		v.dual.x16 = nil
	}
	v.verifyReader(bytes.NewReader(data), 4096, "mem", "mem", 0, "GENESIS")
	v.res.OK = len(v.res.Failures) == 0
	return v.res
}

func requireSameResult(t *testing.T, data, key []byte, what string) *Result {
	t.Helper()
	a := verifyBytesDual(data, key, true)
	b := verifyBytesDual(data, key, false)
	require.Equal(t, b, a, "%s: interleaved and plain verification differ", what)
	require.Equal(t, b, verifyBytesBuf(data, key, true, 16), "%s: interleaved with a 16-byte reader differs", what)
	require.Equal(t, b, verifyBytesPairs(data, key), "%s: two-line batches differ", what)
	return a
}

// TestVerifyBatchMatchesSingle runs logs long enough to fill several
// batches, with our layout and the seed's mixed line by line, through the
// batched verification (sixteen lines at once where the CPU has the
// sixteen-lane hashing, two otherwise) and line by line, under line drops,
// duplicates, swaps, blank lines, torn tails and random bit flips.
func TestVerifyBatchMatchesSingle(t *testing.T) {
	if !sha2xFast {
		t.Skip("no SHA-NI: the interleaved path is off on this CPU")
	}
	hp, hlog := sampleLog(t, 53)
	sp := filepath.Join(t.TempDir(), "seed.log")
	require.NoError(t, toSeedLayout(hp, sp))
	slog, err := os.ReadFile(sp)
	require.NoError(t, err)
	ours, seed := bytes.SplitAfter(hlog, []byte("\n")), bytes.SplitAfter(slog, []byte("\n"))
	r := rand.New(rand.NewPCG(31, 32))
	var mixed [][]byte
	for i := range ours {
		if r.IntN(3) == 0 {
			mixed = append(mixed, seed[i])
		} else {
			mixed = append(mixed, ours[i])
		}
	}
	for _, key := range [][]byte{nil, testKey} {
		require.True(t, requireSameResult(t, bytes.Join(mixed, nil), key, "mixed").OK)
		for _, i := range []int{0, 1, 15, 16, 17, 31, 32, 52} {
			drop := bytes.Join(slices.Concat(mixed[:i], mixed[i+1:]), nil)
			requireSameResult(t, drop, key, fmt.Sprintf("drop %d", i))
			dup := bytes.Join(slices.Concat(mixed[:i+1], mixed[i:]), nil)
			requireSameResult(t, dup, key, fmt.Sprintf("dup %d", i))
			blank := bytes.Join(slices.Concat(mixed[:i], [][]byte{[]byte("\n")}, mixed[i:]), nil)
			requireSameResult(t, blank, key, fmt.Sprintf("blank %d", i))
			if i+1 < len(mixed) {
				sw := slices.Clone(mixed)
				sw[i], sw[i+1] = sw[i+1], sw[i]
				requireSameResult(t, bytes.Join(sw, nil), key, fmt.Sprintf("swap %d", i))
			}
			torn := append(bytes.Join(mixed[:i], nil), mixed[i][:len(mixed[i])/2]...)
			requireSameResult(t, torn, key, fmt.Sprintf("torn %d", i))
		}
		data := bytes.Join(mixed, nil)
		for k := 0; k < 200; k++ {
			buf := slices.Clone(data)
			for f := 0; f <= k%3; f++ {
				buf[r.IntN(len(buf))] ^= 1 << r.IntN(8)
			}
			requireSameResult(t, buf, key, fmt.Sprintf("flips %d", k))
		}
	}
}

// TestVerifyDualMatchesSingle checks that hashing lines two at a time (no
// key) or a line with its HMAC (key) finds exactly what hashing one line at
// a time finds, on clean logs and under every bit flip, line drops,
// duplicates, swaps and blank lines.
func TestVerifyDualMatchesSingle(t *testing.T) {
	if !sha2xFast {
		t.Skip("no SHA-NI: the interleaved path is off on this CPU")
	}
	_, hlog := sampleLog(t, 5)
	p := filepath.Join(t.TempDir(), "plain.log")
	w, err := Open(Options{Path: p})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		require.NoError(t, w.Append("allocate", Field{"i", i}, Field{"pad", string(bytes.Repeat([]byte{'p'}, i*40))}))
	}
	require.NoError(t, w.Close())
	plog, err := os.ReadFile(p)
	require.NoError(t, err)
	// the same records in the seed's layout (transcoder path)
	hp := filepath.Join(t.TempDir(), "h.log")
	sp := filepath.Join(t.TempDir(), "seed.log")
	require.NoError(t, os.WriteFile(hp, hlog, 0o600))
	require.NoError(t, toSeedLayout(hp, sp))
	slog, err := os.ReadFile(sp)
	require.NoError(t, err)
	require.True(t, verifyBytesDual(slog, testKey, true).OK)
	for _, lg := range []struct {
		name string
		data []byte
	}{{"hmac-log", hlog}, {"plain-log", plog}, {"seed-layout-log", slog}} {
		for _, key := range [][]byte{nil, testKey} {
			tag := fmt.Sprintf("%s key=%v", lg.name, key != nil)
			r := requireSameResult(t, lg.data, key, tag)
			require.Equal(t, 5, r.Records, tag)
			buf := make([]byte, len(lg.data))
			for i := range lg.data {
				bit := i % 8
				copy(buf, lg.data)
				buf[i] ^= 1 << bit
				requireSameResult(t, buf, key, fmt.Sprintf("%s byte %d bit %d", tag, i, bit))
			}
			lines := bytes.SplitAfter(lg.data, []byte{'\n'})
			lines = lines[:len(lines)-1]
			for i := range lines {
				drop := bytes.Join(append(append([][]byte{}, lines[:i]...), lines[i+1:]...), nil)
				requireSameResult(t, drop, key, fmt.Sprintf("%s drop %d", tag, i))
				dup := bytes.Join(append(append([][]byte{}, lines[:i+1]...), lines[i:]...), nil)
				requireSameResult(t, dup, key, fmt.Sprintf("%s dup %d", tag, i))
				blank := bytes.Join(append(append([][]byte{}, lines[:i]...), append([][]byte{[]byte("  \n")}, lines[i:]...)...), nil)
				requireSameResult(t, blank, key, fmt.Sprintf("%s blank %d", tag, i))
				if i+1 < len(lines) {
					sw := append([][]byte{}, lines...)
					sw[i], sw[i+1] = sw[i+1], sw[i]
					requireSameResult(t, bytes.Join(sw, nil), key, fmt.Sprintf("%s swap %d", tag, i))
				}
				// a torn tail right after line i
				requireSameResult(t, append(bytes.Join(lines[:i+1], nil), lines[i][:len(lines[i])/2]...), key, fmt.Sprintf("%s torn %d", tag, i))
			}
		}
	}
}

func TestIndexSeqKey(t *testing.T) {
	for _, s := range []string{``, `,"seq":`, `{"a":1,"seq":2`, `{"request_id":"q","seq":7,"z":1}`, `{"seq":1}`, `qqqq,"seq"`, `{"x":",\"seq\":1","seq":3}`, `q,"seq":`} {
		require.Equal(t, bytes.Index([]byte(s), []byte(`,"seq":`)), indexSeqKey([]byte(s)), "%q", s)
	}
}

func FuzzIndexSeqKey(f *testing.F) {
	f.Add([]byte(`{"request_id":"req","seq":7}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := indexSeqKey(b), bytes.Index(b, []byte(`,"seq":`)); got != want {
			t.Fatalf("indexSeqKey(%q) = %d, want %d", b, got, want)
		}
	})
}

// TestParallelChunkBoundaries moves the chunk size across a line length so
// every kind of line (dropped, edited, torn) lands at a chunk start, with
// and without a key, and requires the sequential result each time.
func TestParallelChunkBoundaries(t *testing.T) {
	_, data := sampleLog(t, 40)
	lines := bytes.SplitAfter(data, []byte{'\n'})
	lines = lines[:len(lines)-1]
	bad := append([][]byte{}, lines...)
	bad[9] = bytes.Replace(bad[9], []byte(`"handle":"h"`), []byte(`"handle":"X"`), 1)
	bad = append(bad[:20], bad[21:]...) // seq gap at line 20
	bad[20] = bytes.Replace(bad[20], []byte(`"handle":"h"`), []byte(`"handle":"Y"`), 1)
	variants := map[string][]byte{"clean": data, "tampered": bytes.Join(bad, nil), "torn": data[:len(data)-30]}
	oldMin, oldChunk := parallelMin, chunkSize
	defer func() { parallelMin, chunkSize = oldMin, oldChunk }()
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	for name, d := range variants {
		require.NoError(t, os.WriteFile(p, d, 0o600))
		for _, key := range [][]byte{nil, testKey} {
			parallelMin, chunkSize = 1<<40, oldChunk
			seq, err := VerifyChain(p, VerifyOptions{HMACKey: key})
			require.NoError(t, err)
			require.Equal(t, name == "clean", seq.OK, "%s: %+v", name, seq.Failures)
			for cs := 700; cs < 1700; cs += 37 {
				parallelMin, chunkSize = 512, cs
				par, err := VerifyChain(p, VerifyOptions{HMACKey: key})
				require.NoError(t, err)
				require.Equal(t, seq, par, "%s key=%v chunk %d", name, key != nil, cs)
			}
		}
	}
}

// TestWriterDualCrossCheck writes logs with the interleaved writer and
// verifies them with crypto/sha256 + crypto/hmac only, and the other way
// round: big batches (pipeline), single appends, rotations inside batches.
func TestWriterDualCrossCheck(t *testing.T) {
	if !sha2xFast {
		t.Skip("no SHA-NI: the interleaved path is off on this CPU")
	}
	defer sha2xOff.Store(false)
	for _, writeOff := range []bool{false, true} {
		for _, key := range [][]byte{testKey, nil} {
			sha2xOff.Store(writeOff)
			dir := t.TempDir()
			p := filepath.Join(dir, "kv_cache.log")
			w, err := Open(Options{Path: p, HMACKey: key, Fsync: FsyncNone, MaxBytes: 40_000})
			require.NoError(t, err)
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < 150; i++ {
						if err := w.Append("sanitize_end", benchFields(g*1000+i)...); err != nil {
							t.Error(err)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			for i := 0; i < 5; i++ {
				require.NoError(t, w.Append("free", Field{"i", i}))
				require.NoError(t, w.Flush())
			}
			require.NoError(t, w.Close())
			for _, verifyOff := range []bool{true, false} {
				sha2xOff.Store(verifyOff)
				r, err := VerifyAll(p, VerifyOptions{HMACKey: key})
				require.NoError(t, err)
				require.True(t, r.OK, "write off=%v verify off=%v key=%v: %+v", writeOff, verifyOff, key != nil, r.Failures)
				require.Equal(t, 605+len(r.Files)-1, r.Records, "records plus one rotate record per rotation")
				require.Greater(t, len(r.Files), 3, "rotations")
			}
		}
	}
}

func TestParseUintAt(t *testing.T) {
	for _, c := range []struct {
		in string
		v  uint64
		ok bool
	}{{"0}", 0, true}, {"12,", 12, true}, {"007}", 7, true}, {"1234567890123456789,", 1234567890123456789, true},
		{"18446744073709551615}", 18446744073709551615, true}, {"18446744073709551616}", 0, false},
		{"99999999999999999999", 0, false}, {"", 0, false}, {"x", 0, false}, {"1x", 0, false}, {"-1,", 0, false}} {
		v, ok := parseUintAt([]byte(c.in))
		require.Equal(t, c.ok, ok, c.in)
		if ok {
			require.Equal(t, c.v, v, c.in)
		}
	}
}

// strRef is the string scan one byte at a time (the reference for
// scalarEnd, which jumps from quote to quote and counts backslashes).
func strRef(in []byte, pos int) (int, bool) {
	for i := pos + 1; i < len(in); i++ {
		switch in[i] {
		case '"':
			return i + 1, true
		case '\\':
			i++ // the escaped byte
		}
	}
	return 0, false
}

func checkStr(t *testing.T, s []byte) {
	in := append([]byte{'"'}, s...)
	end, err := scalarEnd(in, 0)
	want, ok := strRef(in, 0)
	require.Equal(t, ok, err == nil, "%q", s)
	if ok {
		require.Equal(t, want, end, "%q", s)
	}
}

func TestTranscoderStr(t *testing.T) {
	for _, s := range []string{``, `"`, `abc"`, `abcdefghijklmnop"x`, `abcdefgh\"ijklmnop"`, "abcdefg\x1f\"", "abcdefgé\u2028ijkl\"",
		`0123456789abcdef0123456789abcdef\\"`, `1234567\u001f"`, `12345678\u0008"`, `\t\n\r\b\f\/"`, "abcdefgh\x7f\x80\xff\"",
		`\\\"x"`, `\\\\"`, `\`, `a\\\\\"b\\"`} {
		checkStr(t, []byte(s))
	}
}

func FuzzTranscoderStr(f *testing.F) {
	f.Add([]byte(`0123456789abcdef0123456789abcdef"`))
	f.Add([]byte(`abc\u001fdefghijk\"lmnop"`))
	f.Fuzz(func(t *testing.T, s []byte) { checkStr(t, s) })
}

func TestRFCLeafMatchesHasher(t *testing.T) {
	for _, n := range []int{0, 1, 32, 40} {
		b := bytes.Repeat([]byte{byte(n)}, n)
		require.Equal(t, leafOf(b), rfcLeaf(b), n)
	}
}

// TestTopLevelSeqAt: with any guess (none, stale, pointing at a nested
// "seq"), the search finds what the JSON parser reads as the top-level seq.
func TestTopLevelSeqAt(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	var prefixes [][]byte
	for i := 0; i < 300; i++ {
		m := map[string]any{}
		if r.IntN(5) > 0 {
			m["seq"] = r.Uint64N(1 << 40)
		}
		for j := 0; j < r.IntN(5); j++ {
			m[randKey(r)] = randValue(r, 0)
		}
		if r.IntN(3) == 0 {
			m["a"+randKey(r)] = map[string]any{"a": 1, "seq": 7, "x": []any{map[string]any{"b": 2, "seq": 8}}}
		}
		if r.IntN(3) == 0 {
			m["s"] = `x,"seq":9`
		}
		b, err := Canonical(m)
		require.NoError(t, err)
		if _, err := parseLine(b); err != nil {
			continue // e.g. 1e400 encoded as Infinity: not JSON
		}
		prefixes = append(prefixes, b[:len(b)-1])
	}
	at := 0
	for _, p := range prefixes {
		for _, guess := range []int{at, 0, r.IntN(len(p) + 1), bytes.Index(p, []byte(`,"seq":`))} {
			g := guess
			v1, ok1 := topLevelSeqAt(p, &g)
			m, err := parseLine(append(slices.Clone(p), '}'))
			require.NoError(t, err)
			v0, ok0 := getUint(m, "seq")
			require.Equal(t, ok0, ok1, "%s (guess %d)", p, guess)
			require.Equal(t, v0, v1, "%s (guess %d)", p, guess)
		}
		topLevelSeqAt(p, &at)
	}
}
