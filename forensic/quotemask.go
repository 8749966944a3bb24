package forensic

import "math/bits"

// Quote masks: bit i%64 of word i/64 is set where byte i of a line is '"' or
// '\\'. The transcoder computes them for the whole line once (64 bytes per
// word, AVX2 on amd64) and then finds the end of every string with a shift
// and a trailing-zero count instead of scanning its bytes.

// quoteMasks returns the masks of in, appended to qm[:0].
func quoteMasks(qm []uint64, in []byte) []uint64 {
	n := (len(in) + 63) / 64
	if cap(qm) < n {
		qm = make([]uint64, n, n+n/2)
	}
	qm = qm[:n]
	whole := len(in) / 64
	if whole > 0 {
		quoteMasksBlocks(qm[:whole], in[:whole*64])
	}
	if r := in[whole*64:]; len(r) > 0 {
		if quoteMaskFast { // one zero-padded block: no byte loop over the tail
			var pad [64]byte
			copy(pad[:], r)
			quoteMasksBlocks(qm[whole:whole+1], pad[:])
		} else {
			qm[whole] = quoteMaskTail(r)
		}
	}
	return qm
}

// quoteMaskTail is the mask of fewer than 64 bytes (and the portable one).
func quoteMaskTail(b []byte) uint64 {
	var m uint64
	for i, c := range b {
		if c == '"' || c == '\\' {
			m |= 1 << uint(i)
		}
	}
	return m
}

// quoteMasksGeneric fills qm from the 64-byte blocks of in.
func quoteMasksGeneric(qm []uint64, in []byte) {
	for w := range qm {
		qm[w] = quoteMaskTail(in[64*w : 64*w+64])
	}
}

// nextQuote returns the index of the first '"' or '\\' at or after j (n,
// the line's length, if none).
func nextQuote(qm []uint64, j, n int) int {
	w := j >> 6
	if w >= len(qm) {
		return n
	}
	if m := qm[w] >> (uint(j) & 63); m != 0 {
		return j + bits.TrailingZeros64(m)
	}
	for w++; w < len(qm); w++ {
		if qm[w] != 0 {
			return w<<6 + bits.TrailingZeros64(qm[w])
		}
	}
	return n
}
