package cpuzero

import (
	"encoding/binary"
	"math/bits"
)

// genericKernel is the portable implementation: clear() (the runtime's memclr) for zeroing
// and a word-at-a-time OR-reduce for verification.
var genericKernel = &kernel{
	name:   KernelGeneric,
	zero:   zeroGeneric,
	zeroNT: zeroGeneric,
	any:    anyGeneric,
}

func zeroGeneric(b []byte) { clear(b) }

// anyGeneric reports whether b holds a non-zero byte, reading it 32 bytes at a time.
func anyGeneric(b []byte) bool {
	var a0, a1, a2, a3 uint64
	for len(b) >= 32 {
		a0 |= binary.LittleEndian.Uint64(b[0:8])
		a1 |= binary.LittleEndian.Uint64(b[8:16])
		a2 |= binary.LittleEndian.Uint64(b[16:24])
		a3 |= binary.LittleEndian.Uint64(b[24:32])
		b = b[32:]
	}
	for len(b) >= 8 {
		a0 |= binary.LittleEndian.Uint64(b[:8])
		b = b[8:]
	}
	for _, c := range b {
		a1 |= uint64(c)
	}
	return a0|a1|a2|a3 != 0
}

const (
	lo7 = 0x7f7f7f7f7f7f7f7f
	hi1 = 0x8080808080808080
)

// nonZeroInWord returns the number of non-zero bytes of w: for each byte x,
// ((x&0x7f)+0x7f)|x has its top bit set exactly when x != 0, and no carry crosses bytes.
func nonZeroInWord(w uint64) int {
	return bits.OnesCount64((((w & lo7) + lo7) | w) & hi1)
}

// countNonZero returns the exact number of non-zero bytes of b.
func countNonZero(b []byte) uint64 {
	var n int
	for len(b) >= 8 {
		if w := binary.LittleEndian.Uint64(b[:8]); w != 0 {
			n += nonZeroInWord(w)
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			n++
		}
	}
	return uint64(n)
}
