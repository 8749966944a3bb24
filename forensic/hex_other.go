//go:build !amd64 || purego

package forensic

// hexFast: no assembly hex compare on this platform.
const hexFast = false

func hexEqual32AVX(sum *[32]byte, h *byte) bool { panic("forensic: hexEqual32AVX without assembly") }
