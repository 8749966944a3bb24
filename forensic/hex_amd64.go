//go:build amd64 && !purego

package forensic

import "github.com/klauspost/cpuid/v2"

// hexFast: hexEqual32 and hexEncode32 use the assembly.
var hexFast = cpuid.CPU.Supports(cpuid.SSSE3, cpuid.AVX)

// hexEqual32AVX is hexEqual32 in assembly (hex_amd64.s) for the 64 bytes at
// h; it needs SSSE3 and AVX.
//
//go:noescape
func hexEqual32AVX(sum *[32]byte, h *byte) bool

// hexEncode32AVX is hexEncode32 in assembly; it needs SSSE3 and AVX.
//
//go:noescape
func hexEncode32AVX(dst *[64]byte, src *[32]byte)
