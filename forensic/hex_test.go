package forensic

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHexEncode32: every byte value at every position, through the
// dispatcher and each implementation.
func TestHexEncode32(t *testing.T) {
	impls := map[string]func(*[64]byte, *[32]byte){"dispatch": hexEncode32, "generic": hexEncode32Generic}
	if hexFast {
		impls["avx"] = hexEncode32AVX
	}
	for name, enc := range impls {
		var src [32]byte
		for v := 0; v < 256; v++ {
			for i := range src {
				src[i] = byte(v + i*37)
			}
			dst := [64]byte{}
			for i := range dst {
				dst[i] = '!'
			}
			enc(&dst, &src)
			require.Equal(t, hex.EncodeToString(src[:]), string(dst[:]), name)
		}
	}
}

// TestHexEqual32: equal to the hex of the digest and nothing else: any one
// digit changed (to another digit, to upper case), another length. Both
// implementations where the assembly runs.
func TestHexEqual32(t *testing.T) {
	impls := map[string]func(*[32]byte, []byte) bool{"generic": hexEqual32Generic}
	if hexFast {
		impls["avx"] = func(s *[32]byte, h []byte) bool { return hexEqual32AVX(s, &h[0]) }
	}
	for name, eq := range impls {
		for v := 0; v < 64; v++ {
			checkHexEqual32(t, name, eq, v)
		}
	}
	// through the dispatcher, with the lengths it refuses
	var src [32]byte
	h := []byte(hex.EncodeToString(src[:]))
	require.True(t, hexEqual32(&src, h))
	require.False(t, hexEqual32(&src, h[:63]))
	require.False(t, hexEqual32(&src, append(h, '0')))
	require.False(t, hexEqual32(&src, nil))
}

func checkHexEqual32(t *testing.T, name string, eq func(*[32]byte, []byte) bool, v int) {
	var src [32]byte
	for i := range src {
		src[i] = byte(v*7 + i*37)
	}
	h := []byte(hex.EncodeToString(src[:]))
	require.True(t, eq(&src, h), name)
	for i := range h {
		for _, c := range []byte("0123456789abcdefABCDEF \x00") {
			if c == h[i] {
				continue
			}
			bad := append([]byte(nil), h...)
			bad[i] = c
			require.False(t, eq(&src, bad), "%s: %s", name, bad)
		}
	}
}

func BenchmarkHexEncode32(b *testing.B) {
	var src [32]byte
	var dst [64]byte
	for i := range src {
		src[i] = byte(i * 37)
	}
	impls := map[string]func(*[64]byte, *[32]byte){"generic": hexEncode32Generic}
	if hexFast {
		impls["avx"] = hexEncode32AVX
	}
	for name, enc := range impls {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				enc(&dst, &src)
			}
		})
	}
}
