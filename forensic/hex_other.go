//go:build !amd64 || purego

package forensic

// hexFast: no assembly hex encoding or compare on this platform.
const hexFast = false

func hexEqual32AVX(sum *[32]byte, h *byte) bool { panic("forensic: hexEqual32AVX without assembly") }

func hexEncode32AVX(dst *[64]byte, src *[32]byte) { panic("forensic: hexEncode32AVX without assembly") }
