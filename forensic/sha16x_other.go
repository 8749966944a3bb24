//go:build !amd64 || purego

package forensic

// sha16xFast: no sixteen-lane assembly on this platform.
var sha16xFast = false

func block16(st *[8][16]uint32, base *byte, off, last, n *[16]uint32) {
	block16Generic(st, base, off, last, n)
}
