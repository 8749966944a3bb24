//go:build amd64 && !purego

package forensic

import "github.com/klauspost/cpuid/v2"

// sha2xFast: block2 is the interleaved SHA-NI assembly.
var sha2xFast = cpuid.CPU.Supports(cpuid.SHA, cpuid.SSSE3, cpuid.SSE4, cpuid.AVX)

// block2 absorbs n blocks at a into s[0:8] and n blocks at b into s[8:16]
// (the portable code where the CPU lacks SHA-NI).
func block2(s *[16]uint32, a, b *byte, n int) {
	if sha2xFast {
		block2SHANI(s, a, b, n)
		return
	}
	block2Generic(s, a, b, n)
}

// block2SHANI is block2 in assembly (sha2x_amd64.s); it needs SHA-NI,
// SSSE3, SSE4.1 and AVX.
//
//go:noescape
func block2SHANI(s *[16]uint32, a, b *byte, n int)
