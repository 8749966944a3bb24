package forensic

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// pyCanon is a persistent python3 process running tests/forensic/canon.py.
type pyCanon struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func startPy(tb testing.TB) *pyCanon {
	tb.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		tb.Skip("python3 not installed")
	}
	cmd := exec.Command(py, filepath.Join(repoRoot(), "tests", "forensic", "canon.py"))
	in, err := cmd.StdinPipe()
	require.NoError(tb, err)
	outp, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	p := &pyCanon{cmd: cmd, in: in, out: bufio.NewReaderSize(outp, 1<<20)}
	tb.Cleanup(func() { in.Close(); cmd.Wait() })
	return p
}

// canon sends docs (each one JSON line) and returns Python's canonical forms.
func (p *pyCanon) canon(tb testing.TB, docs []string) []string {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	go func() {
		w := bufio.NewWriter(p.in)
		for _, d := range docs {
			w.WriteString(d)
			w.WriteByte('\n')
		}
		w.Flush()
	}()
	out := make([]string, len(docs))
	for i := range docs {
		line, err := p.out.ReadBytes('\n')
		require.NoError(tb, err, "python died at doc %d: %s", i, docs[i])
		require.NoError(tb, json.Unmarshal(line, &out[i]))
	}
	return out
}

// toPyJSON encodes v as JSON that Python parses back to the same value and
// type (floats always carry an exponent so they stay floats, -0.0 included).
func toPyJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case string:
		s, _ := json.Marshal(x)
		return append(b, s...)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		return strconv.AppendFloat(b, x, 'e', -1, 64)
	case json.Number:
		return append(b, x...)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = toPyJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		b = append(b, '{')
		i := 0
		for k, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			i++
			b = toPyJSON(b, k)
			b = append(b, ':')
			b = toPyJSON(b, e)
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("toPyJSON: %T", v))
}

var runePool = []rune{'a', 'z', 'A', '0', ' ', '"', '\\', '/', '<', '>', '&', '\'', 0, 1, 8, 9, 10, 12, 13, 0x1f, 0x7f,
	0x80, 0xe9, 0x2028, 0x2029, 0xfeff, 0xe000, 0xff61, 0xffff, 0x10000, 0x1f600, 0x10ffff, 'é', '日', '本'}

func randString(r *rand.Rand) string {
	n := r.IntN(12)
	var sb strings.Builder
	for i := 0; i < n; i++ {
		if r.IntN(3) == 0 {
			sb.WriteRune(rune(r.IntN(0x800)))
		} else {
			sb.WriteRune(runePool[r.IntN(len(runePool))])
		}
	}
	return sb.String()
}

var floatPool = []float64{0, math.Copysign(0, -1), 1, -1, 1.5, 0.1, 0.30000000000000004, 1e16, 1e15, 9999999999999998,
	1e-4, 1e-5, 1e-7, 123456789.123, 5e-324, math.MaxFloat64, -math.SmallestNonzeroFloat64, 1e22, 1e21, 2.5e-5, 1795346751.2176793,
	// the edges of repr's fixed notation, [1e-4, 1e16)
	math.Nextafter(1e-4, 0), math.Nextafter(1e-4, 1), -1e-4, math.Nextafter(1e16, 0), -math.Nextafter(1e16, 0), 1e16 + 2, 100, 4503599627370496.5,
	// integral values (appendPyFloat's integer path) around 2^53, where doubles become even integers
	-100, 9007199254740992, 9007199254740994, -9007199254740996, 9007199254740991, 4503599627370497, 1234567890123456}

func randFloat(r *rand.Rand) float64 {
	switch r.IntN(4) {
	case 0:
		return floatPool[r.IntN(len(floatPool))]
	case 1:
		return float64(r.Int64N(1<<53)) / float64(int64(1)<<r.IntN(60))
	default:
		for {
			f := math.Float64frombits(r.Uint64())
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	}
}

func randValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth > 3 && k >= 8 {
		k = 0
	}
	switch k {
	case 0:
		return randString(r)
	case 1:
		return int64(r.Uint64())
	case 2:
		return randFloat(r)
	case 3:
		return []any{nil, true, false}[r.IntN(3)]
	case 4:
		d := strconv.FormatUint(r.Uint64(), 10) + strconv.FormatUint(r.Uint64(), 10)
		if r.IntN(2) == 0 {
			d = "-" + d
		}
		return json.Number(d)
	case 5:
		return uint64(r.Uint64())
	case 6:
		return []any{json.Number("1.0"), json.Number("-0"), json.Number("1E5"), json.Number("-0.0"), json.Number("1e400")}[r.IntN(5)]
	case 7:
		return randString(r)
	case 8:
		n := r.IntN(4)
		l := make([]any, n)
		for i := range l {
			l[i] = randValue(r, depth+1)
		}
		return l
	default:
		n := r.IntN(5)
		m := make(map[string]any, n)
		for i := 0; i < n; i++ {
			m[randString(r)] = randValue(r, depth+1)
		}
		return m
	}
}

func TestCanonicalMatchesPython(t *testing.T) {
	py := startPy(t)
	r := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	vals := make([]any, n)
	docs := make([]string, n)
	for i := range vals {
		m := map[string]any{}
		for j := 0; j < 1+r.IntN(6); j++ {
			m[randString(r)] = randValue(r, 0)
		}
		vals[i] = m
		docs[i] = string(toPyJSON(nil, m))
	}
	for _, f := range floatPool { // every edge case once, whatever the draws
		vals = append(vals, map[string]any{"f": f})
		docs = append(docs, string(toPyJSON(nil, map[string]any{"f": f})))
	}
	want := py.canon(t, docs)
	for i, v := range vals {
		got, err := Canonical(v)
		require.NoError(t, err)
		require.Equal(t, want[i], string(got), "doc %s", docs[i])
	}
}

func TestCanonicalTable(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{1.0, "1.0"}, {1e16, "1e+16"}, {1e-7, "1e-07"}, {math.Copysign(0, -1), "-0.0"}, {0.30000000000000004, "0.30000000000000004"},
		{1e15, "1000000000000000.0"}, {1.5e-5, "1.5e-05"}, {0.0001, "0.0001"}, {math.Inf(1), "Infinity"}, {math.NaN(), "NaN"},
		{json.Number("123456789012345678901234567890"), "123456789012345678901234567890"}, {json.Number("1.50"), "1.5"},
		{"\u2028<&>\x01\x7f\"\\\n", "\"\u2028<&>\\u0001\x7f\\\"\\\\\\n\""},
		{map[string]any{"b": 1, "a": []any{nil, true}, "\U0001F600": 1, "\uff61": 2}, "{\"a\":[null,true],\"b\":1,\"\uff61\":2,\"\U0001F600\":1}"},
		{[]int64{1, -2}, "[1,-2]"}, {namedU(7), "7"}, {[]namedS{"a"}, "[\"a\"]"}, {[]uint64{1}, "[1]"}, {map[string]int{"z": 1, "a": 2}, "{\"a\":2,\"z\":1}"},
		{(*int)(nil), "null"}, {[2]float32{0.5, 1}, "[0.5,1.0]"}, {[]uint32{3}, "[3]"}, {[]string{"x"}, "[\"x\"]"},
	}
	for _, c := range cases {
		got, err := Canonical(c.in)
		require.NoError(t, err)
		require.Equal(t, c.want, string(got), "%#v", c.in)
	}
	for _, bad := range []any{"\xff", json.Number("1.2.3"), struct{}{}, map[string]any{"\xfe": 1}, map[int]string{1: "x"}, make(chan int)} {
		_, err := Canonical(bad)
		require.True(t, errors.Is(err, ErrUnsupported), "%#v: %v", bad, err)
	}
}

// TestSortOrderIsCodePoint checks Go's byte-wise key sort against Python's
// code-point sort on keys mixing BMP-high and astral characters.
func TestSortOrderIsCodePoint(t *testing.T) {
	keys := []string{"\uffff", "\U00010000", "\ue000", "z", "\u00e9", "\U0010ffff", "", "a\x00"}
	byCP := append([]string(nil), keys...)
	sort.Slice(byCP, func(i, j int) bool {
		a, b := []rune(byCP[i]), []rune(byCP[j])
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return len(a) < len(b)
	})
	m := map[string]any{}
	for i, k := range keys {
		m[k] = i
	}
	got, err := Canonical(m)
	require.NoError(t, err)
	var order []string
	dec := json.NewDecoder(strings.NewReader(string(got)))
	dec.Token()
	for dec.More() {
		tok, _ := dec.Token()
		order = append(order, tok.(string))
		dec.Token()
	}
	require.Equal(t, byCP, order)
}

func FuzzCanonical(f *testing.F) {
	f.Add("héllo\u2028", 1.5, int64(-3), "k")
	f.Add("\x00\"\\", 1e16, int64(0), "\U0001F600")
	f.Add("", math.Copysign(0, -1), int64(1)<<62, "")
	py := startPy(f)
	f.Fuzz(func(t *testing.T, s string, x float64, n int64, k string) {
		if !utf8.ValidString(s) || !utf8.ValidString(k) {
			_, err := Canonical(map[string]any{k: s})
			require.Error(t, err)
			return
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			x = 0
		}
		v := map[string]any{"s": s, k: []any{x, n, map[string]any{s: k}}}
		got, err := Canonical(v)
		require.NoError(t, err)
		want := py.canon(t, []string{string(toPyJSON(nil, v))})
		require.Equal(t, want[0], string(got))
	})
}

type namedU uint64
type namedS string

// Text and Decimal are logged exactly as the string they stand for, both in
// Canonical and in the writer's own lines, which the seed's verifier accepts.
func TestTextAndDecimal(t *testing.T) {
	for _, s := range []string{"", "tenant-a", "héllo \u2028\u2029 \"q\" \\ \x01 😀"} {
		want, err := Canonical(s)
		require.NoError(t, err)
		got, err := Canonical(Text(s))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
	for _, u := range []uint64{0, 7, 255, 256, 1<<64 - 1} {
		got, err := Canonical(Decimal(u))
		require.NoError(t, err)
		require.Equal(t, `"`+strconv.FormatUint(u, 10)+`"`, string(got))
	}
	got, err := Canonical([]any{Text("a"), Decimal(12)})
	require.NoError(t, err)
	require.Equal(t, `["a","12"]`, string(got))

	p := filepath.Join(t.TempDir(), "kv.log")
	w, err := Open(Options{Path: p, HMACKey: testKey, Fsync: FsyncNone})
	require.NoError(t, err)
	require.NoError(t, w.Append("allocate", Field{"handle", Decimal(1 << 40)}, Field{"tenant_id", Text("tenant-é")}, Field{"request_id", "r1"}))
	require.NoError(t, w.Close())
	lines := readLines(t, p)
	require.Len(t, lines, 1)
	m, err := parseLine([]byte(lines[0]))
	require.NoError(t, err)
	require.Equal(t, strconv.FormatUint(1<<40, 10), getString(m, "handle"))
	require.Equal(t, "tenant-é", getString(m, "tenant_id"))
	res, err := VerifyChain(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.True(t, seedVerify(t, p, testKey))
}
