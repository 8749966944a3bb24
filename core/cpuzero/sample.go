package cpuzero

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// sampleDomain separates the sampling PRF from every other use of the tracer key.
const sampleDomain = "kvhygiene/cpuzero/sample/v1"

// SampleWordBytes is the size of the aligned word one sample checks (offsets relative to
// the start of the buffer); the last word of a buffer whose size is not a multiple of it is
// shorter.
const SampleWordBytes = 8

// SamplePositions returns the byte offsets (multiples of 8, relative to the buffer start)
// of the words that SampleVerify checks for a buffer of size bytes, n samples, the tracer's
// secret key and the buffer's handle; the package documentation specifies the derivation.
// The offsets are distinct and in draw order; every word, in order, when n >= ceil(size/8);
// nil when n <= 0 or size == 0. Auditors use it to reproduce a sampled verification.
func SamplePositions(size uint64, n int, key []byte, handle uint64) []uint64 {
	if n <= 0 || size == 0 {
		return nil
	}
	words := (size + SampleWordBytes - 1) / SampleWordBytes
	out := make([]uint64, 0, min(uint64(n), words))
	samplePositions(size, n, key, handle, func(off uint64) { out = append(out, off) })
	return out
}

// samplePositions calls f with each sampled byte offset; see SamplePositions.
func samplePositions(size uint64, n int, key []byte, handle uint64, f func(off uint64)) {
	if n <= 0 || size == 0 {
		return
	}
	words := (size + SampleWordBytes - 1) / SampleWordBytes
	if uint64(n) >= words {
		for w := uint64(0); w < words; w++ {
			f(w * SampleWordBytes)
		}
		return
	}
	stream := sampleStream(key, handle, size)
	var buf [512]byte
	avail := 0
	fisherYates(words, uint64(n), func() uint64 {
		if avail == 0 {
			clear(buf[:])
			stream.XORKeyStream(buf[:], buf[:])
			avail = len(buf)
		}
		r := binary.LittleEndian.Uint64(buf[len(buf)-avail:])
		avail -= 8
		return r
	}, f)
}

// fisherYates draws n distinct words of 0..words-1 (n < words) by a sparse Fisher-Yates
// shuffle of the identity permutation: draw i takes the next 64-bit value r and swaps
// perm[i] with perm[i + floor(r*(words-i)/2^64)], then calls f with 8*perm[i].
func fisherYates(words, n uint64, next func() uint64, f func(off uint64)) {
	// swapped holds only the entries that differ from the identity: a short list for the
	// usual handful of samples, a map beyond.
	type pair struct{ k, v uint64 }
	var small [16]pair
	list := small[:0]
	var m map[uint64]uint64
	if n > uint64(len(small)) {
		m = make(map[uint64]uint64, n)
	}
	at := func(i uint64) uint64 {
		if m != nil {
			if v, ok := m[i]; ok {
				return v
			}
			return i
		}
		for _, p := range list {
			if p.k == i {
				return p.v
			}
		}
		return i
	}
	set := func(i, v uint64) {
		if m != nil {
			m[i] = v
			return
		}
		for k := range list {
			if list[k].k == i {
				list[k].v = v
				return
			}
		}
		list = append(list, pair{i, v})
	}
	for i := uint64(0); i < n; i++ {
		hi, _ := bits.Mul64(next(), words-i)
		j := i + hi
		vi, vj := at(i), at(j)
		if j != i {
			set(j, vi)
		}
		// index i is never drawn again; a stale entry for it in the list is harmless
		if m != nil {
			delete(m, i)
		}
		f(vj * SampleWordBytes)
	}
}

// sampleStream returns the AES-256-CTR keystream keyed with
// HMAC-SHA256(key, domain || 0 || LE64(handle) || LE64(size)) and a zero IV.
func sampleStream(key []byte, handle, size uint64) cipher.Stream {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sampleDomain))
	var msg [17]byte
	binary.LittleEndian.PutUint64(msg[1:9], handle)
	binary.LittleEndian.PutUint64(msg[9:17], size)
	m.Write(msg[:])
	seed := m.Sum(nil)
	block, err := aes.NewCipher(seed)
	if err != nil { // a 32-byte key is always valid for AES-256
		panic("cpuzero: aes: " + err.Error())
	}
	return cipher.NewCTR(block, make([]byte, aes.BlockSize))
}

// SampleVerify checks n words of b (8 bytes each, the last one possibly shorter) at
// positions drawn from the keyed PRF described in the package documentation, so that a
// tenant who does not know key cannot predict which bytes are checked. It returns the
// number of bytes checked and how many of them are non-zero.
//
// When n reaches an eighth of the words (n >= ceil(len(b)/8)/8) the random walk would touch
// nearly every cache line anyway, so the whole buffer is read back with the vector kernel
// instead: checked == len(b), a superset of the sampled words. This also bounds the memory
// of the shuffle for very large n.
func SampleVerify(b []byte, n int, key []byte, handle uint64) (checked, nonzero int) {
	size := uint64(len(b))
	if n <= 0 || size == 0 {
		return 0, 0
	}
	if uint64(n) >= fullReadWords((size+SampleWordBytes-1)/SampleWordBytes) {
		return len(b), int(NonZeroBytes(b))
	}
	samplePositions(size, n, key, handle, func(off uint64) {
		c, z := checkWord(b, off)
		checked += c
		nonzero += z
	})
	return checked, nonzero
}

// fullReadWords is the sample count from which SampleVerify reads the whole buffer.
func fullReadWords(words uint64) uint64 { return max(words/8, 1) }
