package forensic

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// seedLayout encodes v like Python's json.dumps(v, ensure_ascii=False):
// ", " and ": " separators, keys in a random (insertion) order.
func seedLayout(r *rand.Rand, v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		parts := make([]string, len(keys))
		for i, k := range keys {
			kb, _ := Canonical(k)
			parts[i] = string(kb) + ": " + seedLayout(r, x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = seedLayout(r, e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		b, err := Canonical(v)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
}

// randKey is a random key without the bytes that JSON escapes (keys with
// escapes go to the parser; randString's values still have them).
func randKey(r *rand.Rand) string {
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == '"' || c == '\\' {
			return 'q'
		}
		return c
	}, randString(r))
}

// canonOf is what the full parser makes of a line: the canonical bytes of
// the record without curr_hash and hmac.
func canonOf(line []byte) ([]byte, bool) {
	m, err := parseLine(line)
	if err != nil {
		return nil, false
	}
	c, _, _, _, err := slowCanonical(m)
	return c, err == nil
}

// checkProjection asserts the property that makes the optimistic transcoder
// sound (see transcoder): a projection that differs from the parser's
// canonical bytes is not the canonical encoding of anything, so its hash
// can never match a writer's and the verifier falls back to the parser.
func checkProjection(t *testing.T, tc *transcoder, line []byte) (fast, exact bool) {
	got, err := tc.transcode(line)
	if err != nil {
		require.ErrorIs(t, err, errSlow)
		return false, false
	}
	if want, ok := canonOf(line); ok && string(want) == string(got) {
		return true, true
	}
	if !isLowerHex(tc.curr) || tc.mac != nil && !isLowerHex(tc.mac) {
		return true, false // checkLine never accepts the line on this path
	}
	if again, ok := canonOf(got); ok {
		require.NotEqual(t, string(got), string(again), "projection %q of %q is canonical but not the line's canonical bytes", got, line)
	}
	return true, false
}

// TestTranscoderMatchesParser: for random records in the seed's layout
// (scalars as Python writes them) the projection is exactly what parse +
// Canonical yields (itself checked against Python), unless it defers.
func TestTranscoderMatchesParser(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var tc transcoder
	fast := 0
	const n = 4000
	for i := 0; i < n; i++ {
		m := map[string]any{"curr_hash": strings.Repeat("a", 64)}
		for j := 0; j < 1+r.IntN(6); j++ {
			m[randKey(r)] = randValue(r, 0)
		}
		line := seedLayout(r, m)
		parsed, err := parseLine([]byte(line))
		if err != nil { // e.g. 1e400 re-encoded as Infinity: not JSON
			continue
		}
		want, curr, _, _, err := slowCanonical(parsed)
		require.NoError(t, err)
		got, err := tc.transcode([]byte(line))
		if err != nil {
			continue
		}
		fast++
		if string(want) != string(got) {
			// a json.Number the generator wrote as is ("1E5", "-0"):
			// not what Python writes, and the projection is not canonical
			_, exact := checkProjection(t, &tc, []byte(line))
			require.False(t, exact)
			continue
		}
		require.Equal(t, curr, string(tc.curr))
	}
	t.Logf("transcoded %d of %d", fast, n)
	require.Greater(t, fast, n/2, "transcoder should handle most seed-layout records")
	// lines it must defer: escaped keys, bad syntax
	for _, s := range []string{`{"\u0061": 1}`, `{"a": 01}`, `{"a": 1} x`, `{"a" 1}`, `[1]`,
		`{"a": 1 2}`, `{"a": tru}`, `{"a": "x}`, `{"a": [1, 2}`, `{"a": 1,}`, `{"a": -}`, `{"a": 1.}`} {
		_, err := tc.transcode([]byte(s))
		require.ErrorIs(t, err, errSlow, s)
	}
	// lines it projects as written (duplicate keys included): not canonical, so the parser decides
	for _, s := range []string{`{"a": 1, "a": 2}`, `{"b": 1, "a": 2, "b": 3}`, `{"a": {"b": 1, "b": 2}}`, `{"a": "\u00e9"}`, `{"a": -0}`, `{"a": 1e400}`, `{"a": "\/"}`, `{"a": 1.00}`, `{"a": 1E5}`, `{"a": "\ud800"}`,
		"{\"a\": \"x\ty\"}", `{"a": "\u0041"}`, `{"a": "\U0041"}`} {
		fast, exact := checkProjection(t, &tc, []byte(s))
		require.True(t, fast, s)
		require.False(t, exact, s)
	}
}

// TestTranscoderProjection mutates seed-layout lines the way an editor or
// an attacker might (re-spelled numbers and escapes, whitespace, duplicate
// keys, inserted and deleted bytes) and checks the soundness property on
// every result.
func TestTranscoderProjection(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var tc transcoder
	edits := []func(string) string{
		func(s string) string { return strings.Replace(s, ".0", ".00", 1) },
		func(s string) string { return strings.Replace(s, "1", "1e0", 1) },
		func(s string) string { return strings.Replace(s, "a", `\u0061`, 1) },
		func(s string) string { return strings.Replace(s, ": ", " :\t", 1) },
		func(s string) string { return strings.Replace(s, `{"`, `{"seq": 1, "`, 1) },
		func(s string) string { return strings.Replace(s, `"`, `"\\`, 1+r.IntN(3)) },
		func(s string) string { i := r.IntN(len(s)); return s[:i] + s[i+1:] },
		func(s string) string { i := r.IntN(len(s)); return s[:i] + string(rune(r.IntN(0x80))) + s[i:] },
		func(s string) string { i := r.IntN(len(s)); return s[:i] + `\` + s[i:] },
	}
	counts := map[bool]int{}
	for i := 0; i < 4000; i++ {
		m := map[string]any{"curr_hash": strings.Repeat("b", 64), "seq": int64(i)}
		for j := 0; j < 1+r.IntN(5); j++ {
			m[randKey(r)] = randValue(r, 0)
		}
		line := seedLayout(r, m)
		for k := 0; k < 1+r.IntN(3); k++ {
			line = edits[r.IntN(len(edits))](line)
		}
		fast, exact := checkProjection(t, &tc, []byte(line))
		counts[fast && !exact]++
	}
	t.Logf("non-canonical projections checked: %d, others: %d", counts[true], counts[false])
	require.Greater(t, counts[true], 200, "the edits should produce many non-canonical projections")
}

// FuzzTranscoder checks the soundness property on any input.
func FuzzTranscoder(f *testing.F) {
	for _, s := range []string{`{"b": 1.0, "a": [1, {"d": null, "c": "x"}], "curr_hash": "h"}`, `{"a": "\u0041", "a ": 1e5}`, `{"a": 1.00}`} {
		f.Add([]byte(s))
	}
	var tc transcoder
	f.Fuzz(func(t *testing.T, line []byte) { checkProjection(t, &tc, line) })
}

// BenchmarkTranscode projects one ~640-byte seed-layout sanitize_end line
// (keys in a fixed unsorted order, as the seed writes them).
func BenchmarkTranscode(b *testing.B) {
	line := []byte(`{"event_type": "sanitize_end", "tenant_id": "tenant-0042", "nbytes": 4096, "coverage_pct": 100.0, "request_id": "req-000123", ` +
		`"shape": [2, 16, 8, 128], "model_id": "llama-3-8b", "handle": "9f1c2b7e-4a4d-4c1e-9a51-3d2f6b7c8e90", "dtype": "float16", "device": "cuda", ` +
		`"block": 17, "ts": 1763856000.123456, "trace_id": "5d0e7f0c-3a61-4b7e-8d1a-6a9b2c4e1f00", "schema": 1, "seq": 17, "kid": "k1", ` +
		`"prev_hash": "` + strings.Repeat("ab", 32) + `", "curr_hash": "` + strings.Repeat("cd", 32) + `", "hmac": "` + strings.Repeat("ef", 32) + `"}`)
	var tc transcoder
	if _, err := tc.transcode(line); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tc.transcode(line); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSeedLayoutEditsGoToParser edits a line of the seed's HMAC fixture in
// ways the projection does not hash right; the parser decides. The seed
// writes every scalar in canonical form, so a line that hashes only after
// re-encoding was edited: meaning-preserving edits (a re-spelled number or
// escape, a duplicate key that json.loads ignores) fail as non_canonical,
// where the seed's verifier accepts them (a deliberate difference, in the
// README); the rest fail with the parser's reason.
func TestSeedLayoutEditsGoToParser(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(compatRoot(), "hmac", "kv_cache.log"))
	require.NoError(t, err)
	lines := strings.SplitAfter(string(src), "\n")
	require.Contains(t, lines[1], `"coverage_pct": 100.0`)
	mac := regexp.MustCompile(`"hmac": "([0-9a-f]+)"`)
	curr := regexp.MustCompile(`"curr_hash": "[0-9a-f]+"`)
	cases := []struct {
		name   string
		edit   func(string) string
		reason string // "" when the line still verifies
		seedOK bool   // what the seed's verifier says
	}{
		{"whitespace", func(l string) string { return strings.Replace(l, `, "handle"`, ` ,"handle"`, 1) }, "", true},
		{"float respelled", func(l string) string { return strings.Replace(l, `100.0`, `100.00`, 1) }, ReasonNonCanonical, true},
		{"float as exponent", func(l string) string { return strings.Replace(l, `"duration_ms": 0.0`, `"duration_ms": 0e0`, 1) }, ReasonNonCanonical, true},
		{"hmac with an escape", func(l string) string {
			h := mac.FindStringSubmatch(l)[1]
			return strings.Replace(l, h, fmt.Sprintf(`\u%04x`, h[0])+h[1:], 1)
		}, ReasonNonCanonical, true},
		{"duplicate key", func(l string) string {
			return strings.Replace(l, `"handle": "h1"`, `"handle": "h9", "handle": "h1"`, 1)
		}, ReasonNonCanonical, true},
		{"duplicate key, escaped", func(l string) string {
			return strings.Replace(l, `"handle": "h1"`, `"\u0068andle": "h9", "handle": "h1"`, 1)
		}, ReasonNonCanonical, true},
		{"duplicate curr_hash", func(l string) string {
			return strings.Replace(l, `"event_type"`, `"curr_hash": "`+strings.Repeat("0", 64)+`", "event_type"`, 1)
		}, ReasonNonCanonical, true},
		{"value changed", func(l string) string { return strings.Replace(l, `"h1"`, `"h2"`, 1) }, ReasonBadHash, false},
		{"hmac changed", func(l string) string { return mac.ReplaceAllString(l, `"hmac": "`+strings.Repeat("0", 64)+`"`) }, ReasonBadHMAC, false},
		{"hmac replaced", func(l string) string { return mac.ReplaceAllString(l, `"x": 1`) }, ReasonBadHash, false},
		{"hmac removed", func(l string) string { return strings.Replace(l, `, `+mac.FindString(l), "", 1) }, ReasonMissingHMAC, true},
		{"bad UTF-8", func(l string) string { return strings.Replace(l, `"h1"`, "\"h\xff\"", 1) }, ReasonMalformed, false}, // the seed's verifier raises
	}
	require.True(t, curr.MatchString(lines[1]))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			edited := append([]string(nil), lines...)
			edited[1] = c.edit(lines[1])
			require.NotEqual(t, lines[1], edited[1])
			p := filepath.Join(t.TempDir(), "kv_cache.log")
			require.NoError(t, os.WriteFile(p, []byte(strings.Join(edited, "")), 0o600))
			res, err := VerifyChain(p, VerifyOptions{HMACKey: testKey})
			require.NoError(t, err)
			require.Equal(t, c.reason == "", res.OK, "%+v", res.Failures)
			if c.reason != "" {
				require.Equal(t, c.reason, res.Failures[0].Reason, "%+v", res.Failures)
				require.Equal(t, 1, res.Failures[0].Line)
			}
			if c.reason != ReasonMalformed {
				require.Equal(t, c.seedOK, seedVerify(t, p, testKey), "the seed's verifier")
			}
		})
	}
}

// TestTranscoderKeyOrderCache: lines whose keys share their first eight
// bytes and length, in two different orders, each project sorted (the
// cached orders are told apart by the keys' last bytes too).
func TestTranscoderKeyOrderCache(t *testing.T) {
	var tc transcoder
	lines := []string{
		`{"timestamp_b": 2, "timestamp_a": 1, "curr_hash": "00"}`,
		`{"timestamp_a": 1, "timestamp_b": 2, "curr_hash": "00"}`,
		`{"timestamp_b": 2, "z": 0, "timestamp_a": 1}`,
	}
	want := []string{`{"timestamp_a":1,"timestamp_b":2}`, `{"timestamp_a":1,"timestamp_b":2}`, `{"timestamp_a":1,"timestamp_b":2,"z":0}`}
	for round := 0; round < 3; round++ {
		for i, l := range lines {
			got, err := tc.transcode([]byte(l))
			require.NoError(t, err, l)
			require.Equal(t, want[i], string(got), "round %d: %s", round, l)
		}
	}
	require.Len(t, tc.perms, len(lines), "one cached order per layout")
}

func TestHasDuplicateKey(t *testing.T) {
	for _, c := range []struct {
		line string
		dup  bool
	}{
		{`{"a": 1, "b": 2}`, false}, {`{"a": 1, "a": 2}`, true}, {`{"\u0061": 1, "a": 2}`, true},
		{`{"a": {"b": 1}, "b": {"a": 1}}`, false}, {`{"a": {"b": 1, "b": 1}}`, true}, {`{"a": [{"b": 1}, {"b": 1}]}`, false},
		{`{"a": [{"b": 1, "c": [1, {"d": 1, "d": 2}]}]}`, true}, {`{"a": [], "b": {}, "c": [[]]}`, false}, {`{"a": [1, 2], "a ": 3}`, false},
	} {
		require.Equal(t, c.dup, hasDuplicateKey([]byte(c.line)), c.line)
	}
}

// TestNumberEnd: the plain-decimal shortcut agrees with isJSONNumber on the
// whole run of number bytes, for every string of up to five of them, followed
// by a ',' and at the end of the input.
func TestNumberEnd(t *testing.T) {
	alpha := []byte("0123456789.-+eE")
	var rec func(prefix []byte)
	n := 0
	rec = func(prefix []byte) {
		if len(prefix) > 0 && (prefix[0] == '-' || prefix[0] >= '0' && prefix[0] <= '9') {
			for _, in := range [][]byte{append(append([]byte(nil), prefix...), ','), prefix} {
				e, ok := numberEnd(in, 0)
				require.Equal(t, len(prefix), e, "%s", in)
				require.Equal(t, isJSONNumber(string(prefix)), ok, "%s", in)
			}
			n++
		}
		if len(prefix) == 5 {
			return
		}
		for _, c := range alpha {
			rec(append(prefix, c))
		}
	}
	rec(nil)
	require.Greater(t, n, 100000)
}
