package forensic

import "encoding/binary"

// Lowercase hex of SHA-256 digests: the chain's curr_hash, prev_hash and
// hmac fields are 64 hex digits.

// hexEncode32 is hex.Encode for a digest (the writer encodes two per
// record): hexEncode32AVX where the CPU has it, else hexEncode32Generic.
func hexEncode32(dst *[64]byte, src *[32]byte) {
	if hexFast {
		hexEncode32AVX(dst, src)
		return
	}
	hexEncode32Generic(dst, src)
}

// hexEncode32Generic encodes eight digits at a time: the nibbles of four
// bytes are spread over the bytes of a uint64 and turned into '0'..'9',
// 'a'..'f' with byte-wise arithmetic that cannot carry.
func hexEncode32Generic(dst *[64]byte, src *[32]byte) {
	for i := 0; i < 8; i++ {
		binary.LittleEndian.PutUint64(dst[8*i:], hexWord(binary.LittleEndian.Uint32(src[4*i:])))
	}
}

// hexWord is the lowercase hex of the four bytes of w (little-endian, first
// byte first), eight ASCII digits packed little-endian.
func hexWord(w uint32) uint64 {
	v := uint64(w&0xff) | uint64(w>>8&0xff)<<16 | uint64(w>>16&0xff)<<32 | uint64(w>>24)<<48
	n := (v>>4)&0x000f000f000f000f | (v&0x000f000f000f000f)<<8
	ge10 := ((n + 0x0606060606060606) >> 4) & 0x0101010101010101
	return n + 0x3030303030303030 + ge10*('a'-'0'-10)
}

// hexEqual32 reports whether h is the lowercase hex of sum, in time that
// does not depend on where they differ: digests are compared with the hex
// digits of a line as they are encoded, with no early exit and no hex
// buffer. On amd64 with AVX it is hexEqual32AVX (hex_amd64.s).
func hexEqual32(sum *[32]byte, h []byte) bool {
	if len(h) != 64 {
		return false
	}
	if hexFast {
		return hexEqual32AVX(sum, &h[0])
	}
	return hexEqual32Generic(sum, h)
}

// hexEqual32Generic is hexEqual32 eight digits at a time (len(h) == 64).
func hexEqual32Generic(sum *[32]byte, h []byte) bool {
	var diff uint64
	for i := 0; i < 8; i++ {
		diff |= hexWord(binary.LittleEndian.Uint32(sum[4*i:])) ^ binary.LittleEndian.Uint64(h[8*i:])
	}
	return diff == 0
}
