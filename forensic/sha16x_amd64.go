//go:build amd64 && !purego

package forensic

import "github.com/klauspost/cpuid/v2"

// sha16xFast: block16 is the sixteen-lane AVX-512 assembly. It pays where
// 512-bit vector work runs at full width: Intel CPUs with AVX-512 and AMD
// from Zen 5 (family 0x1A) on; Zen 4 splits each 512-bit operation in
// two, and its two-lane SHA-NI path is faster there.
var sha16xFast = cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW) &&
	(cpuid.CPU.VendorID != cpuid.AMD || cpuid.CPU.Family >= 0x1a)

// block16AVX512 is block16 in assembly (sha16x_amd64.s).
//
//go:noescape
func block16AVX512(st *[8][16]uint32, base *byte, off, n *[16]uint32)

func block16(st *[8][16]uint32, base *byte, off, n *[16]uint32) {
	if sha16xFast {
		block16AVX512(st, base, off, n)
		return
	}
	block16Generic(st, base, off, n)
}

// block16x2AVX512 is block16x2 in assembly (sha16x_amd64.s).
//
//go:noescape
func block16x2AVX512(st *[2][8][16]uint32, base *byte, off, n *[16]uint32, wk *[64][16]uint32)

func block16x2(st *[2][8][16]uint32, base *byte, off, n *[16]uint32, wk *[64][16]uint32) {
	if sha16xFast {
		block16x2AVX512(st, base, off, n, wk)
		return
	}
	block16x2Generic(st, base, off, n)
}
