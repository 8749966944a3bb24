//go:build !amd64 || purego

package forensic

const quoteMaskFast = false

// quoteMasksBlocks fills qm (one word per block) from the 64-byte blocks
// of in (len(in) == 64*len(qm)).
func quoteMasksBlocks(qm []uint64, in []byte) { quoteMasksGeneric(qm, in) }

func quoteMasksAVX2(in *byte, blocks int, qm *uint64) {
	panic("forensic: quoteMasksAVX2 without assembly")
}
