package forensic

import (
	"math/rand/v2"
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

// TestTranscoderMatchesParser: for random records in the seed's layout the
// transcoder either defers (errSlow) or yields exactly what parse +
// Canonical yields (itself checked against Python).
func TestTranscoderMatchesParser(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var tc transcoder
	fast := 0
	const n = 4000
	for i := 0; i < n; i++ {
		m := map[string]any{"curr_hash": strings.Repeat("a", 64)}
		for j := 0; j < 1+r.IntN(6); j++ {
			m[randString(r)] = randValue(r, 0)
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
		require.Equal(t, string(want), string(got), line)
		require.Equal(t, curr, string(tc.curr))
	}
	t.Logf("transcoded %d of %d", fast, n)
	require.Greater(t, fast, n/10, "transcoder should handle many seed-layout records")
	// lines it must defer
	for _, s := range []string{`{"a": 1, "a": 2}`, `{"\u0061": 1}`, `{"a": "\u00e9"}`, `{"a": -0}`, `{"a": 1e400}`, `{"a": "\/"}`, `{"a": 01}`, `{"a": 1} x`, `{"a" 1}`, `[1]`} {
		_, err := tc.transcode([]byte(s))
		require.ErrorIs(t, err, errSlow, s)
	}
}
