package forensic

import "testing"

// keyLess (8-byte prefix, then the full key) must order keys exactly as a
// plain byte-wise string comparison does: the canonical encoding depends on it.
func FuzzKeyLess(f *testing.F) {
	for _, p := range [][2]string{
		{"a", "a\x00"}, {"", "\x00"}, {"abcdefgh", "abcdefgh"}, {"abcdefgh", "abcdefghi"},
		{"abcdefgz", "abcdefgh\xff"}, {"prev_hash", "prev_file"}, {"\xff", "\xfe\xff"},
		{"tenant_id", "tenant_id2"}, {"ü", "z"}, {"seq", "schema"},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		kvs := []kv{{key: a}, {key: b}}
		ka, kb := sortKey{pfx: keyPrefix(a), i: 0}, sortKey{pfx: keyPrefix(b), i: 1}
		if got, want := keyLess(kvs, ka, kb), a < b; got != want {
			t.Fatalf("keyLess(%q, %q) = %v, string order says %v", a, b, got, want)
		}
		if got, want := keyLess(kvs, kb, ka), b < a; got != want {
			t.Fatalf("keyLess(%q, %q) = %v, string order says %v", b, a, got, want)
		}
	})
}
