package cpuzero

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// rangesDomain separates the range sampler's PRF from every other use of the tracer key.
const rangesDomain = "kvhygiene/cpuzero/sample-ranges/v1"

// RangeSampler draws the sampled positions of many ranges verified together (the regions
// of the blocks of one pool release) from one keyed AES-CTR stream: one HMAC and one key
// schedule per release, and the keystream of a whole batch of ranges in one call, instead
// of a key derivation per range. That is what makes sampled verification of tens of
// thousands of 32 KiB regions much cheaper than reading them back. The package
// documentation specifies the derivation. A RangeSampler is safe for concurrent use.
type RangeSampler struct {
	block cipher.Block
}

// NewRangeSampler keys a sampler with the tracer's secret key and a per-release handle.
func NewRangeSampler(key []byte, handle uint64) *RangeSampler {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(rangesDomain))
	var msg [9]byte
	binary.LittleEndian.PutUint64(msg[1:], handle)
	m.Write(msg[:])
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil { // a 32-byte key is always valid for AES-256
		panic("cpuzero: aes: " + err.Error())
	}
	return &RangeSampler{block: block}
}

// keystream fills dst with the release's keystream from byte offset off on: AES-256-CTR
// with a 128-bit big-endian counter starting at zero.
func (s *RangeSampler) keystream(off uint64, dst []byte) {
	ctr := s.streamAt(off)
	clear(dst)
	ctr.XORKeyStream(dst, dst)
}

// streamAt returns the keystream positioned at byte offset off; successive XORKeyStream
// calls continue it.
func (s *RangeSampler) streamAt(off uint64) cipher.Stream {
	blk, skip := off/aes.BlockSize, int(off%aes.BlockSize)
	var iv [aes.BlockSize]byte
	binary.BigEndian.PutUint64(iv[8:], blk)
	ctr := cipher.NewCTR(s.block, iv[:])
	if skip > 0 {
		var junk [aes.BlockSize]byte
		ctr.XORKeyStream(junk[:skip], junk[:skip])
	}
	return ctr
}

// Positions returns the byte offsets that VerifyMany checks in the range with the given
// index, of size bytes, with n samples, in draw order (the rules of SamplePositions: every
// word when n >= the word count, nil when n <= 0 or size == 0).
func (s *RangeSampler) Positions(size uint64, n int, index uint64) []uint64 {
	if n <= 0 || size == 0 {
		return nil
	}
	words := (size + SampleWordBytes - 1) / SampleWordBytes
	out := make([]uint64, 0, min(uint64(n), words))
	if uint64(n) >= words {
		for w := uint64(0); w < words; w++ {
			out = append(out, w*SampleWordBytes)
		}
		return out
	}
	ks := make([]byte, 8*n)
	s.keystream(8*uint64(n)*index, ks)
	drawInto(words, ks, func(off uint64) { out = append(out, off) })
	return out
}

// drawInto runs the sparse Fisher-Yates shuffle of SampleVerify with the draws read from
// ks (8 little-endian bytes each; len(ks)/8 draws, fewer than words).
func drawInto(words uint64, ks []byte, f func(off uint64)) {
	n := uint64(len(ks) / 8)
	if n > smallDraws {
		next := ks
		fisherYates(words, n, func() uint64 {
			r := binary.LittleEndian.Uint64(next)
			next = next[8:]
			return r
		}, f)
		return
	}
	var out [smallDraws]uint64
	for _, off := range drawSmall(words, ks, &out) {
		f(off)
	}
}

// drawSmall is drawInto for at most smallDraws draws, without callbacks: the displaced
// entries of the permutation live in arrays, and the offsets go to out. held has bit k%64
// set for every displaced entry k, so a draw whose i and j both miss it (most of them, in
// a range of thousands of words) skips the search of the arrays.
func drawSmall(words uint64, ks []byte, out *[smallDraws]uint64) []uint64 {
	n := uint64(len(ks) / 8)
	var keys, vals [smallDraws]uint64
	var held uint64
	m := 0
	for i := uint64(0); i < n; i++ {
		hi, _ := bits.Mul64(binary.LittleEndian.Uint64(ks[8*i:]), words-i)
		j := i + hi
		vi, vj := i, j
		kj := -1
		if held&(1<<(i&63)|1<<(j&63)) != 0 {
			for k := 0; k < m; k++ {
				if keys[k] == i {
					vi = vals[k]
				}
				if keys[k] == j {
					vj, kj = vals[k], k
				}
			}
		}
		if j != i {
			if kj >= 0 {
				vals[kj] = vi
			} else {
				keys[m], vals[m] = j, vi
				m++
				held |= 1 << (j & 63)
			}
		}
		out[i] = vj * SampleWordBytes
	}
	return out[:n]
}

// smallDraws is the largest sample count drawInto shuffles with arrays.
const smallDraws = 16

// manyBatch is how many ranges VerifyMany draws positions for before it reads them: the
// reads of a batch are independent loads, so the CPU keeps many cache misses in flight
// instead of one per range.
const manyBatch = 32

// VerifyMany checks n sampled words of each range: bufs[k] is the range with index
// first+k, and nonzero[k] receives the number of non-zero bytes among its sampled words (or
// in the whole range where the full-read rule of SampleVerify applies).
func (s *RangeSampler) VerifyMany(bufs [][]byte, first uint64, n int, nonzero []uint64) {
	if n <= 0 {
		return
	}
	var words [manyBatch * smallDraws]*uint64 // sampled full words of the batch
	var owner [manyBatch * smallDraws]uint16  // range (within the batch) of each word
	ks := make([]byte, 8*n*manyBatch)
	var offs [smallDraws]uint64
	ctr := s.streamAt(8 * uint64(n) * first) // the batches' keystreams follow one another
	for lo := 0; lo < len(bufs); lo += manyBatch {
		hi := min(lo+manyBatch, len(bufs))
		kb := ks[:8*n*(hi-lo)]
		clear(kb)
		ctr.XORKeyStream(kb, kb)
		nw := 0
		flush := func() {
			for j := 0; j < nw; j++ {
				if w := *words[j]; w != 0 {
					nonzero[lo+int(owner[j])] += uint64(nonZeroInWord(w))
				}
			}
			nw = 0
		}
		for k := lo; k < hi; k++ {
			b := bufs[k]
			nonzero[k] = 0
			size := uint64(len(b))
			if size == 0 {
				continue
			}
			nwords := (size + SampleWordBytes - 1) / SampleWordBytes
			if uint64(n) >= fullReadWords(nwords) {
				nonzero[k] = NonZeroBytes(b)
				continue
			}
			kk := ks[8*n*(k-lo) : 8*n*(k-lo+1)]
			if n > smallDraws {
				drawInto(nwords, kk, func(off uint64) { nonzero[k] += uint64(countNonZero(b[off:min(off+SampleWordBytes, size)])) })
				continue
			}
			if nw+n > len(words) {
				flush()
			}
			for _, off := range drawSmall(nwords, kk, &offs) {
				if off+SampleWordBytes > size {
					_, z := checkWord(b, off)
					nonzero[k] += uint64(z)
					continue
				}
				words[nw] = (*uint64)(unsafe.Pointer(&b[off]))
				owner[nw] = uint16(k - lo)
				nw++
			}
		}
		flush()
	}
}

// checkWord checks the sample word at byte offset off of b (shorter at the end of b).
func checkWord(b []byte, off uint64) (checked, nonzero int) {
	if off+SampleWordBytes <= uint64(len(b)) {
		if w := binary.LittleEndian.Uint64(b[off : off+SampleWordBytes]); w != 0 {
			return SampleWordBytes, nonZeroInWord(w)
		}
		return SampleWordBytes, 0
	}
	for _, c := range b[off:] {
		checked++
		if c != 0 {
			nonzero++
		}
	}
	return checked, nonzero
}
