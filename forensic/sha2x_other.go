//go:build !amd64 || purego

package forensic

// sha2xFast: no interleaved assembly on this platform.
var sha2xFast = false

// block2 absorbs n blocks at a into s[0:8] and n blocks at b into s[8:16].
func block2(s *[16]uint32, a, b *byte, n int) {
	block2Generic(s, a, b, n)
}
