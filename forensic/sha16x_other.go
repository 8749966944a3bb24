//go:build !amd64 || purego

package forensic

// sha16xFast: no sixteen-lane assembly on this platform.
var sha16xFast = false

func block16(st *[8][16]uint32, base *byte, off, n *[16]uint32) {
	block16Generic(st, base, off, n)
}

func block16x2(st *[2][8][16]uint32, base *byte, off, n *[16]uint32, _ *[64][16]uint32) {
	block16x2Generic(st, base, off, n)
}
