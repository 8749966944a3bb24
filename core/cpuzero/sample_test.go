package cpuzero

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// refPositions is an independent implementation of the documented derivation: the AES-CTR
// stream is built from raw block encryptions of a big-endian counter and the shuffle uses
// a dense permutation and big-integer arithmetic.
func refPositions(size uint64, n int, key []byte, handle uint64) []uint64 {
	if n <= 0 || size == 0 {
		return nil
	}
	words := (size + 7) / 8
	var out []uint64
	if uint64(n) >= words {
		for w := uint64(0); w < words; w++ {
			out = append(out, 8*w)
		}
		return out
	}
	m := hmac.New(sha256.New, key)
	msg := append([]byte("kvhygiene/cpuzero/sample/v1"), 0)
	msg = binary.LittleEndian.AppendUint64(msg, handle)
	msg = binary.LittleEndian.AppendUint64(msg, size)
	m.Write(msg)
	blk, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err)
	}
	return refShuffle(words, refCTR(blk, new(big.Int), 0, 8*n), n)
}

// refCTR returns n bytes of AES-CTR keystream from counter block ctr (a 128-bit big-endian
// integer), skipping the first skip bytes.
func refCTR(blk cipher.Block, ctr *big.Int, skip, n int) []byte {
	var stream []byte
	for len(stream) < skip+n {
		in := make([]byte, 16)
		ctr.FillBytes(in)
		o := make([]byte, 16)
		blk.Encrypt(o, in)
		stream = append(stream, o...)
		ctr.Add(ctr, big.NewInt(1))
	}
	return stream[skip : skip+n]
}

// refShuffle is the documented sparse Fisher-Yates draw over a full permutation, in big
// integers: n draws of 8 little-endian bytes each from stream.
func refShuffle(words uint64, stream []byte, n int) []uint64 {
	perm := make([]uint64, words)
	for i := range perm {
		perm[i] = uint64(i)
	}
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	var out []uint64
	for i := 0; i < n; i++ {
		r := new(big.Int).SetUint64(binary.LittleEndian.Uint64(stream[8*i:]))
		r.Mul(r, new(big.Int).SetUint64(words-uint64(i)))
		r.Div(r, two64)
		j := uint64(i) + r.Uint64()
		perm[i], perm[j] = perm[j], perm[i]
		out = append(out, 8*perm[i])
	}
	return out
}

// TestDrawSmallMatchesShuffle runs the array shuffle against the dense reference on
// random streams, with ranges barely larger than the draw count (many collisions between
// draws, and entries whose bits alias in drawSmall's filter) and large ones.
func TestDrawSmallMatchesShuffle(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var out [smallDraws]uint64
	for iter := 0; iter < 20000; iter++ {
		n := 1 + r.IntN(smallDraws)
		words := uint64(n) + 1 + uint64(r.IntN(40))
		if iter%4 == 0 {
			words = uint64(n) + 1 + r.Uint64N(1<<14)
		}
		ks := make([]byte, 8*n)
		for i := range ks {
			ks[i] = byte(r.Uint32())
		}
		require.Equal(t, refShuffle(words, ks, n), drawSmall(words, ks, &out), "words %d n %d", words, n)
	}
}

func TestSamplePositionsMatchSpec(t *testing.T) {
	key := []byte("tracer secret key")
	cases := []struct {
		size uint64
		n    int
	}{{1, 1}, {8, 1}, {9, 1}, {64, 3}, {1000, 100}, {1000, 124}, {1000, 125}, {4096, 511}, {1 << 20, 1000}, {12345, 777}}
	for _, c := range cases {
		for _, h := range []uint64{1, 42, 1<<63 | 5} {
			got := SamplePositions(c.size, c.n, key, h)
			require.Equal(t, refPositions(c.size, c.n, key, h), got, "size %d n %d handle %d", c.size, c.n, h)
		}
	}
}

func TestSamplePositionsProperties(t *testing.T) {
	key := []byte("k1")
	const size = 1<<20 + 5
	p := SamplePositions(size, 2000, key, 7)
	require.Len(t, p, 2000)
	require.Equal(t, p, SamplePositions(size, 2000, key, 7), "deterministic for (key, handle)")
	require.Equal(t, p[:100], SamplePositions(size, 100, key, 7), "a prefix of a longer draw")
	seen := map[uint64]bool{}
	lowHalf := 0
	for _, off := range p {
		require.Zero(t, off%8)
		require.Less(t, off, uint64(size))
		require.False(t, seen[off], "duplicate position %d", off)
		seen[off] = true
		if off < size/2 {
			lowHalf++
		}
	}
	require.InDelta(t, 1000, lowHalf, 150, "positions spread over the buffer")
	other := SamplePositions(size, 2000, key, 8)
	otherKey := SamplePositions(size, 2000, []byte("k2"), 7)
	require.NotEqual(t, p, other, "handles give different positions")
	require.NotEqual(t, p, otherKey, "keys give different positions")
	require.Less(t, overlap(p, other), 50)
	require.Less(t, overlap(p, otherKey), 50)

	all := SamplePositions(20, 10, key, 1)
	require.Equal(t, []uint64{0, 8, 16}, all, "n >= words checks every word")
	require.Nil(t, SamplePositions(0, 10, key, 1))
	require.Nil(t, SamplePositions(100, 0, key, 1))
	require.Nil(t, SamplePositions(100, -3, key, 1))
	full := SamplePositions(800, 99, key, 3)
	slices.Sort(full)
	require.Len(t, slices.Compact(full), 99, "99 distinct of 100 words")
}

func overlap(a, b []uint64) int {
	m := map[uint64]bool{}
	for _, x := range a {
		m[x] = true
	}
	n := 0
	for _, x := range b {
		if m[x] {
			n++
		}
	}
	return n
}

func TestSampleVerify(t *testing.T) {
	key := []byte("secret")
	const size = 100003 // last word is 3 bytes
	b := make([]byte, size)
	checked, nonzero := SampleVerify(b, 500, key, 11)
	require.Equal(t, 500*8, checked)
	require.Zero(t, nonzero)

	pos := SamplePositions(size, 500, key, 11)
	sampled := map[uint64]bool{}
	for _, p := range pos {
		sampled[p] = true
	}
	// A dirty byte in a sampled word is found; one outside the sampled words is not.
	b[pos[17]+5] = 0x77
	checked, nonzero = SampleVerify(b, 500, key, 11)
	require.Equal(t, 500*8, checked)
	require.Equal(t, 1, nonzero)
	b[pos[17]+5] = 0
	var unsampled uint64
	for sampled[unsampled] {
		unsampled += 8
	}
	b[unsampled] = 1
	_, nonzero = SampleVerify(b, 500, key, 11)
	require.Zero(t, nonzero)
	b[unsampled] = 0

	// The short last word counts only its real bytes: find a handle that samples it.
	const small = 635 // 80 words, the last one 3 bytes
	sb := make([]byte, small)
	found := false
	for h := uint64(0); h < 1000 && !found; h++ {
		pos := SamplePositions(small, 9, key, h)
		if !slices.Contains(pos, 632) {
			continue
		}
		found = true
		for i := range sb {
			sb[i] = 1
		}
		c, nz := SampleVerify(sb, 9, key, h)
		require.Equal(t, 8*8+3, c)
		require.Equal(t, 8*8+3, nz)
	}
	require.True(t, found, "no handle samples the last word")

	// From an eighth of the words on, the whole buffer is read back.
	words := (size + 7) / 8
	c, _ := SampleVerify(b, words/8, key, 2)
	require.Equal(t, size, c)
	c, _ = SampleVerify(b, words/8-1, key, 2)
	require.Equal(t, (words/8-1)*8, c)

	// n >= words: full read-back.
	b[size-1] = 3
	b[0] = 3
	checked, nonzero = SampleVerify(b, words, key, 1)
	require.Equal(t, size, checked)
	require.Equal(t, 2, nonzero)
	checked, nonzero = SampleVerify(nil, 5, key, 1)
	require.Zero(t, checked+nonzero)
	checked, nonzero = SampleVerify(b, 0, key, 1)
	require.Zero(t, checked+nonzero)
}

// Every byte of the sampled words of a fully dirty buffer is counted.
func TestSampleVerifyCountsBytes(t *testing.T) {
	b := make([]byte, 2100)
	for i := range b {
		b[i] = 0xff
	}
	checked, nonzero := SampleVerify(b, 20, []byte("k"), 9)
	require.Equal(t, 160, checked)
	require.Equal(t, 160, nonzero)
	// Tiny buffers are read back whole.
	checked, nonzero = SampleVerify(b[:21], 1, []byte("k"), 9)
	require.Equal(t, 21, checked)
	require.Equal(t, 21, nonzero)
}

// refRangePositions is the package documentation's range-sampler derivation, written
// independently of the implementation.
func refRangePositions(size uint64, n int, key []byte, handle, index uint64) []uint64 {
	words := (size + 7) / 8
	if uint64(n) >= words {
		return refPositions(size, n, key, handle) // every word: the key plays no part
	}
	m := hmac.New(sha256.New, key)
	msg := append([]byte("kvhygiene/cpuzero/sample-ranges/v1"), 0)
	msg = binary.LittleEndian.AppendUint64(msg, handle)
	m.Write(msg)
	blk, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err)
	}
	// the stream from the counter block holding byte 8n*index
	start := new(big.Int).Mul(new(big.Int).SetUint64(8*uint64(n)), new(big.Int).SetUint64(index))
	ctr, skip := new(big.Int).DivMod(start, big.NewInt(16), new(big.Int))
	return refShuffle(words, refCTR(blk, ctr, int(skip.Int64()), 8*n), n)
}

func TestRangeSamplerMatchesSpec(t *testing.T) {
	key := []byte("tracer secret key")
	for _, h := range []uint64{1, 1<<63 | 7} {
		s := NewRangeSampler(key, h)
		for _, c := range []struct {
			size uint64
			n    int
		}{{1, 1}, {9, 2}, {32 << 10, 8}, {32 << 10, 40}, {4096, 511}, {12345, 17}} {
			for _, idx := range []uint64{0, 1, 65535, 1 << 40} {
				require.Equal(t, refRangePositions(c.size, c.n, key, h, idx), s.Positions(c.size, c.n, idx),
					"size %d n %d handle %d index %d", c.size, c.n, h, idx)
			}
		}
	}
	// distinct ranges and releases draw different positions
	a := NewRangeSampler(key, 1).Positions(32<<10, 8, 0)
	require.NotEqual(t, a, NewRangeSampler(key, 1).Positions(32<<10, 8, 1))
	require.NotEqual(t, a, NewRangeSampler(key, 2).Positions(32<<10, 8, 0))
	require.NotEqual(t, a, NewRangeSampler([]byte("other key"), 1).Positions(32<<10, 8, 0))
}

func TestRangeSamplerVerifyMany(t *testing.T) {
	s := NewRangeSampler([]byte("k"), 9)
	const nr = 70 // more than one batch
	bufs := make([][]byte, nr)
	for i := range bufs {
		bufs[i] = make([]byte, 32<<10+i) // some with a short last word
	}
	nz := make([]uint64, nr)
	for i := range nz {
		nz[i] = 99 // overwritten
	}
	s.VerifyMany(bufs, 5, 8, nz)
	require.Equal(t, make([]uint64, nr), nz)
	// a non-zero byte in a sampled word of range 40 (index 45), and in the short last word
	// of range 3 when it is sampled
	pos := s.Positions(uint64(len(bufs[40])), 8, 45)
	bufs[40][pos[5]+3] = 0xff
	bufs[40][pos[6]] = 0x01
	// bytes never sampled are not seen (the ranges are not read in full)
	for i := range bufs[41] {
		bufs[41][i] = 7
	}
	for _, off := range s.Positions(uint64(len(bufs[41])), 8, 46) {
		bufs[41][off] = 0
		for j := off + 1; j < off+8 && j < uint64(len(bufs[41])); j++ {
			bufs[41][j] = 0
		}
	}
	s.VerifyMany(bufs, 5, 8, nz)
	want := make([]uint64, nr)
	want[40] = 2
	require.Equal(t, want, nz)
	// many samples: the full-read rule counts every non-zero byte
	s.VerifyMany(bufs[41:42], 46, len(bufs[41])/64, nz[:1])
	require.Equal(t, uint64(len(bufs[41])-8*len(s.Positions(uint64(len(bufs[41])), 8, 46))), nz[0])
	// n > 16 samples takes the map-based shuffle: same positions as the reference
	require.Equal(t, refRangePositions(32<<10, 40, []byte("k"), 9, 3), s.Positions(32<<10, 40, 3))
	big := [][]byte{make([]byte, 32<<10), make([]byte, 32<<10)}
	p40 := s.Positions(32<<10, 40, 4)
	big[1][p40[39]] = 3
	big[1][p40[39]+7] = 3
	s.VerifyMany(big, 3, 40, nz[:2])
	require.Equal(t, []uint64{0, 2}, nz[:2])
}

// BenchmarkDrawSmall is the position draw of one range in a sampled pool release (8
// samples of a 32 KiB region: 4096 words); a 1024-block x 64-region release makes 65 536.
func BenchmarkDrawSmall(b *testing.B) {
	ks := make([]byte, 8*8*1024)
	for i := range ks {
		ks[i] = byte(i*131 + i>>3)
	}
	var out [smallDraws]uint64
	i := 0
	for b.Loop() {
		k := (i % 1024) * 64
		drawSmall(4096, ks[k:k+64], &out)
		i++
	}
}

// BenchmarkVerifyMany is the sampled check of one 4 MiB piece of 32 KiB ranges (128 ranges, 8
// samples each) on memory in cache: the CPU cost of the positions, without the misses.
func BenchmarkVerifyMany(b *testing.B) {
	buf := make([]byte, 4<<20)
	bufs := make([][]byte, 0, 128)
	for off := 0; off < len(buf); off += 32 << 10 {
		bufs = append(bufs, buf[off:off+32<<10])
	}
	s := NewRangeSampler(make([]byte, 32), 1)
	nz := make([]uint64, len(bufs))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.VerifyMany(bufs, uint64(i)*128, 8, nz)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bufs)), "ns/range")
}
