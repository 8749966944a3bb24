//go:build amd64 && !purego

package forensic

import "github.com/klauspost/cpuid/v2"

var quoteMaskFast = cpuid.CPU.Supports(cpuid.AVX2)

// quoteMasksBlocks fills qm (one word per block) from the 64-byte blocks
// of in (len(in) == 64*len(qm)).
func quoteMasksBlocks(qm []uint64, in []byte) {
	if quoteMaskFast {
		quoteMasksAVX2(&in[0], len(qm), &qm[0])
		return
	}
	quoteMasksGeneric(qm, in)
}

// quoteMasksAVX2 is quoteMasksBlocks in assembly (quotemask_amd64.s).
//
//go:noescape
func quoteMasksAVX2(in *byte, blocks int, qm *uint64)
