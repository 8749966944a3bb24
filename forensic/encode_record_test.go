package forensic

import (
	"bytes"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// reCanon parses an encoded record and encodes it again with Canonical: the
// record encoder's output must be canonical JSON already.
func reCanon(t *testing.T, line []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var m map[string]any
	require.NoError(t, d.Decode(&m), "%s", line)
	c, err := Canonical(m)
	require.NoError(t, err)
	return string(c)
}

// The key templates (one per distinct field list) give the same bytes as
// sorting every record, across more distinct lists than the cache holds,
// lists that differ only in order or by one key, and the writer's optional
// fields (fse; schema, ts and trace_id given by the caller).
func TestRecordEncoderTemplates(t *testing.T) {
	var e recordEncoder
	rng := mrand.NewChaCha8([32]byte{9})
	r := mrand.New(mrand.NewPCG(3, 4))
	names := []string{"a", "zeta", "handle", "tenant_id", "é", "b\"q", "ts", "schema", "trace_id", "block", "coverage_pct", "aa", "a\u2028"}
	var lists [][]Field
	for len(lists) < 3*maxKeyTemplates {
		perm := r.Perm(len(names))[:1+r.IntN(6)]
		var fs []Field
		for _, i := range perm {
			var v any
			switch names[i] {
			case "ts":
				v = 1795346751.2176793
			case "schema":
				v = int64(2)
			case "trace_id":
				v = "caller-trace"
			default:
				v = []any{r.Int64(), r.Float64(), "x"}
			}
			fs = append(fs, Field{names[i], v})
		}
		lists = append(lists, fs)
	}
	var b []byte
	for i := 0; i < 2000; i++ {
		fs := lists[r.IntN(len(lists))]
		fse := int64(-1)
		if r.IntN(3) == 0 {
			fse = int64(r.IntN(100))
		}
		b, _, _ = encodeCanon(b[:0], &e, rng, "kid-1", fse, "write", fs, 1795346751217679300, []byte("GENESIS"), uint64(i), false)
		require.Equal(t, reCanon(t, b), string(b), "record %d", i)
	}
	require.Len(t, e.tmpls, maxKeyTemplates, "the cache is bounded")
}

// A template keeps copies of the keys: a caller that reuses the memory its
// key strings point to (as the C ABI's callers may) cannot change a cached
// template.
func TestRecordEncoderKeysCopied(t *testing.T) {
	var e recordEncoder
	rng := mrand.NewChaCha8([32]byte{9})
	buf := []byte("alpha")
	key := unsafe.String(&buf[0], len(buf))
	b, _, _ := encodeCanon(nil, &e, rng, "k", -1, "write", []Field{{key, "v"}}, 1, []byte("GENESIS"), 0, false)
	require.Contains(t, string(b), `"alpha":"v"`)
	copy(buf, "omega")
	b, _, _ = encodeCanon(b[:0], &e, rng, "k", -1, "write", []Field{{key, "v"}}, 1, []byte("GENESIS"), 0, false)
	require.Contains(t, string(b), `"omega":"v"`)
	require.Equal(t, reCanon(t, b), string(b))
	require.Len(t, e.tmpls, 2)
	require.Equal(t, []string{"alpha"}, e.tmpls[0].keys)
}

func ExampleCanonical() {
	b, _ := Canonical(map[string]any{"b": 1.0, "a": []any{"é", 1e16}})
	fmt.Println(string(b))
	// Output: {"a":["é",1e+16],"b":1.0}
}
